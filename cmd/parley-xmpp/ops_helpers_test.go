package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// buildCLI builds the command into a temp dir and returns its path.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley-xmpp")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	return bin
}

// writeServeConfig writes a configuration for s (the password comes from
// PARLEY_XMPP_PASS, see cliEnv) with a serve block of extra YAML.
func writeServeConfig(t *testing.T, s xmpptest.Server, serveBlock string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "serve.yaml")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("backend_config:\n  service: \"xmpp://%s\"\n  domain: %q\n  muc_service: %q\n  username: %q\n%s",
		s.Addr, s.Domain, s.MUC, s.Accounts[0][0], serveBlock)), 0o600))
	return p
}

// cliEnv is the environment of a command run against s.
func cliEnv(s xmpptest.Server) []string {
	return append(os.Environ(), "PARLEY_XMPP_PASS="+s.Accounts[0][1], "PARLEY_XMPP_SERVICE=xmpp://"+s.Addr)
}

// postAs posts n messages to topic as account 1 of s and returns their ids.
func postAs(t *testing.T, ctx context.Context, s xmpptest.Server, topic string, n int) []string {
	t.Helper()
	poster, err := runtime.New(runtime.Config{Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[1][0], Password: s.Accounts[1][1]})
	require.NoError(t, err)
	require.NoError(t, poster.Connect(ctx))
	defer disconnect(poster)
	var ids []string
	for i := range n {
		id, err := poster.Post(ctx, seam.Topic(topic), "me", fmt.Sprintf("message %d", i), seam.PostOptions{})
		require.NoError(t, err)
		ids = append(ids, string(id))
	}
	return ids
}
