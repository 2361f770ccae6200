package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
)

// goFieldRE finds runtime.Config's Go field names in a message.
var goFieldRE = regexp.MustCompile(`Config\.|\b(MaxContentBytes|MaxStanzaBytes|MaxFetchLimit|FetchLimit|MaxReconnects|MUCService|ConfigFromEnv)\b|\b(Service|Domain|Username|Password|Nick) "`)

// Every error says "parley-xmpp: " once and names the configuration key, the
// variable or the flag to change, not the runtime's Go fields.
func TestErrorsNameKeysAndFlagsOnce(t *testing.T) {
	rec := newConnRecorder(t)
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	svc := "{service: '" + rec.service() + "'"
	small := file("small.yaml", "backend_config: "+svc+"}\nruntime: {max_content_bytes: 10, fetch_limit: 5, max_fetch_limit: 20}\n")
	badNick := file("nick.yaml", "backend_config: "+svc+", nick: 'a/b'}\n")
	badServer := file("server.yaml", "backend_config: "+svc+"}\nservers:\n  two:\n    backend_config: {service: 'xmpp://127.0.0.1', domain: 'a b'}\n")
	limits := file("limits.yaml", "backend_config: "+svc+"}\nruntime: {max_fetch_limit: 20}\n")

	cases := []struct {
		name  string
		env   map[string]string
		stdin string
		args  []string
		code  int
		want  []string
	}{
		{"content over the configured cap", nil, "", []string{"--config", small, "post", "general", "eleven byte"}, 2,
			[]string{"TEXT: invalid content: 11 bytes is over the 10-byte limit (runtime.max_content_bytes)"}},
		{"content over the default cap", nil, strings.Repeat("x", 1<<20), []string{"post", "general"}, 2,
			[]string{"TEXT (standard input): 1048576 bytes is over the 65536-byte limit (runtime.max_content_bytes in a --config file)"}},
		{"stanza over the cap", nil, strings.Repeat("&", 60*1024), []string{"post", "general"}, 2,
			[]string{"runtime.max_stanza_bytes in a --config file"}},
		{"limit over the configured cap", nil, "", []string{"--config", small, "fetch", "--limit", "21", "general"}, 2,
			[]string{"--limit: invalid argument: limit 21 is over the cap of 20 (runtime.max_fetch_limit)"}},
		{"a nick in the file", nil, "", []string{"--config", badNick, "post", "general", "hi"}, 2,
			[]string{badNick + `: backend_config.nick "a/b" holds characters a nick can't`}},
		{"a named server", nil, "", []string{"--config", badServer, "--server", "two", "fetch", "general"}, 2,
			[]string{`servers.two.backend_config.domain "a b"`}},
		{"fetch_limit over max_fetch_limit", nil, "", []string{"--config", limits, "fetch", "general"}, 2,
			[]string{"runtime.max_fetch_limit: 20 is under runtime.fetch_limit's default, 50: set fetch_limit too"}},
		{"a variable", map[string]string{"PARLEY_XMPP_SERVICE": "ftp://x"}, "", []string{"post", "general", "hi"}, 2,
			[]string{`PARLEY_XMPP_SERVICE "ftp://x"`}},
		{"a nick variable", map[string]string{"PARLEY_XMPP_NICK": "a&b"}, "", []string{"fetch", "general"}, 2,
			[]string{`PARLEY_XMPP_NICK "a&b"`}},
		{"the network", map[string]string{"PARLEY_XMPP_SERVICE": rec.service()}, "", []string{"fetch", "general"}, 1,
			[]string{"connect to " + rec.addr}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PARLEY_XMPP_SERVICE", rec.service())
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			code, _, errOut := runCLI(t, c.stdin, c.args...)
			assert.Equal(t, c.code, code, errOut)
			for _, w := range c.want {
				assert.Contains(t, errOut, w)
			}
			assert.Equal(t, 1, strings.Count(errOut, "parley-xmpp: "), "one prefix: %s", errOut)
			assert.True(t, strings.HasPrefix(errOut, "parley-xmpp: "), errOut)
			assert.NotRegexp(t, `(^|: )(usage|config|seam): `, errOut, "no sentinel's word")
			assert.NotRegexp(t, goFieldRE, errOut, "no Go field names")
		})
	}
}

// The translation itself, for the runtime's errors the command can't easily
// provoke.
func TestExplainTranslatesTheRuntimesFieldNames(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("backend_config: {service: 'xmpp://127.0.0.1'}\n"), 0o600))
	f, err := config.Load(p)
	require.NoError(t, err)
	for in, want := range map[string]string{
		`parley-xmpp: bad config: MaxReconnects -1 is negative`:                                                     `parley-xmpp: bad config: runtime.max_reconnects -1 is negative`,
		`parley-xmpp: bad config: Password is empty (set it, or PARLEY_XMPP_PASS for ConfigFromEnv): x`:             `parley-xmpp: bad config: backend_config.password is empty (set password_file, or PARLEY_XMPP_PASS): x`,
		`parley-xmpp: bad config: Service "x" holds credentials: give the account as Username and Password instead`: `parley-xmpp: bad config: backend_config.service "x" holds credentials: give the account as username and password instead`,
		`parley-xmpp: bad config: Allow["t"]: empty`:                                                                `parley-xmpp: bad config: the senders of topic "t": empty`,
		`over the 1-byte stanza limit (Config.MaxStanzaBytes; the server ...)`:                                      `over the 1-byte stanza limit (runtime.max_stanza_bytes; the server ...)`,
	} {
		assert.Equal(t, want, f.Explain("", errString(in)).Error())
	}
	assert.Equal(t, `parley-xmpp: bad config: servers.far.backend_config.muc_service "a b" holds a character a JID can't`,
		f.Explain("far", errString(`parley-xmpp: bad config: MUCService "a b" holds a character a JID can't`)).Error())
}

type errString string

func (e errString) Error() string { return string(e) }
