package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func clearEnv(t *testing.T) {
	for _, e := range env {
		t.Setenv(e.name, "")
	}
}

func TestLoadReadsTheBackendBlock(t *testing.T) {
	clearEnv(t)
	p := write(t, t.TempDir(), "c.yaml", `
backend_config:
  service: "xmpp://127.0.0.1:5222"
  domain: "parley.local"
  muc_service: "muc.parley.local"
  username: "parley"
`)
	f, err := Load(p)
	require.NoError(t, err)
	c := f.RuntimeConfig()
	assert.Equal(t, "xmpp://127.0.0.1:5222", c.Service)
	assert.Equal(t, "muc.parley.local", c.MUCService)
	assert.Equal(t, "parley", c.Username)
	assert.Empty(t, c.Password, "not in the file: the runtime's own default or the environment")
	assert.Empty(t, c.Nick)
}

func TestEnvironmentAndDotEnvOverrideTheFile(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	p := write(t, dir, "c.yaml", "backend_config:\n  username: fromfile\n  nick: filenick\n")
	write(t, dir, ".env", "# secrets\nPARLEY_XMPP_PASS='dotenv-secret'\nexport PARLEY_XMPP_NICK=dotenvnick\n")
	t.Setenv("PARLEY_XMPP_NICK", "envnick")
	f, err := Load(p)
	require.NoError(t, err)
	assert.Equal(t, "dotenv-secret", f.Backend.Password, ".env supplies what the environment lacks")
	assert.Equal(t, "envnick", f.Backend.Nick, "the environment wins over .env and the file")
	assert.Equal(t, "fromfile", f.Backend.Username)
}

func TestUnknownKeysAreErrorsNamingTheKey(t *testing.T) {
	for body, key := range map[string]string{
		"backend_config:\n  sevrice: x\n": "sevrice",
		"backend_confg:\n  service: x\n":  "backend_confg",
		"backend_config:\n  nick: [a]\n":  "nick",
	} {
		_, err := Parse([]byte(body))
		require.Error(t, err, body)
		assert.ErrorIs(t, err, ErrConfig)
		assert.Contains(t, err.Error(), key)
	}
}

func TestBadDotEnvIsAnError(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	p := write(t, dir, "c.yaml", "backend_config: {}\n")
	write(t, dir, ".env", "this is not a pair\n")
	_, err := Load(p)
	assert.ErrorContains(t, err, ".env:1")
}

func TestServeRoutesAndServers(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	p := write(t, dir, "serve.yaml", `
backend_config:
  username: parley
servers:
  other-side:
    backend_config:
      service: "xmpp://127.0.0.1:15222"
      username: parley2
runtime:
  keepalive: 5s
  reconnect_wait: 50ms
  persistent_rooms: true
serve:
  state_dir: /tmp/state
  metrics_listen: 127.0.0.1:9464
  routes:
    - name: to-stdout
      topics: [general, alerts]
      sink: {stdout: {}}
    - name: to-hook
      topics: [alerts]
      start: start
      sink:
        webhook: {url: "http://127.0.0.1:8080/hook", timeout: 2s, headers: {X-Token: abc}}
    - name: relay-out
      topics: [general]
      sink:
        relay: {server: other-side, topic: general-copy}
`)
	write(t, dir, ".env", "PARLEY_XMPP_OTHER_SIDE_PASS=relay-secret\n")
	f, err := Load(p)
	require.NoError(t, err)
	assert.Len(t, f.Serve.Routes, 3)
	c, err := f.ServerConfig("other-side")
	require.NoError(t, err)
	assert.Equal(t, "xmpp://127.0.0.1:15222", c.Service)
	assert.Equal(t, "relay-secret", c.Password, "a named server's password from PARLEY_XMPP_<NAME>_PASS")
	assert.Equal(t, 5*time.Second, c.KeepAlive)
	assert.True(t, c.PersistentRooms)
	assert.Equal(t, 2*time.Second, time.Duration(f.Serve.Routes[1].Sink.Webhook.Timeout))
	_, err = f.ServerConfig("nowhere")
	assert.ErrorContains(t, err, "servers.nowhere")
}

