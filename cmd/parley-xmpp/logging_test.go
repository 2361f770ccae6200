package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

func TestDuplicateKeys(t *testing.T) {
	assert.Empty(t, duplicateKeys(t, `{"a":1,"b":{"a":2,"c":[1,{"a":3}]},"c":"a"}`))
	assert.Equal(t, []string{"topic"}, duplicateKeys(t, `{"topic":"x","n":{"topic":1},"room":"r","topic":"x"}`))
}

func TestLogFlagsRefuseBadValues(t *testing.T) {
	code, _, errOut := runCLI(t, "", "--log-format", "xml", "room", "general")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--log-format")
	code, _, errOut = runCLI(t, "", "--log-level", "loud", "room", "general")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--log-level")
	code, _, errOut = runCLI(t, "", "-v", "--log-level", "error", "room", "general")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--log-level")
	code, _, _ = runCLI(t, "", "-v", "--log-level", "debug", "--log-format", "json", "room", "general")
	assert.Equal(t, 0, code)
}

// In JSON mode, an error ending the command is a JSON line too.
func TestJSONLogsEndWithAJSONError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(p, []byte("backend_config:\n  sevice: x\n"), 0o600))
	code, _, errOut := runCLI(t, "", "--log-format", "json", "--config", p, "room", "general")
	assert.Equal(t, 2, code)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(errOut)), &rec), "stderr %q", errOut)
	assert.Equal(t, "ERROR", rec["level"])
	assert.Contains(t, rec["msg"], "backend_config.sevice")
	assert.EqualValues(t, 2, rec["exit"])
}

// A real serve with --log-format json --log-level debug writes only JSON
// lines on standard error, and those about a route, a topic or a room say
// which.
func TestServeLogsJSONWithRouteTopicRoom(t *testing.T) {
	s := xmpptest.Require(t)
	bin := buildCLI(t)
	topic := topicFor(t)
	cfg := writeServeConfig(t, s, fmt.Sprintf(`serve:
  state_dir: %q
  routes:
    - name: to-stdout
      topics: [%q]
      start: start
      sink:
        stdout: {}
`, filepath.Join(t.TempDir(), "state"), topic))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	posted := postAs(t, ctx, s, topic, 3)

	var stdout, stderr syncBuffer
	cmd := exec.Command(bin, "--config", cfg, "--log-format", "json", "--log-level", "debug", "serve")
	cmd.Env = cliEnv(s)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	require.Eventually(t, func() bool { return strings.Count(stdout.String(), "\n") >= len(posted) }, 30*time.Second, 20*time.Millisecond,
		"stdout %q", stdout.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	st, err := cmd.Process.Wait()
	require.NoError(t, err)
	assert.True(t, st.Success(), "serve exits 0 on SIGTERM: %v; stderr %s", st, stderr.String())

	var delivered, roomLines, progress, online int
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "every stderr line is JSON: %q", line)
		assert.Empty(t, duplicateKeys(t, line), "a key twice in %q", line)
		for _, k := range []string{"time", "level", "msg"} {
			assert.Contains(t, rec, k, "line %q", line)
		}
		if rec["lib"] == "protoactor" {
			continue
		}
		if _, ok := rec["route"]; ok {
			assert.Equal(t, "to-stdout", rec["route"], "line %q", line)
			assert.Equal(t, topic, rec["topic"], "a route's line names its topic: %q", line)
		}
		if _, ok := rec["room"]; ok {
			roomLines++
			assert.Equal(t, topic, rec["topic"], "a room's line names its topic: %q", line)
			assert.Contains(t, rec["room"], "@"+s.MUC, "line %q", line)
		}
		if rec["msg"] == "delivered" {
			delivered++
			assert.Equal(t, "to-stdout", rec["route"], "line %q", line)
		}
		if rec["msg"] == "online" {
			online++
			assert.Equal(t, "default", rec["server"], "the runtime's lines name their server: %q", line)
		}
		if msg := fmt.Sprint(rec["msg"]); strings.HasPrefix(msg, "starting ") || strings.HasPrefix(msg, "caught up") || strings.HasPrefix(msg, "resuming") {
			progress++
			assert.Equal(t, "to-stdout", rec["route"], "a progress line names its route: %q", line)
		}
	}
	require.NoError(t, sc.Err())
	assert.Equal(t, len(posted), delivered, "one debug line per delivery, each with route and topic:\n%s", stderr.String())
	assert.Positive(t, roomLines, "the room's lines (joined, ...) carry room and topic:\n%s", stderr.String())
	assert.Equal(t, 1, online, "one link, logged online once, with its server:\n%s", stderr.String())
	assert.Positive(t, progress, "the route's progress is logged, with route and topic:\n%s", stderr.String())
}

// duplicateKeys lists the top-level keys a JSON object repeats (slog writes a
// key twice when a logger's With and a call both set it; shippers differ on
// which they keep).
func duplicateKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	seen, depth := map[string]bool{}, 0
	var dups []string
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return dups
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
				expectKey = depth == 1 && v == '{'
			} else {
				depth--
				expectKey = depth == 1
			}
			continue
		case string:
			if depth == 1 && expectKey {
				if seen[v] {
					dups = append(dups, v)
				}
				seen[v] = true
				expectKey = false
				continue
			}
		}
		if depth == 1 {
			expectKey = true
		}
	}
}
