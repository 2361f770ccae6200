package runtime_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/rawclient"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/seam"
)

// strangerOwns has account parley2 create a fresh topic's room, as "stranger",
// and make it non-anonymous: every occupant, and the archive, sees each
// sender's real JID. The client is closed when the test ends.
func strangerOwns(t *testing.T, s xmpptest.Server) (seam.Topic, string, *rawclient.Client) {
	t.Helper()
	topic := freshTopic()
	room := roomOf(t, s, topic)
	cl, err := xmpptest.Dial(s, 1)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	require.NoError(t, cl.Join(room, "stranger"))
	require.NoError(t, cl.Admin(room, "http://jabber.org/protocol/muc#owner",
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`+
			`<field var='muc#roomconfig_whois'><value>anyone</value></field></x>`))
	return topic, room, cl
}

// Another account in the destination room posts PostOnce's key first (a key
// it predicted), in a room that shows real JIDs: PostOnce is not fooled and
// posts the real message; a runtime of the same account (a restart) then finds
// that one. Also when the stranger's message claims our JID in an <x/> of its
// own (Prosody archives it beside the true one).
func TestPostOnceIgnoresAnotherAccountsOriginID(t *testing.T) {
	s := xmpptest.Require(t)
	ours := s.Accounts[0][0] + "@" + s.Domain
	for _, tc := range []struct{ name, extra string }{
		{"plain", ""},
		{"claiming our JID", `<x xmlns='http://jabber.org/protocol/muc#user'><item jid='` + ours + `'/></x>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, room, stranger := strangerOwns(t, s)

			key := "relay-" + strings.ToLower(string(topic[len(topic)-12:])) // predictable: derived without a secret
			forged, err := stranger.PostWithOrigin(room, "forged", key, tc.extra)
			require.NoError(t, err)

			rt := connected(t, newRuntime(t, s, 0, nil))
			id, err := rt.PostOnce(ctx5(t), topic, key, "the real message", nil)
			require.NoError(t, err)
			assert.NotEqual(t, seam.BackendMsgID(forged), id, "PostOnce took another account's message for its own")

			restarted := connected(t, newRuntime(t, s, 0, nil)) // same account, another process
			again, err := restarted.PostOnce(ctx5(t), topic, key, "the real message", nil)
			require.NoError(t, err)
			assert.Equal(t, id, again, "the same account's post is found, not posted again")

			page, err := restarted.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
			require.NoError(t, err)
			assert.Equal(t, []string{"forged", "the real message"}, contents(page.Messages))
			require.Len(t, page.Messages, 2)
			assert.Equal(t, id, page.Messages[1].BackendMsgID)
		})
	}
}
