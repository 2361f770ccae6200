package conformance_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/seam/conformance"
)

// xmppBreaks are the faults the XMPP negative controls inject into the fake MUC.
type xmppBreaks struct {
	lockNewRooms    bool // a new room refuses other joiners for a while (clause 25)
	duplicateNicks  bool // a taken nick is shared silently (clause 26)
	silentNoArchive bool // a room without MAM reads as an empty history (clause 27)
	trustForgedIDs  bool // a forged stanza-id becomes the message's id (clause 29)
}

// fakeMUC emulates, over the memory store, the XMPP rules the XMPP clauses check,
// so the suite's XMPP code runs in these tests: room occupants with unique nicks,
// a MUC service without archive, and a client that forges stanza-ids which the
// "server" strips.
type fakeMUC struct {
	w      *world
	breaks xmppBreaks

	mu     sync.Mutex
	rooms  map[seam.Topic]*room
	conns  int
	forged map[string]seam.BackendMsgID // content → the forged id a broken backend trusts
}

type room struct {
	occupants   map[string]*occupant // by nick
	lockedUntil time.Time
}

func newFakeMUC(w *world, b xmppBreaks) *fakeMUC {
	return &fakeMUC{w: w, breaks: b, rooms: map[seam.Topic]*room{}, forged: map[string]seam.BackendMsgID{}}
}

func (m *fakeMUC) hooks() *conformance.XMPPFixture {
	return &conformance.XMPPFixture{
		NewConnection:        func(_ testing.TB, nick string) seam.Backend { return m.occupant(nick) },
		NewAccountConnection: func(_ testing.TB, nick string) seam.Backend { return m.occupant(nick) },
		NoArchiveBackend:     m.noArchive,
		PostForged:           m.postForged,
	}
}

// occupant is a connection that joins a topic's room on first use.
type occupant struct {
	hooked
	muc  *fakeMUC
	nick string
}

func (m *fakeMUC) occupant(nick string) seam.Backend {
	m.mu.Lock()
	m.conns++
	if nick == "" {
		nick = fmt.Sprintf("conn-%d", m.conns)
	}
	m.mu.Unlock()
	o := &occupant{hooked: hooked{Backend: m.w.store.NewBackend()}, muc: m, nick: nick}
	o.post = func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
		if err := o.join(topic); err != nil {
			return "", err
		}
		return o.Backend.Post(ctx, topic, who, content, opts)
	}
	o.subscribe = func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
		if err := o.join(topic); err != nil {
			return nil, err
		}
		return o.Backend.Subscribe(ctx, topic, h)
	}
	o.disconnect = func(ctx context.Context) error {
		o.leaveAll()
		return o.Backend.Disconnect(ctx)
	}
	return o
}

func (o *occupant) join(topic seam.Topic) error {
	m := o.muc
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rooms[topic]
	if r == nil { // the joiner creates the room
		r = &room{occupants: map[string]*occupant{}}
		if m.breaks.lockNewRooms {
			r.lockedUntil = time.Now().Add(200 * time.Millisecond)
		}
		m.rooms[topic] = r
		r.occupants[o.nick] = o
		return nil
	}
	if holder, ok := r.occupants[o.nick]; ok && holder != o && !m.breaks.duplicateNicks {
		return fmt.Errorf("fake xmpp: %w: nick %q is taken in room %q", seam.ErrNickConflict, o.nick, topic)
	}
	if time.Now().Before(r.lockedUntil) {
		return fmt.Errorf("fake xmpp: room %q is locked: item-not-found", topic)
	}
	r.occupants[o.nick] = o
	return nil
}

func (o *occupant) leaveAll() {
	m := o.muc
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.rooms {
		if r.occupants[o.nick] == o {
			delete(r.occupants, o.nick)
		}
	}
}

// noArchive is a connected backend on a MUC service without MAM.
func (m *fakeMUC) noArchive(testing.TB) seam.Backend {
	b := m.w.connected()
	if m.breaks.silentNoArchive {
		return b
	}
	errNoMAM := func(topic seam.Topic) error {
		return fmt.Errorf("fake xmpp: room %q: %w", topic, seam.ErrNoArchive)
	}
	return &hooked{
		Backend: b,
		post: func(_ context.Context, topic seam.Topic, _ seam.Handle, _ string, _ seam.PostOptions) (seam.BackendMsgID, error) {
			return "", errNoMAM(topic)
		},
		fetch: func(_ context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
			return seam.FetchRecentResult{}, errNoMAM(args.Topic)
		},
	}
}

// postForged posts from an independent client; the stanza-ids it claims are
// stripped, as a server does, unless the backend is broken to trust them.
func (m *fakeMUC) postForged(ctx context.Context, topic seam.Topic, content string, forgedIDs []string) error {
	if m.breaks.trustForgedIDs {
		m.mu.Lock()
		m.forged[content] = seam.BackendMsgID(forgedIDs[0])
		m.mu.Unlock()
	}
	_, err := m.w.connected().Post(ctx, topic, "forger", content, seam.PostOptions{})
	return err
}

// trustForged is the broken backend's view: a message whose content was forged
// carries the forged id.
func (m *fakeMUC) trustForged(msg seam.Message) seam.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.forged[msg.Content]; ok {
		msg.BackendMsgID = id
	}
	return msg
}
