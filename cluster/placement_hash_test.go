package cluster

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/serve"
)

// realisticMembers are member names as operators make them: consecutive
// ports, consecutive IPs, host names that differ in one character, and
// generated node ids.
var realisticMembers = map[string][]string{
	"ports": {"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"},
	"ips":   {"10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946"},
	"hosts": {"parley-a.internal:7946", "parley-b.internal:7946", "parley-c.internal:7946"},
	"names": {"node1", "node2", "node3"},
	"ids":   {"k3jq7v2mxa", "p0c9w4ht1e", "zz81fq6dny"},
}

func topicIdents(route string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = identity(serve.Topic{Route: route, Topic: fmt.Sprintf("topic-%d", i)})
	}
	return out
}

// spread is how many of idents each member gets under placer.
func spread(members, idents []string, placer func([]string, string) string) map[string]int {
	got := map[string]int{}
	for _, m := range members {
		got[m] = 0
	}
	for _, id := range idents {
		got[placer(members, id)]++
	}
	return got
}

// spreadAssigned is how many of idents each member gets under assign.
func spreadAssigned(members, idents []string) map[string]int {
	got := map[string]int{}
	for _, m := range members {
		got[m] = 0
	}
	for _, m := range assign(members, idents) {
		got[m]++
	}
	return got
}

func ratio(counts map[string]int) float64 {
	lo, hi := -1, 0
	for _, c := range counts {
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
	}
	if lo == 0 {
		return 1e9
	}
	return float64(hi) / float64(lo)
}

// fnvPlace is the placement issue 20 measured (protoactor's Rendezvous:
// FNV-1a 32 over identity then address): kept to show the test fails it.
func fnvPlace(members []string, ident string) string {
	best, bestScore := "", uint32(0)
	for _, m := range members {
		h := fnv.New32a()
		h.Write([]byte(ident))
		h.Write([]byte(m))
		if s := h.Sum32(); s > bestScore {
			best, bestScore = m, s
		}
	}
	return best
}

// Issue 20 item 3: 3 nodes × 300 topics with realistic names: the busiest
// node holds at most 1.25× the least busy.
func TestPlacementIsBalanced(t *testing.T) {
	idents := topicIdents("out", 300)
	for name, members := range realisticMembers {
		got := spreadAssigned(members, idents)
		assert.LessOrEqual(t, ratio(got), 1.25, "%s: %v", name, got)
		t.Logf("%s: %v", name, got)
	}
	// The old hash fails the same check (issue 20: 2:1:1 on consecutive
	// ports): the test can tell.
	bad := 0
	for _, members := range realisticMembers {
		if ratio(spread(members, idents, fnvPlace)) > 1.25 {
			bad++
		}
	}
	assert.Positive(t, bad, "FNV-1a placement is skewed on some realistic names")
}

// A property over random member sets (consecutive ports from a random base,
// consecutive IPs, one-character host names, random ids; 3 to 5 members;
// 30 to 600 topics): assign keeps every set within 1.25× whenever the mean
// is large enough for the bound to mean something (N/n ≥ 20), and exactly
// within one topic of even when n divides N. Plain rendezvous hashing with
// the same (well-mixed) score meets 1.25× for 3 × 300 in only ~75% of draws:
// the bound needs the bounded loads, not just a better hash; FNV meets it in
// none.
func TestPlacementIsBalancedProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(20, 20))
	trials, plainOK, fnvOK, threes := 300, 0, 0, 0
	idents300 := topicIdents("out", 300)
	for i := range trials {
		n := 3 + r.IntN(3)
		base := 1024 + r.IntN(60000)
		var members []string
		for j := range n {
			switch i % 4 {
			case 0:
				members = append(members, fmt.Sprintf("127.0.0.1:%d", base+j))
			case 1:
				members = append(members, fmt.Sprintf("10.%d.%d.%d:7946", base%256, base/256%256, j+1))
			case 2:
				members = append(members, fmt.Sprintf("parley-%c.dc%d.internal", 'a'+j, base))
			default:
				members = append(members, strings.ToLower(fmt.Sprintf("%x", r.Uint64())))
			}
		}
		ntopics := 30 + r.IntN(571)
		idents := topicIdents(fmt.Sprintf("r%d", r.IntN(1000)), ntopics)
		got := spreadAssigned(members, idents)
		total := 0
		for _, c := range got {
			total += c
		}
		require.Equal(t, ntopics, total, "every topic placed once")
		if ntopics/n >= 20 {
			require.LessOrEqual(t, ratio(got), 1.25, "%d topics on %v: %v", ntopics, members, got)
		}
		if n == 3 {
			threes++
			three := members[:3]
			if ratio(spread(three, idents300, place)) <= 1.25 {
				plainOK++
			}
			if ratio(spread(three, idents300, fnvPlace)) <= 1.25 {
				fnvOK++
			}
		}
	}
	t.Logf("3 × 300 within 1.25×: assign %d, plain rendezvous (xxhash+fmix64) %d, fnv %d, of %d 3-member draws", threes, plainOK, fnvOK, threes)
}

