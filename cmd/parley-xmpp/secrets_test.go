package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// demo and bench log in without TLS: they refuse a server that is not on
// loopback (exit 2, before any connection), and never echo credentials.
func TestDemoAndBenchRefuseRemoteServers(t *testing.T) {
	t.Setenv("PARLEY_XMPP_PASS", "demo-secret-pw")
	for _, svc := range []string{"xmpp://192.0.2.1:5222", "xmpp://chat.example.org", "xmpp://u:hunter2@192.0.2.1"} {
		t.Setenv("PARLEY_XMPP_SERVICE", svc)
		for _, args := range [][]string{{"demo", "--duration", "2s"}, {"bench", "--scale", "0.01"}} {
			code, out, errOut := runCLI(t, "", args...)
			assert.Equal(t, 2, code, "%s %v: %s", svc, args, errOut)
			assert.Contains(t, errOut, "only against a server on loopback", args)
			assert.NotContains(t, out+errOut, "hunter2")
			assert.NotContains(t, out+errOut, "demo-secret-pw")
		}
	}
}

// With tls configured (TLS mandatory), demo and bench refuse even a loopback
// server: they log in without TLS.
func TestDemoAndBenchRefuseWhenTLSIsConfigured(t *testing.T) {
	dir := t.TempDir()
	xmpptest.NewCA(t, "any").WriteFile(t, dir)
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("backend_config: {service: \"xmpp://127.0.0.1:5222\", tls: {ca_file: ca.pem}}\n"), 0o600))
	for _, args := range [][]string{{"--config", cfg, "demo", "--duration", "2s"}, {"--config", cfg, "bench", "--scale", "0.01"}} {
		code, _, errOut := runCLI(t, "", args...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, "sets tls", args)
	}
}

// runFor runs the command in-process until it ends or ctx does, and returns
// everything it wrote to standard output and standard error.
func runFor(ctx context.Context, args ...string) string {
	var out, errOut syncBuffer
	a := &app{in: strings.NewReader(""), out: &out, errOut: &errOut}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(&errOut, "parley-xmpp: %v\n", err)
	}
	return out.String() + errOut.String()
}

// Every command, at debug level, against a real Prosody (a private one, for an
// account with a password found nowhere else): no byte of what it prints holds
// the password, nor its base64 forms (SASL PLAIN). serve's exec sink child
// prints its whole environment to its stderr, which the engine logs.
func TestNoCommandPrintsThePassword(t *testing.T) {
	pw := "Lk-" + rand.Text()[:16]
	p := xmpptest.StartProsody(t, xmpptest.PrivateOptions{NoTLS: true, Accounts: map[string]string{"leakcheck": pw}})
	for k, v := range map[string]string{
		"PARLEY_XMPP_SERVICE": "xmpp://" + p.Addr, "PARLEY_XMPP_DOMAIN": p.Domain, "PARLEY_XMPP_MUC": p.MUC,
		"PARLEY_XMPP_USER": "leakcheck", "PARLEY_XMPP_PASS": pw, "PARLEY_XMPP_NICK": "", "PARLEY_XMPP_TRANSIENT_MUC": "",
	} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	childEnv := filepath.Join(dir, "child-env")
	topic := "leak-" + strings.ToLower(rand.Text()[:8])
	cfg := filepath.Join(dir, "serve.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `
serve:
  state_dir: %q
  routes:
    - {name: out, topics: [%q], start: start, sink: {stdout: {}}}
    - name: child
      topics: [%q]
      start: start
      retry_wait: 1s
      sink: {exec: {command: ["sh", "-c", "env > \"$0\"; env >&2; exit 1", %q]}}
`, filepath.Join(dir, "state"), topic, topic, childEnv), 0o600))

	var all strings.Builder
	within := func(d time.Duration, until func() bool, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if until != nil {
			go func() {
				for ctx.Err() == nil && !until() {
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(300 * time.Millisecond)
				cancel()
			}()
		}
		out := runFor(ctx, args...)
		t.Logf("%v: %d bytes of output", args, len(out))
		all.WriteString(out)
	}
	within(20*time.Second, nil, "-v", "post", topic, "hello from the leak check")
	within(20*time.Second, nil, "-v", "fetch", topic)
	within(1500*time.Millisecond, nil, "-v", "tail", topic)
	within(20*time.Second, nil, "-v", "room", topic)
	within(20*time.Second, func() bool { _, err := os.Stat(childEnv); return err == nil }, "-v", "--config", cfg, "serve")
	within(60*time.Second, nil, "-v", "demo", "--topics", "1", "--duration", "2s")
	within(60*time.Second, nil, "-v", "bench", "--scale", "0.01", "--only", "post-sequential")

	got := all.String()
	assert.Contains(t, got, "hello from the leak check", "the commands ran against the server")
	assert.Contains(t, got, "level=DEBUG", "at debug level")
	assert.Contains(t, got, "PARLEY_TOPIC="+topic, "the exec child's environment reached the log")
	for _, f := range xmpptest.SecretForms("leakcheck", p.Domain, pw) {
		assert.NotContains(t, got, f, "a command printed the password")
	}
	env, err := os.ReadFile(childEnv)
	require.NoError(t, err, "the exec sink's child ran")
	assert.NotContains(t, string(env), pw, "the exec child saw the password")
}
