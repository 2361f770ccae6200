package room

// idRing remembers the last n ids, to drop a message fanned out twice (a live
// copy and an archive copy of the same message) in O(1) with bounded memory. It
// grows as ids arrive, so an idle room costs next to nothing.
type idRing struct {
	n    int
	ids  []string
	next int
	set  map[string]struct{}
}

func newIDRing(n int) *idRing { return &idRing{n: n} }

// add records id and reports whether it was new.
func (r *idRing) add(id string) bool {
	if _, dup := r.set[id]; dup {
		return false
	}
	if r.set == nil {
		r.set = map[string]struct{}{}
	}
	if len(r.ids) < r.n {
		r.ids = append(r.ids, id)
	} else {
		delete(r.set, r.ids[r.next])
		r.ids[r.next] = id
		r.next = (r.next + 1) % r.n
	}
	r.set[id] = struct{}{}
	return true
}