func TestBadServeConfigNamesTheKey(t *testing.T) {
	for body, key := range map[string]string{
		"runtime:\n  keepalive: soon\n":                                                                                           "runtime.keepalive",
		"runtime:\n  max_reconnects: -1\n":                                                                                        "runtime.max_reconnects",
		"serve:\n  routes:\n    - topics: [a]\n      sink: {stdout: {}}\n":                                                        "serve.routes[0].name",
		"serve:\n  routes:\n    - name: r\n      sink: {stdout: {}}\n":                                                            "serve.routes[0].topics",
		"serve:\n  routes:\n    - name: r\n      topics: [a]\n      sink: {}\n":                                                   "serve.routes[0].sink",
		"serve:\n  routes:\n    - name: r\n      topics: [a]\n      sink: {stdout: {}, webhook: {url: 'http://x'}}\n":             "serve.routes[0].sink",
		"serve:\n  routes:\n    - name: r\n      topics: [a]\n      sink: {webhook: {url: 'ftp://x'}}\n":                          "serve.routes[0].sink.webhook.url",
		"serve:\n  routes:\n    - name: r\n      topics: [a]\n      sink: {exec: {}}\n":                                           "serve.routes[0].sink.exec.command",
		"serve:\n  routes:\n    - name: r\n      topics: [a]\n      sink: {relay: {server: nope, topic: b}}\n":                    "serve.routes[0].sink.relay.server",
		"serve:\n  routes:\n    - name: r\n      topics: [a]\n      sink: {relay: {topic: a}}\n":                                  "serve.routes[0].sink.relay.topic",
		"serve:\n  routes:\n    - name: r\n      topics: ['']\n      sink: {stdout: {}}\n":                                        "serve.routes[0].topics[0]",
		"serve:\n  routes:\n    - name: r\n      topics: [a]\n      start: middle\n      sink: {stdout: {}}\n":                    "serve.routes[0].start",
		"serve:\n  routes:\n    - {name: r, topics: [a], sink: {stdout: {}}}\n    - {name: r, topics: [b], sink: {stdout: {}}}\n": "serve.routes[1].name",
		"serve:\n  routes:\n    - {name: r, topics: [a], sink: {stdout: {}}, colour: red}\n":                                      "serve.routes[0].colour",
	} {
		_, err := Parse([]byte(body))
		require.Error(t, err, body)
		assert.Contains(t, err.Error(), key, body)
	}
}

func TestMoreServeChecks(t *testing.T) {
	route := func(extra string) string {
		return "serve:\n  routes:\n" + extra
	}
	for body, want := range map[string]string{
		route("    - {name: ../x, topics: [a], sink: {stdout: {}}}\n"):                                                                "serve.routes[0].name",
		route("    - {name: r, topics: [a, a], sink: {stdout: {}}}\n"):                                                                "serve.routes[0].topics[1]",
		route("    - {name: r, topics: [a], retry_wait: 2m, max_retry_wait: 1m, sink: {stdout: {}}}\n"):                               "serve.routes[0].retry_wait",
		route("    - {name: r, topics: [a], sink: {webhook: {url: 'http://x', headers: {'Bad Name': v}}}}\n"):                         "serve.routes[0].sink.webhook.headers.Bad Name",
		route("    - {name: r1, topics: [a], sink: {relay: {topic: b}}}\n    - {name: r2, topics: [b], sink: {relay: {topic: a}}}\n"): "relays go round in a loop",
		route("    - {name: r, topics: [a], max_attempts: -1, sink: {stdout: {}}}\n"):                                                 "serve.routes[0].max_attempts",
		route("    - {name: r, topics: [a], on_exhausted: drop, sink: {stdout: {}}}\n"):                                               "serve.routes[0].on_exhausted",
		route("    - {name: r, topics: [a], on_exhausted: dead_letter, sink: {stdout: {}}}\n"):                                        "serve.routes[0].on_exhausted",
		route("    - {name: r, topics: [a], on_exhausted: {dead_letter: {}}, sink: {stdout: {}}}\n"):                                  "serve.routes[0].on_exhausted.dead_letter",
		route("    - {name: r, topics: [a], on_exhausted: {dead_letter: {webhook: {url: 'x'}}}, sink: {stdout: {}}}\n"):               "serve.routes[0].on_exhausted.dead_letter.webhook.url",
		route("    - {name: r, topics: [a], on_exhausted: {dead_letter: {webhook: {ulr: 'http://x'}}}, sink: {stdout: {}}}\n"):        "unknown key ulr",
		route("    - {name: r, topics: [a], on_exhausted: {dead_letter: {relay: {topic: z}}}, sink: {stdout: {}}}\n"):                 "serve.routes[0].on_exhausted.dead_letter.relay",
		route("    - {name: r, topics: [a], on_exhausted: {dead: {stdout: {}}}, sink: {stdout: {}}}\n"):                               "unknown key dead",
		route("    - {name: r, topics: [a], sink: {relay: {topic: b, oversize: chop}}}\n"):                                            "serve.routes[0].sink.relay.oversize",
	} {
		_, err := Parse([]byte(body))
		require.Error(t, err, body)
		assert.Contains(t, err.Error(), want, body)
	}
	_, err := Parse([]byte(route("    - {name: r1, topics: [a], sink: {relay: {topic: b}}}\n    - {name: r2, topics: [b], sink: {relay: {topic: c}}}\n")))
	assert.NoError(t, err, "a chain is no loop")

	f, err := Parse([]byte(route("    - {name: r, topics: [a], max_attempts: 3, on_exhausted: {dead_letter: {exec: {command: [cat]}}}, sink: {relay: {topic: b, oversize: split}}}\n" +
		"    - {name: s, topics: [a], on_exhausted: skip, sink: {stdout: {}}}\n")))
	require.NoError(t, err)
	r := f.Serve.Routes[0]
	assert.Equal(t, 3, r.MaxAttempts)
	assert.Equal(t, ExhaustedDeadLetter, r.OnExhausted.Action)
	require.NotNil(t, r.OnExhausted.DeadLetter)
	assert.Equal(t, []string{"cat"}, r.OnExhausted.DeadLetter.Exec.Command)
	assert.Equal(t, OversizeSplit, r.Sink.Relay.Oversize)
	assert.Equal(t, ExhaustedSkip, f.Serve.Routes[1].OnExhausted.Action)
}

