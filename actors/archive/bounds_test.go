package archive

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// The bounds of one read, against a session that stands in for a server whose
// paging never ends (runtime/hostile_paging_test.go has the same over a
// scripted XMPP server, with the default bounds).

const testRoom = "room@muc.example"

// pagingSession answers the archive's disco#info (the room archives) and
// every MAM query with page(n), n counting the queries from 1.
type pagingSession struct {
	page    func(n int) ([]stanza.MAMResult, string)
	mu      sync.Mutex
	queries int
	sent    []string // the MAM queries, as sent
}

func (s *pagingSession) Receive(ctx actor.Context) {
	iq, ok := ctx.Message().(*session.IQ)
	if !ok {
		return
	}
	if iq.QueryID == "" {
		ctx.Send(ctx.Sender(), &session.IQResult{ID: iq.ID, IQ: stanza.IQ{Type: "result", Features: []string{stanza.NSMAM}}})
		return
	}
	s.mu.Lock()
	s.queries++
	n := s.queries
	s.sent = append(s.sent, string(iq.Stanza))
	s.mu.Unlock()
	rows, fin := s.page(n)
	for _, r := range rows {
		r.QueryID = iq.QueryID
		ctx.Send(ctx.Sender(), &session.MAMRow{QueryID: iq.QueryID, Row: r})
	}
	ctx.Send(ctx.Sender(), &session.IQResult{ID: iq.ID, IQ: stanza.IQ{Type: "result", Payload: []byte(fin)}})
}

func (s *pagingSession) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// more is a <fin/> that says there is more after last.
func more(first, last string) string {
	return fmt.Sprintf("<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><first>%s</first><last>%s</last></set></fin>", first, last)
}

func message(id string) stanza.MAMResult {
	return stanza.MAMResult{ID: id, Message: stanza.Forwarded{From: testRoom + "/alice", Type: "groupchat", Body: id, HasBody: true}}
}

func chatState(id string) stanza.MAMResult {
	return stanza.MAMResult{ID: id, Message: stanza.Forwarded{From: testRoom + "/alice", Type: "groupchat"}}
}

// read runs q on an archive over s (tune sets its bounds) and returns the answer.
func read(t *testing.T, s *pagingSession, tune func(*Config), q *Query) *Result {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(sys.Shutdown)
	cfg := Config{Room: testRoom, Topic: "topic", Session: sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return s })), IQTimeout: time.Second,
		PageSize: defaults.MAMPageSize, MaxResults: defaults.MaxMAMResults, MaxExtraPages: defaults.MaxArchiveExtraPages,
		MaxIdlePages: defaults.MaxArchiveIdlePages, MaxNonMessageRows: defaults.MaxArchiveNonMessageRows}
	if tune != nil {
		tune(&cfg)
	}
	res, err := sys.Root.RequestFuture(sys.Root.Spawn(Props(cfg)), q, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return res.(*Result)
}

var start = seam.Cursor("")

// A server that answers one new message a page, always with more: the read
// ends after the pages its limit needs and MaxExtraPages more, though every
// page made progress.
func TestReadEndsPastItsExtraPages(t *testing.T) {
	s := &pagingSession{page: func(n int) ([]stanza.MAMResult, string) {
		id := fmt.Sprintf("m%d", n)
		return []stanza.MAMResult{message(id)}, more(id, id)
	}}
	res := read(t, s, func(c *Config) { c.PageSize, c.MaxExtraPages = 10, 5 }, &Query{Since: &start, Limit: 100})
	if !errors.Is(res.Err, vocab.ErrArchiveRunaway) {
		t.Fatalf("answer: %d entries, err %v; want vocab.ErrArchiveRunaway", len(res.Entries), res.Err)
	}
	if n := s.count(); n != 10+5 {
		t.Fatalf("%d queries, want 15 (10 pages of 10 for the limit of 100, 5 more)", n)
	}
}

// Reading the newest messages backwards through pages of chat states: the
// read ends once it has passed over MaxNonMessageRows of them.
func TestBackwardReadEndsAtMaxNonMessageRows(t *testing.T) {
	s := &pagingSession{page: func(n int) ([]stanza.MAMResult, string) {
		var rows []stanza.MAMResult
		for i := range 4 {
			rows = append(rows, chatState(fmt.Sprintf("s%d-%d", n, i)))
		}
		return rows, more(rows[0].ID, rows[3].ID)
	}}
	res := read(t, s, func(c *Config) { c.MaxNonMessageRows = 10 }, &Query{Limit: 5})
	if !errors.Is(res.Err, vocab.ErrArchiveRunaway) {
		t.Fatalf("answer: %d entries, err %v; want vocab.ErrArchiveRunaway", len(res.Entries), res.Err)
	}
	if n := s.count(); n != 3 {
		t.Fatalf("%d queries, want 3 (12 rows that aren't messages > 10)", n)
	}
}

// A read whose caller is gone before it starts asks for no page.
func TestAbandonedReadAsksNothing(t *testing.T) {
	s := &pagingSession{page: func(n int) ([]stanza.MAMResult, string) { return nil, more("", "x") }}
	done := make(chan struct{})
	close(done)
	res := read(t, s, nil, &Query{Since: &start, Limit: 10, Done: done})
	if !errors.Is(res.Err, ErrAbandoned) {
		t.Fatalf("answer: %d entries, err %v; want ErrAbandoned", len(res.Entries), res.Err)
	}
	if n := s.count(); n != 0 {
		t.Fatalf("%d queries, want none", n)
	}
}

// A read backwards from Before asks for the page before it, and then the
// pages before that, until its limit: the rows strictly before Before,
// oldest first.
func TestBackwardReadFromBefore(t *testing.T) {
	s := &pagingSession{page: func(n int) ([]stanza.MAMResult, string) {
		a, b := message(fmt.Sprintf("m%d", 20-2*n)), message(fmt.Sprintf("m%d", 21-2*n))
		return []stanza.MAMResult{a, b}, more(a.ID, b.ID)
	}}
	before := seam.Cursor("m20")
	res := read(t, s, func(c *Config) { c.PageSize = 2 }, &Query{Before: &before, Limit: 3})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var got []string
	for _, e := range res.Entries {
		got = append(got, string(e.Message.BackendMsgID))
	}
	if fmt.Sprint(got) != "[m17 m18 m19]" {
		t.Fatalf("entries %v, want [m17 m18 m19]", got)
	}
	if len(s.sent) != 2 || !strings.Contains(s.sent[0], "<before>m20</before>") || !strings.Contains(s.sent[1], "<before>m18</before>") {
		t.Fatalf("queries %q: want before m20, then before m18", s.sent)
	}
}
