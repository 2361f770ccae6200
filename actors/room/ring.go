package room

// idRing remembers the last n ids, to drop a message fanned out twice (a live
// copy and an archive copy of the same message) in O(1) with bounded memory.
type idRing struct {
	ids  []string
	next int
	set  map[string]struct{}
}

func newIDRing(n int) *idRing {
	return &idRing{ids: make([]string, n), set: make(map[string]struct{}, n)}
}

// add records id and reports whether it was new.
func (r *idRing) add(id string) bool {
	if _, dup := r.set[id]; dup {
		return false
	}
	if old := r.ids[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ids[r.next] = id
	r.next = (r.next + 1) % len(r.ids)
	r.set[id] = struct{}{}
	return true
}
