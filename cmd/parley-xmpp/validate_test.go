package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/serve"
)

// connRecorder is a loopback listener that counts the connections made to it
// and closes each at once: a command pointed at it that checks its input first
// never connects.
type connRecorder struct {
	addr string
	n    atomic.Int32
}

func newConnRecorder(t *testing.T) *connRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &connRecorder{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.n.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return r
}

func (r *connRecorder) service() string { return "xmpp://" + r.addr }

// Bad input to post, fetch and tail is refused with exit status 2 and a
// message naming the argument or flag, before any connection is made.
func TestBadInputIsRefusedBeforeAnyNetwork(t *testing.T) {
	rec := newConnRecorder(t)
	t.Setenv("PARLEY_XMPP_SERVICE", rec.service())
	dir := t.TempDir()
	badState := filepath.Join(dir, "cursors.json")
	require.NoError(t, os.WriteFile(badState, []byte(`{"general": "a b"}`), 0o600))
	notJSON := filepath.Join(dir, "not.json")
	require.NoError(t, os.WriteFile(notJSON, []byte(`{"general": `), 0o600))
	aFile := filepath.Join(dir, "a-file")
	require.NoError(t, os.WriteFile(aFile, nil, 0o600))
	missing := filepath.Join(dir, "missing", "cursors.json")
	longLine := "ok\n" + strings.Repeat("y", 70000) + "\n"

	cases := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"empty topic", "", []string{"post", "", "hi"}, "TOPIC"},
		{"control character in the topic", "", []string{"post", "a\x01b", "hi"}, "TOPIC"},
		{"topic too long for a room name", "", []string{"post", strings.Repeat("é", 400), "hi"}, "TOPIC"},
		{"empty text", "", []string{"post", "general", ""}, "TEXT"},
		{"empty standard input", "\n", []string{"post", "general"}, "TEXT"},
		{"NUL in the text", "", []string{"post", "general", "a\x00b"}, "TEXT"},
		{"invalid UTF-8", "", []string{"post", "general", "a\xffb"}, "TEXT"},
		{"text over the cap", strings.Repeat("x", 64*1024+1), []string{"post", "general"}, "TEXT"},
		{"text too large once escaped", strings.Repeat("&", 60*1024), []string{"post", "general"}, "stanza limit"},
		{"fetch: bad topic", "", []string{"fetch", "a\x7fb"}, "TOPIC"},
		{"negative limit", "", []string{"fetch", "--limit", "-5", "general"}, "--limit"},
		{"limit over the cap", "", []string{"fetch", "--limit", "10001", "general"}, "--limit"},
		{"negative block", "", []string{"fetch", "--block", "-1s", "general"}, "--block"},
		{"malformed block", "", []string{"fetch", "--block", "soon", "general"}, "--block"},
		{"since with white space", "", []string{"fetch", "--since", "a b", "general"}, "--since"},
		{"since with a control character", "", []string{"fetch", "--since", "a\x02", "general"}, "--since"},
		{"since too long", "", []string{"fetch", "--since", strings.Repeat("a", 2000), "general"}, "--since"},
		{"tail: bad topic", "", []string{"tail", "general", ""}, "TOPIC"},
		{"tail: malformed since", "", []string{"tail", "--since", "x\ty", "general"}, "--since"},
		{"tail: bad cursor in the state file", "", []string{"tail", "--state", badState, "general"}, "--state"},
		{"tail: state file not JSON", "", []string{"tail", "--state", notJSON, "general"}, "--state " + notJSON},
		{"tail: state in a missing directory", "", []string{"tail", "--state", missing, "general"}, "--state " + missing + ": the directory " + filepath.Dir(missing) + " doesn't exist"},
		{"tail: state under a file", "", []string{"tail", "--state", filepath.Join(aFile, "x.json"), "general"}, "is not a directory"},
		{"tail: state is a directory", "", []string{"tail", "--state", dir, "general"}, "is a directory"},
		{"tail: negative count", "", []string{"tail", "--count", "-1", "general"}, "--count"},
		{"fetch: cursor file in a missing directory", "", []string{"fetch", "--cursor-file", missing, "general"}, "--cursor-file " + missing},
		{"bench: profile in a missing directory", "", []string{"bench", "--cpuprofile", missing}, "--cpuprofile " + missing},
		{"bench: memory profile in a missing directory", "", []string{"bench", "--memprofile", missing}, "--memprofile " + missing},
		{"post --lines: a line over the cap", longLine, []string{"post", "--lines", "general"}, "line 2 of standard input: 70000 bytes is over the 65536-byte limit"},
		{"post --lines: a bad line", "ok\na\x00b\n", []string{"post", "--lines", "general"}, "line 2 of standard input"},
		{"post --lines: nothing to post", "\n\n", []string{"post", "--lines", "general"}, "--lines"},
		{"post --lines and a TEXT", "", []string{"post", "--lines", "general", "hi"}, "--lines"},
		{"bad --nick", "", []string{"--nick", "a/b", "post", "general", "hi"}, `--nick "a/b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := rec.n.Load()
			code, _, errOut := runCLI(t, c.stdin, c.args...)
			assert.Equal(t, 2, code, errOut)
			assert.Contains(t, errOut, c.want)
			assert.Equal(t, before, rec.n.Load(), "no connection before the input was checked: %s", errOut)
		})
	}

	// A text over the cap is reported with its real size (it is read to its
	// end, keeping no more than can be posted), up to maxInput.
	big := &countingReader{left: 100 << 20}
	var out, errOut bytes.Buffer
	assert.Equal(t, 2, run([]string{"post", "general"}, big, &out, &errOut), errOut.String())
	assert.Equal(t, "parley-xmpp: TEXT (standard input): 104857600 bytes is over the 65536-byte limit (runtime.max_content_bytes in a --config file)\n", errOut.String())
	defer func(m int64) { maxInput = m }(maxInput)
	maxInput = 1 << 20
	endless := &countingReader{left: 1 << 40}
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"post", "general"}, endless, &out, &errOut), errOut.String())
	assert.LessOrEqual(t, endless.read, int(maxInput)+4096, "an endless standard input is read up to maxInput")
	assert.Contains(t, errOut.String(), "TEXT (standard input): over 1048576 bytes")

	// The controls: good input does reach the (useless) server, and fails with 1.
	before := rec.n.Load()
	code, _, stderr := runCLI(t, "", "fetch", "--limit", "5", "general")
	assert.Equal(t, 1, code, stderr)
	assert.Greater(t, rec.n.Load(), before, "the recorder sees a command that connects")
	before = rec.n.Load()
	code, _, stderr = runCLI(t, strings.Repeat("x", 64*1024)+"\n", "post", "general")
	assert.Equal(t, 1, code, "exactly the cap, and a newline: %s", stderr)
	assert.Greater(t, rec.n.Load(), before)
}

// countingReader serves left bytes of 'x' and counts what was read.
type countingReader struct{ left, read int }

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.left -= n
	r.read += n
	return n, nil
}

// serve checks its configuration, state dir, saved state, sinks and metrics
// address before it connects to any server, and refuses with exit status 2.
func TestServeChecksEverythingBeforeAnyNetwork(t *testing.T) {
	rec := newConnRecorder(t)
	t.Setenv("PARLEY_XMPP_SERVICE", rec.service()) // as CI sets it for the live tests
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "script.sh")
	require.NoError(t, os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o600))
	local, err := runtime.RoomLocalpart("general")
	require.NoError(t, err)

	locked := filepath.Join(dir, "locked")
	held, err := serve.Prepare(serve.Options{StateDir: locked})
	require.NoError(t, err)
	t.Cleanup(held.Close)

	corrupt := filepath.Join(dir, "corrupt")
	require.NoError(t, os.MkdirAll(filepath.Join(corrupt, "r"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(corrupt, "r", local+".json"), []byte(`{"cursor": `), 0o600))

	stdout := "{stdout: {}}"
	cases := []struct {
		name            string
		stateDir, sink  string
		servers, listen string
		want            []string
	}{
		{"state dir locked by another engine", locked, stdout, "", "", []string{"serve.state_dir", "in use"}},
		{"corrupt state file", corrupt, stdout, "", "", []string{"serve.routes[0]", "corrupt"}},
		{"exec command not found", filepath.Join(dir, "s1"), "{exec: {command: [no-such-command-xyz]}}", "", "", []string{"serve.routes[0]", "sink.exec.command", "no-such-command-xyz"}},
		{"exec command not executable", filepath.Join(dir, "s2"), "{exec: {command: [" + notExecutable + "]}}", "", "", []string{"sink.exec.command", "permission denied"}},
		{"a bad second server", filepath.Join(dir, "s3"), "{relay: {server: two, topic: elsewhere}}",
			"servers:\n  two:\n    backend_config: {service: 'ftp://127.0.0.1'}\n", "", []string{"servers.two", "scheme"}},
		{"metrics address in use", filepath.Join(dir, "s4"), stdout, "", rec.addr, []string{"serve.metrics_listen"}},
		{"bad on_exhausted", filepath.Join(dir, "s5"), stdout + ", on_exhausted: drop", "", "", []string{"serve.routes[0].on_exhausted", "drop"}},
		{"bad max_attempts", filepath.Join(dir, "s6"), stdout + ", max_attempts: -2", "", "", []string{"serve.routes[0].max_attempts"}},
		{"bad oversize", filepath.Join(dir, "s7"), "{relay: {topic: elsewhere, oversize: chop}}", "", "", []string{"serve.routes[0].sink.relay.oversize"}},
		{"dead-letter command not found", filepath.Join(dir, "s8"), stdout + ", on_exhausted: {dead_letter: {exec: {command: [no-such-dl-xyz]}}}", "", "",
			[]string{"serve.routes[0]", "on_exhausted.dead_letter.exec.command", "no-such-dl-xyz"}},
		{"unknown placeholder in a relay's format", filepath.Join(dir, "s9"), "{relay: {topic: elsewhere, format: '<{nick}> {content}'}}", "", "",
			[]string{"serve.routes[0].sink.relay.format", "unknown placeholder {nick}"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := "backend_config: {service: '" + rec.service() + "'}\n" + c.servers +
				"serve:\n  state_dir: '" + c.stateDir + "'\n"
			if c.listen != "" {
				body += "  metrics_listen: '" + c.listen + "'\n"
			}
			body += "  routes:\n    - {name: r, topics: [general], sink: " + c.sink + "}\n"
			p := filepath.Join(t.TempDir(), "serve.yaml")
			require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
			before := rec.n.Load()
			code, _, errOut := runCLI(t, "", "--config", p, "serve")
			assert.Equal(t, 2, code, errOut)
			for _, w := range c.want {
				assert.Contains(t, errOut, w)
			}
			assert.Equal(t, before, rec.n.Load(), "no connection before the checks: %s", errOut)
		})
	}
}

// A secret file its group or others may open (password_file, .env, the etcd
// password_file) is a configuration error: exit status 2 naming the file and
// "chmod 600 FILE", before any connection to the XMPP server or to etcd.
func TestSecretFilesOpenToOthersAreRefusedBeforeAnyNetwork(t *testing.T) {
	rec := newConnRecorder(t)
	etcd := newConnRecorder(t)
	t.Setenv("PARLEY_XMPP_SERVICE", "")
	t.Setenv("PARLEY_XMPP_PASS", "")
	cases := []struct {
		name, file, yaml string
		args             []string
	}{
		{"password_file", "pw", "backend_config: {service: '" + rec.service() + "', password_file: pw}\n", []string{"post", "general", "hi"}},
		{".env", ".env", "backend_config: {service: '" + rec.service() + "'}\n", []string{"fetch", "general"}},
		{"etcd password_file", "etcd.pass", "backend_config: {service: '" + rec.service() + "'}\n" +
			"serve:\n  state_dir: state\n  routes:\n    - {name: r, topics: [general], sink: {stdout: {}}}\n" +
			"  cluster:\n    name: x\n    etcd: {endpoints: ['" + etcd.addr + "'], username: u, password_file: etcd.pass}\n", []string{"serve"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			secret := filepath.Join(dir, c.file)
			body := "not-for-others\n"
			if c.file == ".env" {
				body = "PARLEY_XMPP_PASS=not-for-others\n"
			}
			require.NoError(t, os.WriteFile(secret, []byte(body), 0o644))
			require.NoError(t, os.Chmod(secret, 0o644)) // whatever the umask
			p := filepath.Join(dir, "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(c.yaml), 0o600))
			code, out, errOut := runCLI(t, "", append([]string{"--config", p}, c.args...)...)
			assert.Equal(t, 2, code, errOut)
			assert.Contains(t, errOut, "chmod 600 "+secret)
			assert.NotContains(t, out+errOut, "not-for-others")
			assert.Equal(t, int32(0), rec.n.Load(), "no connection to the XMPP server: %s", errOut)
			assert.Equal(t, int32(0), etcd.n.Load(), "no connection to etcd: %s", errOut)
		})
	}
}

// serve refuses etcd credentials bound for a non-loopback etcd without TLS:
// exit status 2 naming the endpoint's key, before any connection.
func TestServeRefusesEtcdCredentialsInClearText(t *testing.T) {
	rec := newConnRecorder(t)
	t.Setenv("PARLEY_XMPP_SERVICE", "")
	dir := t.TempDir()
	p := filepath.Join(dir, "serve.yaml")
	require.NoError(t, os.WriteFile(p, []byte("backend_config: {service: '"+rec.service()+"'}\n"+
		"serve:\n  state_dir: '"+filepath.Join(dir, "state")+"'\n  routes:\n    - {name: r, topics: [general], sink: {stdout: {}}}\n"+
		"  cluster:\n    name: x\n    etcd: {endpoints: ['192.0.2.7:2379'], username: parley, password: etcd-pw-in-clear}\n"), 0o600))
	code, out, errOut := runCLI(t, "", "--config", p, "serve")
	assert.Equal(t, 2, code, errOut)
	assert.Contains(t, errOut, "serve.cluster.etcd.endpoints[0]")
	assert.Contains(t, errOut, "etcd.tls")
	assert.NotContains(t, out+errOut, "etcd-pw-in-clear")
	assert.Equal(t, int32(0), rec.n.Load(), "no connection: %s", errOut)
}
