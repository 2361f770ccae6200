//go:build linux

package serve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/seam"
)

// A command that outlives its timeout is killed with everything it started,
// counted as a failure, and run again.
func TestExecTimeoutKillsTheProcessGroup(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("exec timeout")
	out := filepath.Join(t.TempDir(), "out.jsonl")
	t.Setenv("OUT", out)

	// The first run starts a child that would hold stderr open for a minute,
	// and waits for it; later runs deliver.
	script := `if [ ! -e "$OUT.slow" ]; then
	touch "$OUT.slow"
	sleep 60 &
	echo $! > "$OUT.pid"
	wait
fi
cat >> "$OUT"`
	dir, rec := t.TempDir(), newFakeRecorder()
	log, logged := testLogger(t)
	run := start(t, Options{
		Routes: []config.Route{{
			Name: "slow-exec", Topics: []string{string(topic)},
			Sink: config.Sink{Exec: &config.ExecSink{Command: []string{"sh", "-c", script},
				Timeout: config.Duration(300 * time.Millisecond)}},
			RetryWait: config.Duration(10 * time.Millisecond),
		}},
		StateDir: dir, Backends: map[string]Backend{"": rt}, Logger: log, Metrics: rec, Wait: 5 * time.Second,
	})
	file := stateOf(t, dir, "slow-exec", topic)
	waitForState(t, file)
	ids := post(t, rt, topic, "late")
	waitForCursor(t, file, seam.Cursor(ids[0]))
	run.stop(t)

	data, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(data), "\n"), "delivered once, by the second run")
	_, failures, _ := rec.counts("slow-exec", topic)
	assert.Equal(t, 1, failures)
	assert.Contains(t, logged.String(), "timed out after 300ms")

	pidText, err := os.ReadFile(out + ".pid")
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !alive(pid) }, waitFor, tick, "the command's child (pid %d) survived the timeout", pid)
}

// alive says whether pid runs (a zombie waiting to be reaped doesn't).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || !strings.HasPrefix(string(stat[i+1:]), " Z")
}

// A handler that exits 65 (EX_DATAERR) refuses the message for good; any other
// failure is retried.
func TestExecRefusal(t *testing.T) {
	for script, refused := range map[string]bool{"exit 65": true, "exit 1": false, "exit 75": false} {
		s, err := newExecSink(config.ExecSink{Command: []string{"sh", "-c", script}})
		require.NoError(t, err)
		_, err = s.deliver(context.Background(), delivery{route: "r", line: []byte("{}\n")})
		require.Error(t, err, script)
		assert.Equal(t, refused, errors.Is(err, ErrRefused), "%s: %v", script, err)
	}
}
