package cluster

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/parley-go/parley-xmpp/serve"
)

// A node's backups cover every topic it takes over when another member dies:
// for every member that dies, each topic that moves lands on a survivor that
// had it among its backups.
func TestBackupsAreWhatASurvivorTakesOver(t *testing.T) {
	members := []string{"n7001", "n7002", "n7003", "n7004"}
	var topics []serve.Topic
	var idents []string
	for i := range 200 {
		tp := serve.Topic{Route: "r", Topic: fmt.Sprintf("t%d", i)}
		topics = append(topics, tp)
		idents = append(idents, identity(tp))
	}
	backupOf := map[string][]string{} // identity → the members it is a backup on
	for _, m := range members {
		for _, tp := range backups(members, m, topics) {
			backupOf[identity(tp)] = append(backupOf[identity(tp)], m)
		}
	}
	all := assign(members, idents)
	for _, dead := range members {
		after := assign(without(members, dead), idents)
		moved := 0
		for _, id := range idents {
			if after[id] == all[id] {
				continue
			}
			moved++
			require.NotEqual(t, dead, after[id])
			require.True(t, slices.Contains(backupOf[id], after[id]), "%s: taken over by %s, which had not prepared it (backups %v)", id, after[id], backupOf[id])
		}
		require.Positive(t, moved)
	}
	require.Nil(t, backups(members[:1], members[0], topics), "alone, no backups")
	require.Nil(t, backups(members, "stranger", topics), "not a member, no backups")
}

// A node runs topics only while the registry lists it under its live lease:
// not before it registered, not once its lease is gone or its bound passed
// (a pause), and never under an old registration.
func TestMineNeedsTheRegistrationUnderTheLiveLease(t *testing.T) {
	n := &Node{id: "me"}
	for i := range 30 {
		tp := serve.Topic{Route: "r", Topic: fmt.Sprintf("t%d", i)}
		n.topics = append(n.topics, tp)
		n.idents = append(n.idents, identity(tp))
	}
	s := liveTestSession(t)
	n.sess.Store(s)
	reg := func(leases map[string]clientv3.LeaseID) *registry {
		v := &registry{leases: leases}
		for id := range leases {
			v.ids = append(v.ids, id)
		}
		slices.Sort(v.ids)
		return v
	}
	listed := reg(map[string]clientv3.LeaseID{"me": s.Lease(), "other": 7})
	require.Len(t, n.mine(listed), 15, "half of 30 topics on 2 members")
	require.Empty(t, n.mine(reg(map[string]clientv3.LeaseID{"other": 7})), "not registered")
	require.Empty(t, n.mine(reg(map[string]clientv3.LeaseID{"me": s.Lease() + 1, "other": 7})), "registered under another lease")
	require.Empty(t, n.mine(nil), "no registry read yet")
	n.sess.Store(&nodeLease{Session: s.Session, clock: newLeaseClock(s.clock.base.Add(-10*n.ttlOr()), n.ttlOr()), ended: make(chan struct{})})
	require.Empty(t, n.mine(listed), "the lease's bound passed")
}