// Relay loops are found by the rooms' JIDs (MUC service and room), whatever
// the servers are called or however they are reached: two names of one
// server (a host name and its address, xmpp:// and xmpps://) reach the same
// rooms. Distinct MUC services are distinct rooms.
func TestRelayLoopsAreFoundByRoomJID(t *testing.T) {
	servers := func(a, b string) string {
		return "servers:\n  one:\n    backend_config: {" + a + "}\n  two:\n    backend_config: {" + b + "}\n"
	}
	loop := "serve:\n  routes:\n" +
		"    - {name: r1, server: one, topics: [a], sink: {relay: {server: two, topic: b}}}\n" +
		"    - {name: r2, server: one, topics: [b], sink: {relay: {server: two, topic: a}}}\n"
	self := "serve:\n  routes:\n    - {name: r1, server: one, topics: [a], sink: {relay: {server: two, topic: a}}}\n"
	same := [][2]string{
		{"service: 'xmpp://chat.example.org', muc_service: rooms.example.org", "service: 'xmpp://203.0.113.5', muc_service: rooms.example.org"},
		{"service: 'xmpp://chat.example.org', muc_service: rooms.example.org", "service: 'xmpp://chat-alias.example.net', muc_service: rooms.example.org"},
		{"service: 'xmpp://h'", "service: 'xmpps://h'"}, // one server, its two ports
		{"service: 'xmpp://chat.example.org'", "service: 'XMPP://Chat.Example.ORG.:5222'"},
		{"service: 'xmpp://localhost:5222'", "service: 'xmpp://127.0.0.1'"},
		{"service: 'xmpp://h', muc_service: rooms.a.org", "service: 'xmpp://h', muc_service: 'Rooms.A.org.'"},
		{"", "service: 'xmpp://localhost'"}, // the default server is local
		{"", "muc_service: muc.parley.local"},
	}
	for _, c := range same {
		body := servers(c[0], c[1])
		_, err := Parse([]byte(body + loop))
		require.Error(t, err, "%s", body)
		assert.Contains(t, err.Error(), "relays go round in a loop", body)
		_, err = Parse([]byte(body + self))
		require.Error(t, err, "%s", body)
		assert.Contains(t, err.Error(), "serve.routes[0].sink.relay.topic", body)
		assert.Contains(t, err.Error(), "own room (a@", body)
	}
	differ := [][2]string{
		{"service: 'xmpp://h', muc_service: rooms.a.org", "service: 'xmpp://h', muc_service: chat.a.org"},
		{"service: 'xmpp://a.example', muc_service: rooms.a.example", "service: 'xmpp://b.example', muc_service: rooms.b.example"},
		{"", "service: 'xmpp://127.0.0.1:15222', muc_service: muc.ejabberd.local"},
	}
	for _, c := range differ {
		body := servers(c[0], c[1])
		_, err := Parse([]byte(body + loop))
		assert.NoError(t, err, body)
		_, err = Parse([]byte(body + self))
		assert.NoError(t, err, body)
	}
}

func TestLongRouteNamesAreRefused(t *testing.T) {
	body := "serve:\n  routes:\n    - {name: " + strings.Repeat("r", 201) + ", topics: [a], sink: {stdout: {}}}\n"
	_, err := Parse([]byte(body))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "serve.routes[0].name")
	_, err = Parse([]byte(strings.Replace(body, strings.Repeat("r", 201), strings.Repeat("r", 200), 1)))
	assert.NoError(t, err)
}

