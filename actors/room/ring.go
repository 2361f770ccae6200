package room

import "hash/maphash"

// maxDedupWindow bounds the window so a slot of the index fits in 16 bits.
const maxDedupWindow = 1<<16 - 1

// idRing remembers the last n ids, to drop a message fanned out twice (a live
// copy and an archive copy of the same message) in O(1) with a fixed amount of
// memory per room.
//
// It keeps a 64-bit hash of each id, not the id: the ring of hashes (8 bytes an
// id) in arrival order, and an open-addressing index into that ring (2 bytes a
// slot, load ≤ 1/2, linear probing, backward-shift deletion). At the default
// window of 4,096 that is 32 KiB + 16 KiB, whatever the length of the ids,
// allocated once on the first id, so an idle room costs next to nothing; add
// allocates nothing after that.
//
// The hash is maphash with a seed per ring, so ids a sender picks can't be
// steered into collisions shared by every room. A collision can only make a new
// id look seen (a false positive, a message dropped as a duplicate), never the
// reverse: the chance a new id collides with one of the 4,096 remembered is
// 4,096/2^64 ≈ 2.2e-16, about one wrong drop per 4.5e15 messages.
type idRing struct {
	n     int
	seed  maphash.Seed
	ids   []uint64 // hashes in arrival order; len grows to n, then wraps
	next  int      // where the next hash goes once the ring is full
	index []uint16 // 0 = empty, else position in ids + 1
	mask  uint64
}

func newIDRing(n int) *idRing {
	return &idRing{n: min(max(n, 1), maxDedupWindow), seed: maphash.MakeSeed()}
}

// ringBytes is what a ring of window n holds once it has seen its first id.
func ringBytes(n int) int { return 8*n + 2*indexSize(n) }

func indexSize(n int) int {
	size := 2
	for size < 2*n {
		size <<= 1
	}
	return size
}

// add records id and reports whether it was new.
func (r *idRing) add(id string) bool {
	h := maphash.String(r.seed, id)
	if r.index == nil {
		r.ids = make([]uint64, 0, r.n)
		r.index = make([]uint16, indexSize(r.n))
		r.mask = uint64(len(r.index) - 1)
	}
	if r.find(h) >= 0 {
		return false
	}
	pos := len(r.ids)
	if pos < r.n {
		r.ids = append(r.ids, h)
	} else {
		pos = r.next
		r.remove(r.find(r.ids[pos]))
		r.ids[pos] = h
		r.next = (r.next + 1) % r.n
	}
	i := h & r.mask
	for r.index[i] != 0 {
		i = (i + 1) & r.mask
	}
	r.index[i] = uint16(pos + 1)
	return true
}

// has reports whether id is in the window.
func (r *idRing) has(id string) bool {
	return r.index != nil && r.find(maphash.String(r.seed, id)) >= 0
}

// find returns the index slot holding h, or -1.
func (r *idRing) find(h uint64) int {
	for i := h & r.mask; r.index[i] != 0; i = (i + 1) & r.mask {
		if r.ids[r.index[i]-1] == h {
			return int(i)
		}
	}
	return -1
}

// remove empties slot i and shifts back the entries probed past it, so every
// entry stays reachable from its home slot without tombstones.
func (r *idRing) remove(i int) {
	hole := uint64(i)
	for j := (hole + 1) & r.mask; r.index[j] != 0; j = (j + 1) & r.mask {
		home := r.ids[r.index[j]-1] & r.mask
		// The entry at j may fill the hole unless its home lies cyclically in (hole, j].
		if (j > hole && (home <= hole || home > j)) || (j < hole && home <= hole && home > j) {
			r.index[hole] = r.index[j]
			hole = j
		}
	}
	r.index[hole] = 0
}
