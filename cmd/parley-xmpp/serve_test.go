package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

// webhook is a sink that records what it acknowledged, and can hold the next
// delivery (to kill the engine while it is in flight).
type webhook struct {
	mu    sync.Mutex
	acked []string
	hold  chan chan int // a request takes a channel, signals it, and answers what comes back
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var m serve.Message
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(rw, err.Error(), 400)
		return
	}
	select {
	case answer := <-w.hold:
		answer <- 0 // "I hold it"
		code := <-answer
		rw.WriteHeader(code)
		if code/100 != 2 {
			return
		}
	default:
	}
	w.mu.Lock()
	w.acked = append(w.acked, m.ID)
	w.mu.Unlock()
}

func (w *webhook) ids() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

// The fan-out engine survives kill -9, once with a delivery in flight and once
// idle: after each restart it resumes after the last message delivered, so
// the sink acknowledges every message exactly once, in order.
func TestServeSurvivesKill9(t *testing.T) {
	s := xmpptest.Require(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "parley-xmpp")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	hook := &webhook{hold: make(chan chan int, 1)}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	topic := topicFor(t)
	cfg := filepath.Join(dir, "serve.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
backend_config:
  service: "xmpp://%s"
  domain: %q
  muc_service: %q
  username: %q
serve:
  state_dir: %q
  routes:
    - name: to-hook
      topics: [%q]
      start: start
      retry_wait: 50ms
      max_retry_wait: 200ms
      sink:
        webhook: {url: %q, timeout: 10s}
`, s.Addr, s.Domain, s.MUC, s.Accounts[0][0], filepath.Join(dir, "state"), topic, srv.URL)), 0o600))

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--config", cfg, "serve")
		cmd.Env = append(os.Environ(), "PARLEY_XMPP_PASS="+s.Accounts[0][1], "PARLEY_XMPP_SERVICE=xmpp://"+s.Addr)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd
	}
	poster, err := runtime.New(runtime.Config{Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[1][0], Password: s.Accounts[1][1]})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, poster.Connect(ctx))
	defer poster.Disconnect(context.Background())
	var posted []string
	post := func(n int) {
		for range n {
			id, err := poster.Post(ctx, seam.Topic(topic), "me", fmt.Sprintf("message %d", len(posted)), seam.PostOptions{})
			require.NoError(t, err)
			posted = append(posted, string(id))
		}
	}
	acked := func(n int) {
		require.Eventually(t, func() bool { return len(hook.ids()) >= n }, 30*time.Second, 20*time.Millisecond, "acked %v, posted %v", hook.ids(), posted)
	}

	engine := start()
	post(5)
	acked(5)

	// Kill -9 with a delivery in flight: the sink has the request, not yet answered.
	answer := make(chan int)
	hook.hold <- answer
	post(1)
	<-answer // held by the sink
	require.NoError(t, engine.Process.Signal(syscall.SIGKILL))
	_, _ = engine.Process.Wait()
	answer <- http.StatusServiceUnavailable // never acknowledged
	post(2)                                 // while the engine is down

	engine = start()
	acked(8)

	// Kill -9 while idle (the last acknowledgement saved, else this would be a
	// crash between a delivery and its save, which redelivers), restart, and
	// one more.
	require.Eventually(t, func() bool { return stateHolds(filepath.Join(dir, "state"), posted[len(posted)-1]) },
		10*time.Second, 10*time.Millisecond, "the engine saved its cursor")
	require.NoError(t, engine.Process.Signal(syscall.SIGKILL))
	_, _ = engine.Process.Wait()
	engine = start()
	post(1)
	acked(9)
	time.Sleep(500 * time.Millisecond) // room for a redelivery to show
	assert.Equal(t, posted, hook.ids(), "every message acknowledged exactly once, in order")

	require.NoError(t, engine.Process.Signal(syscall.SIGTERM))
	state, err := engine.Process.Wait()
	require.NoError(t, err)
	assert.True(t, state.Success(), "serve exits 0 on SIGTERM: %v", state)
}

// stateHolds reports whether a state file under dir (not a save's temp file,
// which starts with a dot) holds cursor.
func stateHolds(dir, cursor string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".json") && !strings.HasPrefix(d.Name(), ".") {
			if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), `"cursor": "`+cursor+`"`) {
				found = true
			}
		}
		return nil
	})
	return found
}

// SIGHUP stops serve gracefully: it exits 0 with every cursor saved, and the
// next run (the configuration read again) resumes after the last delivery.
func TestServeStopsGracefullyOnSIGHUP(t *testing.T) {
	s := xmpptest.Require(t)
	bin := buildCLI(t)
	topic := topicFor(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := writeServeConfig(t, s, fmt.Sprintf("serve:\n  state_dir: %q\n  routes:\n    - {name: out, topics: [%q], start: start, sink: {stdout: {}}}\n", stateDir, topic))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	run := func(want int, then func(*exec.Cmd)) []serve.Message {
		cmd := exec.Command(bin, "--config", cfg, "serve")
		cmd.Env = cliEnv(s)
		var out, errOut syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		require.Eventually(t, func() bool { return strings.Count(out.String(), "\n") >= want }, 30*time.Second, 20*time.Millisecond, "stdout: %s\nstderr: %s", out.String(), errOut.String())
		then(cmd)
		st, err := cmd.Process.Wait()
		require.NoError(t, err)
		assert.True(t, st.Success(), "serve exits 0 on SIGHUP: %v; stderr: %s", st, errOut.String())
		assert.Contains(t, errOut.String(), "SIGHUP: stopping gracefully")
		return decodeLines(t, out.String())
	}
	ids := postAs(t, ctx, s, topic, 3)
	got := run(3, func(cmd *exec.Cmd) {
		require.Eventually(t, func() bool { return stateHolds(stateDir, ids[2]) }, 10*time.Second, 10*time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	})
	require.Len(t, got, 3)
	assert.True(t, stateHolds(stateDir, ids[2]), "the last cursor is saved")

	more := postAs(t, ctx, s, topic, 2)
	got = run(2, func(cmd *exec.Cmd) {
		time.Sleep(300 * time.Millisecond) // room for a redelivery to show
		require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	})
	require.Len(t, got, 2, "resumed after the last delivery: nothing again")
	assert.Equal(t, more, []string{got[0].ID, got[1].ID})
	assert.True(t, stateHolds(stateDir, more[1]))
}