// A node joining moves about 1/n of the topics (n the members after the
// join); one leaving about its own share. Under assign a few more move (a
// full member's overflow shifts): at most 1/n + 5%.
func TestPlacementMovesAboutOneNth(t *testing.T) {
	idents := topicIdents("out", 300)
	for name, members := range realisticMembers {
		grown := append(append([]string{}, members...), "joiner-"+name)
		for _, set := range [][]string{members, grown} {
			joiner := set[len(set)-1]
			before, after := assign(set[:len(set)-1], idents), assign(set, idents)
			moved, toJoiner := 0, 0
			for _, id := range idents {
				if before[id] != after[id] {
					moved++
					if after[id] == joiner {
						toJoiner++
					}
				}
			}
			share := float64(moved) / float64(len(idents))
			t.Logf("%s: %d → %d members: %d of %d moved (%d to the joiner)", name, len(set)-1, len(set), moved, len(idents), toJoiner)
			assert.LessOrEqual(t, share, 1/float64(len(set))+0.05, "%s: joining moves about 1/n", name)
			assert.GreaterOrEqual(t, share, 1/float64(len(set))-0.05, "%s: the joiner gets its share", name)
		}
	}
	// Plain rendezvous: exactly the joiner's wins move.
	idents = topicIdents("out", 900)
	for name, members := range realisticMembers {
		joiner := members[len(members)-1]
		before := members[:len(members)-1]
		moved := 0
		for _, id := range idents {
			a, b := place(before, id), place(members, id)
			if a != b {
				moved++
				require.Equal(t, joiner, b, "%s: %s moved between old members", name, id)
			}
		}
		share := float64(moved) / float64(len(idents))
		assert.InDelta(t, 1.0/float64(len(members)), share, 0.05, "%s: moved %d of %d", name, moved, len(idents))
		for _, id := range idents {
			if place(members, id) != joiner {
				require.Equal(t, place(members, id), place(without(members, joiner), id), "%s: leaving moves only the leaver's", name)
			}
		}
	}
}

// Placement doesn't depend on the members' order, and is the same in another
// process (no per-process seed: every node must compute the same answer).
func TestPlacementIsDeterministic(t *testing.T) {
	idents := topicIdents("out", 300)
	members := realisticMembers["ports"]
	var sb strings.Builder
	for _, id := range idents {
		p := place(members, id)
		require.Equal(t, p, place([]string{members[2], members[0], members[1]}, id))
		fmt.Fprintf(&sb, "%s=%s\n", id, p)
	}
	a, b := assign(members, idents), assign([]string{members[1], members[2], members[0]}, append(idents[150:], idents[:150]...))
	require.Equal(t, a, b, "assign depends on neither order")
	for _, id := range idents {
		fmt.Fprintf(&sb, "assign %s=%s\n", id, a[id])
	}
	if os.Getenv("PARLEY_PLACEMENT_CHILD") != "" {
		fmt.Print(sb.String())
		return
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run", "^TestPlacementIsDeterministic$")
	cmd.Env = append(os.Environ(), "PARLEY_PLACEMENT_CHILD=1")
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), sb.String(), "another process places the same way")
	// And pinned values: a change of the score is a change of every
	// cluster's placement (mixed versions would disagree): make it on purpose.
	assert.Equal(t, uint64(0x5fdfdb8385e64d2b), score("out/topic-0", "127.0.0.1:7001"))
}

func BenchmarkScore(b *testing.B) {
	for range b.N {
		_ = score("out/some-topic-name", "k3jq7v2mxa")
	}
}

func BenchmarkScoreSHA256(b *testing.B) {
	for range b.N {
		s := sha256.Sum256([]byte("out/some-topic-name\x00k3jq7v2mxa"))
		_ = binary.BigEndian.Uint64(s[:8])
	}
}
