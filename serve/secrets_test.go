package serve

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/seam"
)

// An exec sink's command runs without the engine's PARLEY_XMPP_* variables
// (the passwords among them), unless its env_allowlist names one; the rest of
// the environment and the message's variables reach it.
func TestExecChildGetsNoSecrets(t *testing.T) {
	t.Setenv("PARLEY_XMPP_PASS", "exec-secret-1")
	t.Setenv("PARLEY_XMPP_REMOTE_PASS", "exec-secret-2")
	t.Setenv("PARLEY_XMPP_PASS_FILE", "/run/creds/exec-secret-3")
	t.Setenv("PARLEY_XMPP_DOMAIN", "allowed.example")
	t.Setenv("SOME_OTHER_VAR", "kept")
	out := filepath.Join(t.TempDir(), "env")
	s, err := newExecSink(config.ExecSink{
		Command:      []string{"sh", "-c", `env > "$1"`, "sh", out},
		EnvAllowlist: []string{"PARLEY_XMPP_DOMAIN"},
	})
	require.NoError(t, err)
	_, err = s.deliver(context.Background(), delivery{route: "r", msg: seam.Message{Topic: "t", BackendMsgID: "id1"}, line: []byte("{}\n")})
	require.NoError(t, err)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	env := string(data)
	assert.NotContains(t, env, "exec-secret")
	assert.NotContains(t, env, "PARLEY_XMPP_PASS")
	assert.Contains(t, env, "PARLEY_XMPP_DOMAIN=allowed.example\n", "allowed through")
	assert.Contains(t, env, "SOME_OTHER_VAR=kept\n")
	assert.Contains(t, env, "PARLEY_TOPIC=t\n")
	assert.Contains(t, env, "PARLEY_MESSAGE_ID=id1\n")
}

// A webhook's errors name its URL without user info or query, where tokens
// live: a refused connection, and an answer that isn't 2xx.
func TestWebhookErrorsRedactTheURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, base := range []string{srv.URL, closed.URL} {
		u := strings.Replace(base, "http://", "http://user:hunter2-pw@", 1) + "/hook?token=tok-secret"
		s, err := newWebhookSink(config.WebhookSink{URL: u})
		require.NoError(t, err)
		_, err = s.deliver(context.Background(), delivery{msg: seam.Message{BackendMsgID: "id"}, line: []byte("{}")})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "/hook")
		assert.NotContains(t, err.Error(), "hunter2-pw")
		assert.NotContains(t, err.Error(), "tok-secret")
		s.close()
	}
}
