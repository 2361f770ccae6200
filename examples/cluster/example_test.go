// Package cluster proves the cluster example: three engines started from the
// same file share its topics, every message is printed once by one of them,
// and cluster status lists the three.
package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/etcdtest"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

func TestClusterExample(t *testing.T) {
	s := xmpptest.Require(t)
	e := etcdtest.Start(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "parley-xmpp")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/parley-xmpp")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	// The example, with the test's etcd and topics of its own (start: start,
	// so that a node starting late still prints what came before it).
	data, err := os.ReadFile("serve.yaml")
	require.NoError(t, err)
	suffix := "-" + strings.ToLower(rand.Text()[:8])
	var topics []string
	for _, tp := range []string{"general", "alerts", "builds", "deploys", "random", "support"} {
		topics = append(topics, "ex-"+tp+suffix)
	}
	yaml := strings.NewReplacer(
		`"127.0.0.1:2379"`, `"`+e.ClientURL+`"`,
		"name: example", "name: example"+suffix,
		"topics: [general, alerts, builds, deploys, random, support]", "topics: ["+strings.Join(topics, ", ")+"]",
		"start: newest", "start: start",
	).Replace(string(data))
	cfg := filepath.Join(dir, "serve.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(yaml), 0o600))
	env := append(os.Environ(), "PARLEY_XMPP_PASS="+s.Accounts[0][1], "PARLEY_XMPP_SERVICE=xmpp://"+s.Addr)

	var outs []string
	for i := range 3 {
		out := filepath.Join(dir, "node"+string(rune('1'+i))+".jsonl")
		outs = append(outs, out)
		f, err := os.Create(out)
		require.NoError(t, err)
		cmd := exec.Command(bin, "--config", cfg, "serve")
		cmd.Env, cmd.Stdout = env, f
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_, _ = cmd.Process.Wait()
			_ = f.Close()
		})
	}

	p, err := runtime.New(runtime.Config{Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[1][0], Password: s.Accounts[1][1]})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, p.Connect(ctx))
	defer p.Disconnect(context.Background())
	// Post once the three nodes share the topics (status: 3 members, every
	// topic owned, by 3 nodes): before that, the first node to start holds
	// them all, and would print every message.
	require.Eventually(t, func() bool {
		out, err := exec.Command(bin, "--config", cfg, "cluster", "status").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "3 members") {
			return false
		}
		owners := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if fs := strings.Fields(line); len(fs) >= 4 && fs[0] == "topic" {
				if fs[3] == "unowned" {
					return false
				}
				owners[fs[3]] = true
			}
		}
		return len(owners) == 3
	}, time.Minute, 300*time.Millisecond, "the three nodes share the topics")
	want := map[string]bool{}
	for _, tp := range topics {
		for range 2 {
			id, err := p.Post(ctx, seam.Topic(tp), "me", "hello "+tp, seam.PostOptions{})
			require.NoError(t, err)
			want[string(id)] = true
		}
	}

	printed := func() (map[string]int, map[string]bool) {
		count, nodes := map[string]int{}, map[string]bool{}
		for _, out := range outs {
			f, err := os.Open(out)
			require.NoError(t, err)
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var m struct{ ID string }
				if json.Unmarshal(sc.Bytes(), &m) == nil && want[m.ID] {
					count[m.ID]++
					nodes[out] = true
				}
			}
			_ = f.Close()
		}
		return count, nodes
	}
	require.Eventually(t, func() bool { c, _ := printed(); return len(c) == len(want) }, time.Minute, 200*time.Millisecond,
		"every message printed by some node")
	time.Sleep(time.Second)
	count, nodes := printed()
	for id, n := range count {
		assert.Equal(t, 1, n, "message %s printed once", id)
	}
	// Placement bounds every node's load to ceil(6/3) = 2 topics once the
	// three are registered (issue 20: plain hashing put all 6 on one node
	// about once in 240 runs; CI saw it fail once). The messages were posted
	// after the three started, but the first node holds every topic until
	// the others register: so this holds once cluster status lists them.
	assert.Greater(t, len(nodes), 1, "the topics are shared: more than one node printed")

	status, err := exec.Command(bin, "--config", cfg, "cluster", "status").CombinedOutput()
	require.NoError(t, err, string(status))
	assert.Contains(t, string(status), "3 members", string(status))
	for _, tp := range topics {
		assert.Regexp(t, `topic\s+everything\s+`+tp+`\s+\S+ \(\S+/\d+\)`, string(status))
	}
}
