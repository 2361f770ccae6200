package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
			assert.Equal(t, "default", rec["server"], "a route's line names its server: %q", line)
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

// serveLogs runs serve on topic (one message posted first) with args before
// the command, calls during(stderr) once the message is delivered, stops it
// with SIGTERM, and returns its standard error's lines.
func serveLogs(t *testing.T, s xmpptest.Server, extra string, during func(stderr *syncBuffer), args ...string) []string {
	t.Helper()
	bin := buildCLI(t)
	topic := topicFor(t)
	cfg := writeServeConfig(t, s, fmt.Sprintf(`%sserve:
  state_dir: %q
  routes:
    - name: to-stdout
      topics: [%q]
      start: start
      sink:
        stdout: {}
`, extra, filepath.Join(t.TempDir(), "state"), topic))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	postAs(t, ctx, s, topic, 1)
	var stdout, stderr syncBuffer
	cmd := exec.Command(bin, append(append([]string{"--config", cfg}, args...), "serve")...)
	cmd.Env = cliEnv(s)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	require.Eventually(t, func() bool { return strings.Count(stdout.String(), "\n") >= 1 }, 30*time.Second, 20*time.Millisecond,
		"stdout %q; stderr %s", stdout.String(), stderr.String())
	if during != nil {
		during(&stderr)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	st, err := cmd.Process.Wait()
	require.NoError(t, err)
	assert.True(t, st.Success(), "serve exits 0 on SIGTERM: %v; stderr %s", st, stderr.String())
	return strings.Split(strings.TrimSpace(stderr.String()), "\n")
}

// textLine finds the first text record with message msg and returns it.
func textLine(lines []string, msg string) string {
	for _, l := range lines {
		if strings.Contains(l, "msg="+strconv.Quote(msg)+" ") || strings.Contains(l, "msg="+msg+" ") {
			return l
		}
	}
	return ""
}

// Every progress line of serve is a log record (issue 19): in text mode with
// a time, a level and attributes, the link's loss, failed logins (with the
// attempt and when the next comes) and the reconnect (with its cause) among
// them; shown at the default level in text and JSON; hidden by --log-level
// warn.
func TestServeProgressIsLogRecords(t *testing.T) {
	s := xmpptest.Require(t)
	t.Run("text, default level, a reconnect", func(t *testing.T) {
		proxy := xmpptest.NewRecordingProxy(t, s.Addr)
		via := s
		via.Addr = proxy.Addr
		// Stream management off: a lost link logs in again (a resumption,
		// the default where the server offers it, logs no failed login).
		lines := serveLogs(t, via, "runtime:\n  dial_timeout: 500ms\n  reconnect_wait: 200ms\n  stream_management: false\n", func(stderr *syncBuffer) {
			time.Sleep(1100 * time.Millisecond) // a link up for a second reconnects at once
			proxy.SetSilent(true)
			require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "login failed; retrying") }, 20*time.Second, 20*time.Millisecond,
				"a failed login: %s", stderr.String())
			proxy.SetSilent(false)
			require.Eventually(t, func() bool { return strings.Contains(stderr.String(), `msg=reconnected`) }, 20*time.Second, 20*time.Millisecond,
				"the reconnect: %s", stderr.String())
		})
		for _, l := range lines {
			assert.Regexp(t, `^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=`, l, "every line is a record")
			assert.NotContains(t, l, "level=DEBUG", "the default level is info")
		}
		for msg, attrs := range map[string][]string{
			"starting from the archive's start": {"level=INFO", "server=default", "route=to-stdout", "topic="},
			"serving 1 routes":                  {"level=INFO", "routes=1"},
			"online":                            {"level=INFO", "server=default", "attempt=1"},
			"connection lost; reconnecting":     {"level=INFO", "server=default", "err="},
			"login failed; retrying":            {"level=INFO", "server=default", "err=", "attempt=", "retry_in="},
			"reconnected":                       {"level=INFO", "server=default", "cause=", "attempt=", "down="},
		} {
			l := textLine(lines, msg)
			if !assert.NotEmpty(t, l, "a line %q:\n%s", msg, strings.Join(lines, "\n")) {
				continue
			}
			for _, a := range attrs {
				assert.Contains(t, l, a, "line %q", l)
			}
		}
	})
	t.Run("json, default level", func(t *testing.T) {
		lines := serveLogs(t, s, "", nil, "--log-format", "json")
		var msgs []string
		for _, l := range lines {
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &rec), "every line is JSON: %q", l)
			msgs = append(msgs, fmt.Sprint(rec["msg"]))
			if rec["msg"] == "starting from the archive's start" {
				assert.Equal(t, "INFO", rec["level"])
				assert.Equal(t, "to-stdout", rec["route"])
			}
		}
		assert.Contains(t, msgs, "starting from the archive's start", "progress at the default level")
		assert.Contains(t, msgs, "serving 1 routes")
		assert.Contains(t, msgs, "online")
	})
	t.Run("text, --log-level warn", func(t *testing.T) {
		lines := serveLogs(t, s, "", nil, "--log-level", "warn")
		for _, l := range lines {
			assert.NotContains(t, l, "level=INFO", "--log-level warn hides progress")
			assert.NotContains(t, l, "serving 1 routes")
		}
	})
}
