// Package multisession proves the multi-session example: three configurations
// sharing one server and account, nick unset.
package multisession

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

type seen struct {
	mu   sync.Mutex
	msgs []seam.Message
}

func (s *seen) add(m seam.Message) { s.mu.Lock(); s.msgs = append(s.msgs, m); s.mu.Unlock() }
func (s *seen) all() []seam.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seam.Message(nil), s.msgs...)
}

// Each session sees the others' posts, with distinct, stable senders.
func TestSessionsSeeEachOther(t *testing.T) {
	srv := xmpptest.Require(t)
	t.Setenv("PARLEY_XMPP_SERVICE", "xmpp://"+srv.Addr) // the server under test
	names := []string{"session-a", "session-b", "chat"}
	topic := seam.Topic("multi-session " + strings.ToLower(rand.Text()[:8]))
	rts := make([]*runtime.Runtime, len(names))
	views := make([]*seen, len(names))
	for i, name := range names {
		f, err := config.Load(name + ".yaml")
		require.NoError(t, err)
		require.Empty(t, f.Backend.Nick, "%s pins no nick", name)
		rt, err := runtime.New(f.RuntimeConfig())
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, rt.Connect(ctx))
		cancel()
		t.Cleanup(func() { _ = rt.Disconnect(context.Background()) })
		rts[i], views[i] = rt, &seen{}
		_, err = rt.Subscribe(context.Background(), topic, views[i].add)
		require.NoError(t, err)
	}

	sender := map[string]string{} // content → the nick of the session that posted it
	for round := range 2 {
		for i, rt := range rts {
			content := fmt.Sprintf("%s says hello, round %d", names[i], round)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := rt.Post(ctx, topic, "ignored", content, seam.PostOptions{})
			cancel()
			require.NoError(t, err)
			sender[content] = rt.Nick()
		}
	}
	nicks := map[string]bool{}
	for _, rt := range rts {
		nicks[rt.Nick()] = true
	}
	require.Len(t, nicks, len(rts), "three distinct senders on one account")

	for i, v := range views {
		require.Eventually(t, func() bool { return len(v.all()) == len(sender) }, 5*time.Second, 10*time.Millisecond, "%s sees every post", names[i])
		for _, m := range v.all() {
			assert.Equal(t, seam.Handle(sender[m.Content]), m.SenderHandle, "%s sees %q from its session's nick", names[i], m.Content)
		}
	}
}