func TestStanzaLimitsReachTheRuntime(t *testing.T) {
	clearEnv(t)
	f, err := Parse([]byte("runtime:\n  max_stanza_bytes: 100000\n  max_inbound_stanza_bytes: 2097152\n"))
	require.NoError(t, err)
	c := f.RuntimeConfig()
	assert.Equal(t, 100000, c.MaxStanzaBytes)
	assert.Equal(t, 2097152, c.MaxInboundStanzaBytes)
	for _, key := range []string{"runtime.max_stanza_bytes", "runtime.max_inbound_stanza_bytes"} {
		_, err := Parse([]byte("runtime:\n  " + key[len("runtime."):] + ": -1\n"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), key)
	}
}

// Without a file, the command's configuration is the PARLEY_XMPP_* variables
// (runtime.ConfigFromEnv) and the runtime's defaults.
func TestFromEnv(t *testing.T) {
	for _, e := range env {
		t.Setenv(e.name, "")
	}
	t.Setenv("PARLEY_XMPP_SERVICE", "xmpp://127.0.0.1:15222")
	t.Setenv("PARLEY_XMPP_NICK", "envnick")
	c := FromEnv().RuntimeConfig()
	assert.Equal(t, "xmpp://127.0.0.1:15222", c.Service)
	assert.Equal(t, "envnick", c.Nick)
	assert.Empty(t, c.Domain)
}

// stream_management: on unless set false (issue 22).
func TestStreamManagementReachesTheRuntime(t *testing.T) {
	clearEnv(t)
	for body, disabled := range map[string]bool{
		"runtime:\n  stream_management: false\n": true,
		"runtime:\n  stream_management: true\n":  false,
		"runtime:\n  keepalive: 30s\n":           false,
	} {
		f, err := Parse([]byte(body))
		require.NoError(t, err)
		assert.Equal(t, disabled, f.RuntimeConfig().DisableStreamManagement, body)
	}
}

// A relative state_dir is relative to the configuration file's directory, as
// password_file is, wherever the command runs; an absolute one stays.
func TestStateDirIsRelativeToTheFile(t *testing.T) {
	clearEnv(t)
	confDir, cwd := t.TempDir(), t.TempDir()
	t.Chdir(cwd)
	p := write(t, confDir, "c.yaml", "serve:\n  state_dir: state\n  routes: [{name: r, topics: [a], sink: {stdout: {}}}]\n")
	f, err := Load(p)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(confDir, "state"), f.Serve.StateDir)

	abs := write(t, confDir, "abs.yaml", "serve:\n  state_dir: /var/lib/parley\n")
	f, err = Load(abs)
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/parley", f.Serve.StateDir)

	// In the working directory, the two agree.
	here := write(t, cwd, "here.yaml", "serve:\n  state_dir: state\n")
	f, err = Load(filepath.Base(here))
	require.NoError(t, err)
	assert.Equal(t, "state", f.Serve.StateDir)

	// The state where it used to resolve (the working directory), none beside
	// the file: refused, naming both, so that no cursor is lost.
	require.NoError(t, os.Mkdir(filepath.Join(cwd, "state"), 0o700))
	_, err = Load(p)
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "serve.state_dir")
	assert.Contains(t, err.Error(), filepath.Join(confDir, "state"))
	assert.Contains(t, err.Error(), filepath.Join(cwd, "state"))
	// Once moved, fine.
	require.NoError(t, os.Mkdir(filepath.Join(confDir, "state"), 0o700))
	f, err = Load(p)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(confDir, "state"), f.Serve.StateDir)
}

// A relay's format names known placeholders only, keeps {content}, and
// balances its braces; the error names the key.
func TestRelayFormatIsCheckedAtLoad(t *testing.T) {
	route := func(format string) string {
		return "serve:\n  routes:\n    - {name: r, topics: [a], sink: {relay: {topic: b, format: '" + format + "'}}}\n"
	}
	for _, ok := range []string{"<{sender}> {content}", "{content}", "[{topic}] {content} ({id}, {timestamp})", "{{literal}} {content}"} {
		_, err := Parse([]byte(route(ok)))
		assert.NoError(t, err, ok)
	}
	for format, want := range map[string]string{
		"<{nick}> {content}":  "unknown placeholder {nick}",
		"<{sender}>":          "has no {content}",
		"{content":            "is not closed",
		"{content} }":         "closes nothing",
		"{Content}":           "unknown placeholder {Content}",
		"<{sender}> {content": "is not closed",
	} {
		_, err := Parse([]byte(route(format)))
		require.ErrorIs(t, err, ErrConfig, format)
		assert.Contains(t, err.Error(), "serve.routes[0].sink.relay.format", format)
		assert.Contains(t, err.Error(), want, format)
	}
	assert.Equal(t, "{x} <bob> hi", ExpandRelayFormat("{{x}} <{sender}> {content}", map[string]string{"sender": "bob", "content": "hi"}))
}
