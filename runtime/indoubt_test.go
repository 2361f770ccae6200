package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/chaos"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Every outcome that leaves a sent post in doubt is errors.Is(err,
// seam.ErrPostInDoubt) (also runtime.ErrPostInDoubt), besides its own cause; a
// post that was never sent is not. The scripted room swallows posts: no
// reflection ever comes, so a post stays in flight.
func TestEveryInDoubtOutcomeIsErrPostInDoubt(t *testing.T) {
	swallow := func(sent chan<- struct{}) *fakeMUC {
		return &fakeMUC{onMessage: func(*xmpptest.Stream, xmpptest.Element) {
			select {
			case sent <- struct{}{}:
			default:
			}
		}}
	}
	post := func(rt *runtime.Runtime, once bool) <-chan error {
		done := make(chan error, 1)
		go func() {
			var err error
			if once {
				_, err = rt.PostOnce(context.Background(), hostileTopic, "a-key", "in flight", nil)
			} else {
				_, err = rt.Post(context.Background(), hostileTopic, "me", "in flight", seam.PostOptions{})
			}
			done <- err
		}()
		return done
	}
	wait := func(t *testing.T, ch <-chan error) error {
		t.Helper()
		select {
		case err := <-ch:
			require.Error(t, err)
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("the post never resolved")
		}
		return nil
	}
	inDoubt := func(t *testing.T, err error, cause error) {
		t.Helper()
		assert.ErrorIs(t, err, seam.ErrPostInDoubt)
		assert.ErrorIs(t, err, runtime.ErrPostInDoubt)
		assert.ErrorIs(t, err, cause)
	}

	for _, once := range []bool{false, true} {
		name := map[bool]string{false: "Post", true: "PostOnce"}[once]
		t.Run(name+": Disconnect", func(t *testing.T) {
			sent := make(chan struct{}, 1)
			rt := hostileRuntime(t, swallow(sent), nil)
			done := post(rt, once)
			<-sent
			require.NoError(t, rt.Disconnect(ctx5(t)))
			inDoubt(t, wait(t, done), seam.ErrDisconnected)
		})
		t.Run(name+": gave up reconnecting", func(t *testing.T) {
			sent := make(chan struct{}, 1)
			f := swallow(sent)
			f.streams = make(chan *xmpptest.Stream, 1)
			srv := xmpptest.NewScripted(t, "parley.local", f.run)
			rt := scriptedRuntime(t, srv, func(c *runtime.Config) {
				c.MaxReconnects, c.ReconnectWait = 1, 10*time.Millisecond
			})
			done := post(rt, once)
			<-sent
			srv.Close()
			err := wait(t, done)
			inDoubt(t, err, seam.ErrNotConnected)
			assert.ErrorIs(t, err, vocab.ErrGaveUp)
		})
		t.Run(name+": no reflection in time", func(t *testing.T) {
			sent := make(chan struct{}, 1)
			rt := hostileRuntime(t, swallow(sent), func(c *runtime.Config) { c.PostTimeout = 300 * time.Millisecond })
			inDoubt(t, wait(t, post(rt, once)), vocab.ErrPostTimeout)
		})
	}
	t.Run("never sent: Disconnect during an outage", func(t *testing.T) {
		f := &fakeMUC{}
		srv := xmpptest.NewScripted(t, "parley.local", f.run)
		rt := scriptedRuntime(t, srv, nil)
		srv.Close()
		require.Eventually(t, func() bool { return rt.State() == runtime.Reconnecting }, 5*time.Second, 5*time.Millisecond)
		done := post(rt, false)
		time.Sleep(100 * time.Millisecond) // waiting for the link
		require.NoError(t, rt.Disconnect(ctx5(t)))
		err := wait(t, done)
		assert.True(t, errors.Is(err, seam.ErrDisconnected) || errors.Is(err, seam.ErrNotConnected), "%v", err)
		assert.NotErrorIs(t, err, seam.ErrPostInDoubt, "a post never sent is not in doubt")
	})
}

// A live message from another occupant that carries the origin-id of a post in
// flight (it raced the post, knowing the key) does not resolve the post; the
// post's own reflection, from the runtime's nick, does. The scripted room
// sends the stranger's copy first.
func TestHostileLiveOriginIDFromAnotherNickIsNotOurs(t *testing.T) {
	f := &fakeMUC{}
	f.onMessage = func(st *xmpptest.Stream, m xmpptest.Element) {
		body, origin := postOf(m)
		for _, r := range []struct{ nick, id string }{{"stranger", "forged-1"}, {f.nick, "real-1"}} {
			st.Send(`<message type='groupchat' from='%s/%s' to='%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='%s'/></message>`,
				hostileRoom, r.nick, st.JID, xmpptest.Escape(body), origin, hostileRoom, r.id)
		}
	}
	rt := hostileRuntime(t, f, nil)
	id, err := rt.PostOnce(ctx5(t), hostileTopic, "a-key", "hi", nil)
	require.NoError(t, err)
	assert.Equal(t, seam.BackendMsgID("real-1"), id)
	id, err = rt.Post(ctx5(t), hostileTopic, "me", "hi", seam.PostOptions{})
	require.NoError(t, err)
	assert.Equal(t, seam.BackendMsgID("real-1"), id)
}

// postOf returns the body and origin-id of a post the scripted room received.
func postOf(m xmpptest.Element) (body, origin string) {
	var o struct {
		ID string `xml:"id,attr"`
	}
	m.Child("body", &body)
	m.Child("origin-id", &o)
	return body, o.ID
}

// On a real server, through a proxy that goes silent after the post is sent
// (its reflection never comes back): Disconnect, or giving up reconnecting,
// fails the post with seam.ErrPostInDoubt.
func TestPostInDoubtThroughASilentLink(t *testing.T) {
	s := xmpptest.Require(t)
	for _, how := range []string{"Disconnect", "gave up reconnecting"} {
		t.Run(how, func(t *testing.T) {
			proxy, err := chaos.NewProxy(s.Addr)
			require.NoError(t, err)
			t.Cleanup(proxy.Close)
			var pending countingMetrics
			rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
				c.Service = "xmpp://" + proxy.Addr()
				c.Metrics = &pending
				// A login through the silent proxy hangs until DialTimeout: the first
				// reconnect fails then, and the runtime gives up.
				c.MaxReconnects, c.ReconnectWait, c.DialTimeout = 1, 10*time.Millisecond, 3*time.Second
				c.KeepAlive = -1
			}))
			topic := freshTopic()
			_, err = rt.Post(ctx5(t), topic, "me", "joins the room", seam.PostOptions{})
			require.NoError(t, err)
			require.NoError(t, proxy.Blackhole())
			done := make(chan error, 1)
			go func() {
				_, err := rt.Post(context.Background(), topic, "me", "into the void", seam.PostOptions{})
				done <- err
			}()
			require.Eventually(t, func() bool { return pending.pending.Load() == 1 }, 5*time.Second, 5*time.Millisecond, "the post is sent")
			if how == "Disconnect" {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = rt.Disconnect(ctx) // the silent link can't close cleanly
			} else {
				require.NoError(t, proxy.KillAll())
			}
			select {
			case err := <-done:
				assert.ErrorIs(t, err, seam.ErrPostInDoubt)
				if how == "Disconnect" {
					assert.ErrorIs(t, err, seam.ErrDisconnected)
				} else {
					assert.ErrorIs(t, err, vocab.ErrGaveUp)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the post never resolved")
			}
		})
	}
}
