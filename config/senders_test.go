package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A route's senders become its server's runtime allowlist for its topics;
// bad entries, and routes that read one topic with other senders, are errors
// naming the key.
func TestRouteSenders(t *testing.T) {
	f, err := Parse([]byte(`serve:
  routes:
    - {name: a, topics: [t1, t2], senders: {nicks: [alice], jids: [bob@example.org]}, sink: {stdout: {}}}
    - {name: b, topics: [t2], senders: {jids: [BOB@example.org], nicks: [alice]}, sink: {stdout: {}}}
    - {name: c, topics: [t3], sink: {stdout: {}}}
`))
	require.NoError(t, err)
	want := runtime.Allowlist{Nicks: []string{"alice"}, JIDs: []string{"bob@example.org"}}
	assert.Equal(t, map[seam.Topic]runtime.Allowlist{"t1": want, "t2": want}, f.Serve.Allow(""))
	assert.Nil(t, f.Serve.Allow("other"), "no allowlist: every message, as before")

	for body, msg := range map[string]string{
		"    - {name: a, topics: [t], senders: {}, sink: {stdout: {}}}\n":                                                             "withhold every message",
		"    - {name: a, topics: [t], senders: {jids: [bob]}, sink: {stdout: {}}}\n":                                                  "not a bare JID",
		"    - {name: a, topics: [t], senders: {jids: [bob@x/phone]}, sink: {stdout: {}}}\n":                                          "not a bare JID",
		"    - {name: a, topics: [t], senders: {nicks: [' alice']}, sink: {stdout: {}}}\n":                                            "can't be a nick",
		"    - {name: a, topics: [t], senders: {nick: [alice]}, sink: {stdout: {}}}\n":                                                "nick",
		"    - {name: a, topics: [t], senders: {nicks: [x]}, sink: {stdout: {}}}\n    - {name: b, topics: [t], sink: {stdout: {}}}\n": "other senders than route",
	} {
		_, err := Parse([]byte("serve:\n  routes:\n" + body))
		require.ErrorIs(t, err, ErrConfig, body)
		assert.ErrorContains(t, err, msg, body)
		assert.ErrorContains(t, err, "senders", body)
	}
}
