package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pacluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/parley-go/parley-xmpp/serve"
)

// placementNode is a Node with just what a grain needs before it owns
// anything; its ctx is ended, so an owner that starts returns at once.
func placementNode(t *testing.T) *Node {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := &Node{log: slog.New(slog.DiscardHandler), system: actor.NewActorSystem(), ttl: 400 * time.Millisecond, ctx: ctx}
	t.Cleanup(n.system.Shutdown)
	return n
}

// elsewhere places every identity on another member.
func elsewhere() *pacluster.Rendezvous {
	rdv := pacluster.NewRendezvous()
	rdv.UpdateMembers(pacluster.Members{{Id: "other", Host: "127.0.0.1", Port: 1, Kinds: []string{kind}}})
	return rdv
}

func activate(n *Node) *actor.PID {
	pid := n.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &grain{n: n} }))
	n.system.Root.Send(pid, &pacluster.ClusterInit{Identity: pacluster.NewClusterIdentity("out/t1", kind)})
	return pid
}

func alive(n *Node, pid *actor.PID) bool {
	_, err := n.system.Root.RequestFuture(pid, wrapperspb.String("touch"), time.Second).Result()
	return err == nil
}

// Issue 13: a member with a stale topology asks this node to activate an
// identity that this node's topology places elsewhere (a node joined): the
// activation stops at once instead of holding the lock for good.
func TestGrainPlacedElsewhereStops(t *testing.T) {
	n := placementNode(t)
	n.placer.Store(elsewhere())
	pid := activate(n)
	require.Eventually(t, func() bool { return !alive(n, pid) }, 5*time.Second, 50*time.Millisecond,
		"an activation placed elsewhere stops")
}

// A stray that nobody touches stops too, when idle.
func TestGrainStrayStopsWhenIdle(t *testing.T) {
	n := placementNode(t)
	pid := activate(n) // no topology yet: it stays
	time.Sleep(n.ttl)
	require.True(t, alive(n, pid), "an activation placed here stays")
	n.placer.Store(elsewhere())
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := n.system.ProcessRegistry.Get(pid); !ok {
			break
		}
		time.Sleep(50 * time.Millisecond) // not touching it: only the idle check can stop it
	}
	require.False(t, alive(n, pid), "an idle stray stops")
}

// A node's backups are exactly the topics it takes over when their owner
// dies: for every member that dies, the survivors' backups of its topics
// partition them, and each lands where hashing over the survivors places it.
func TestBackupsAreWhatASurvivorTakesOver(t *testing.T) {
	members := pacluster.Members{}
	for _, port := range []int32{7001, 7002, 7003, 7004} {
		members = append(members, &pacluster.Member{Id: fmt.Sprint(port), Host: "127.0.0.1", Port: port, Kinds: []string{kind}})
	}
	var topics []serve.Topic
	for i := range 200 {
		topics = append(topics, serve.Topic{Route: "r", Topic: fmt.Sprintf("t%d", i)})
	}
	all := pacluster.NewRendezvous()
	all.UpdateMembers(members)
	backupOf := map[serve.Topic]string{}
	for _, m := range members {
		for _, tp := range backups(all, members, m.Address(), topics) {
			require.Empty(t, backupOf[tp], "%v is the backup of two members", tp)
			backupOf[tp] = m.Address()
		}
	}
	for _, dead := range members {
		rest := pacluster.Members{}
		for _, m := range members {
			if m != dead {
				rest = append(rest, m)
			}
		}
		after := pacluster.NewRendezvous()
		after.UpdateMembers(rest)
		moved := 0
		for _, tp := range topics {
			ci := pacluster.NewClusterIdentity(identity(tp), kind)
			if all.GetByClusterIdentity(ci) != dead.Address() {
				continue
			}
			require.NotEqual(t, dead.Address(), backupOf[tp], "%v: a member is no backup of its own topic", tp)
			moved++
			require.Equal(t, after.GetByClusterIdentity(ci), backupOf[tp], "%v: taken over by its backup", tp)
		}
		require.Positive(t, moved)
	}
	require.Len(t, backupOf, len(topics), "every topic has a backup")
	require.Nil(t, backups(all, members[:1], members[0].Address(), topics), "alone, no backups")
}
