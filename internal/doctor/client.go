package doctor

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/runtime"
)

// errLinkLost: the server ended the stream while the doctor waited.
var errLinkLost = errors.New("doctor: the server ended the stream")

// client is a sequential XMPP client over xmppconn: one request at a time,
// answers matched by id. The reader hands stanzas over one at a time (it
// waits for the doctor to take each: bounded memory, nothing dropped).
type client struct {
	conn    *xmppconn.Conn
	in      chan any
	stop    chan struct{}
	done    chan struct{} // closed when the stream ended
	err     error         // why, readable once done is closed
	seq     int
	timeout time.Duration
	once    sync.Once
}

func dial(ctx context.Context, p runtime.DialPlan, timeout time.Duration) (*client, error) {
	conn, err := xmppconn.Dial(ctx, xmppconn.OptionsFor(p))
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, in: make(chan any), stop: make(chan struct{}), done: make(chan struct{}), timeout: timeout}
	conn.Start(xmppconn.Handler{
		Stanza: func(s any) {
			select {
			case c.in <- s:
			case <-c.stop:
			}
		},
		Closed: func(err error) { c.err = err; close(c.done) },
	})
	return c, nil
}

func (c *client) close() {
	c.once.Do(func() {
		close(c.stop)
		c.conn.Close(2 * time.Second)
	})
}

func (c *client) id(prefix string) string {
	c.seq++
	return prefix + "-" + strconv.Itoa(c.seq)
}

// next is the next stanza the server sends, within ctx.
func (c *client) next(ctx context.Context) (any, error) {
	select {
	case s := <-c.in:
		return s, nil
	case <-c.done:
		return nil, fmt.Errorf("%w: %v", errLinkLost, c.err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// until reads stanzas until done returns true for one (then returns it), or
// the request times out.
func (c *client) until(ctx context.Context, what string, done func(any) bool) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for {
		s, err := c.next(ctx)
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done(s) {
			return s, nil
		}
	}
}

// iq sends a request and returns its answer; an error answer is an error.
// Other stanzas arriving meanwhile go to other (nil: ignored).
func (c *client) iq(ctx context.Context, id string, req []byte, other func(any)) (stanza.IQ, error) {
	if err := c.conn.Send(req); err != nil {
		return stanza.IQ{}, err
	}
	s, err := c.until(ctx, "the answer to "+id, func(s any) bool {
		if iq, ok := s.(stanza.IQ); ok && iq.ID == id && (iq.Type == "result" || iq.Type == "error") {
			return true
		}
		if other != nil {
			other(s)
		}
		return false
	})
	if err != nil {
		return stanza.IQ{}, err
	}
	iq := s.(stanza.IQ)
	if iq.Type == "error" {
		if iq.Error == nil {
			iq.Error = &stanza.Error{}
		}
		return iq, iq.Error
	}
	return iq, nil
}

// join enters room as nick and returns once the room sent the doctor's own
// presence.
func (c *client) join(ctx context.Context, room, nick string) error {
	_, err := c.enter(ctx, room, nick)
	return err
}

// enter is join, returning the doctor's own presence (its affiliation and
// role in the room).
func (c *client) enter(ctx context.Context, room, nick string) (stanza.Presence, error) {
	if err := c.conn.Send(stanza.JoinPresence(room, nick, c.id("join"))); err != nil {
		return stanza.Presence{}, err
	}
	self := stanza.Occupant(room, nick)
	s, err := c.until(ctx, "the room's presence", func(s any) bool {
		p, ok := s.(stanza.Presence)
		return ok && stanza.SameBare(p.From, room) && (stanza.Resource(p.From) == nick || p.Type == "error")
	})
	if err != nil {
		return stanza.Presence{}, err
	}
	p := s.(stanza.Presence)
	if p.Type == "error" {
		return p, fmt.Errorf("joining %s refused: %v", self, p.Error)
	}
	return p, nil
}

// leave leaves room (it doesn't wait for the room's answer).
func (c *client) leave(room, nick string) error {
	return c.conn.Send(stanza.LeavePresence(room, nick))
}

// post sends bodies to room and returns the room's stanza-ids of their
// reflections, in order.
func (c *client) post(ctx context.Context, room string, bodies []string) ([]string, error) {
	origins := map[string]int{}
	for i, b := range bodies {
		o := c.id("doctor-post")
		origins[o] = i
		if err := c.conn.Send(stanza.GroupchatMessage(room, o, b, stanza.Reply{})); err != nil {
			return nil, err
		}
	}
	ids := make([]string, len(bodies))
	left := len(bodies)
	var failed error
	_, err := c.until(ctx, "the room's reflections", func(s any) bool {
		m, ok := s.(stanza.Message)
		if !ok || !stanza.SameBare(m.From, room) {
			return false
		}
		i, mine := origins[m.OriginID]
		if !mine {
			i, mine = origins[m.ID]
		}
		if !mine {
			return false
		}
		if m.Type == "error" {
			failed = fmt.Errorf("the room refused a post: %v", m.Error)
			return true
		}
		if m.StanzaID.ID != "" && stanza.SameBare(m.StanzaID.By, room) {
			ids[i] = m.StanzaID.ID
		}
		left--
		return left == 0
	})
	if err != nil {
		return nil, err
	}
	return ids, failed
}

// mam queries archive for up to max rows (from the start, or the newest with
// last) and returns the rows and the <fin/>.
func (c *client) mam(ctx context.Context, archive string, max int, last bool) ([]stanza.MAMResult, stanza.Fin, error) {
	id, qid := c.id("mam"), c.id("q")
	var rows []stanza.MAMResult
	iq, err := c.iq(ctx, id, stanza.MAMQueryIQ(archive, id, qid, stanza.Page{Max: max, Last: last}), func(s any) {
		if m, ok := s.(stanza.Message); ok && m.MAM != nil && m.MAM.QueryID == qid && stanza.SameBare(m.MAM.Archive, archive) {
			rows = append(rows, *m.MAM)
		}
	})
	if err != nil {
		return nil, stanza.Fin{}, err
	}
	fin, err := stanza.ParseFin(iq.Payload)
	return rows, fin, err
}

// form asks a room's configuration form: field var → value.
func (c *client) form(ctx context.Context, room string) (map[string]string, error) {
	id := c.id("form")
	iq, err := c.iq(ctx, id, stanza.RoomConfigFormIQ(room, id), nil)
	if err != nil {
		return nil, err
	}
	return formValues(iq.Payload), nil
}

// formValues reads the fields of the data form in a muc#owner payload.
func formValues(payload []byte) map[string]string {
	var v struct {
		X struct {
			Fields []struct {
				Var    string   `xml:"var,attr"`
				Values []string `xml:"value"`
			} `xml:"field"`
		} `xml:"x"`
	}
	out := map[string]string{}
	if xml.Unmarshal(payload, &v) != nil {
		return out
	}
	for _, f := range v.X.Fields {
		if f.Var != "" {
			out[f.Var] = ""
			if len(f.Values) > 0 {
				out[f.Var] = f.Values[0]
			}
		}
	}
	return out
}

// serverTime asks to's XEP-0202 time: its UTC clock, and the local time
// halfway through the round trip.
func (c *client) serverTime(ctx context.Context, to string) (server, local time.Time, err error) {
	id := c.id("time")
	var b bytes.Buffer
	b.WriteString(`<iq type="get" to="`)
	_ = xml.EscapeText(&b, []byte(to))
	b.WriteString(`" id="` + id + `"><time xmlns="urn:xmpp:time"/></iq>`)
	t0 := time.Now()
	iq, err := c.iq(ctx, id, b.Bytes(), nil)
	t1 := time.Now()
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	var v struct {
		XMLName xml.Name
		UTC     string `xml:"utc"`
	}
	if err := xml.Unmarshal(iq.Payload, &v); err != nil || v.XMLName.Space != "urn:xmpp:time" {
		return time.Time{}, time.Time{}, fmt.Errorf("unreadable time answer %q", iq.Payload)
	}
	server, err = stanza.ParseStamp(v.UTC)
	return server, t0.Add(t1.Sub(t0) / 2), err
}

// destroy destroys a room the doctor owns.
func (c *client) destroy(ctx context.Context, room string) error {
	id := c.id("destroy")
	var b bytes.Buffer
	b.WriteString(`<iq type="set" to="`)
	_ = xml.EscapeText(&b, []byte(room))
	b.WriteString(`" id="` + id + `"><query xmlns="` + stanza.NSMUCOwner + `"><destroy><reason>parley-xmpp doctor</reason></destroy></query></iq>`)
	_, err := c.iq(ctx, id, b.Bytes(), nil)
	return err
}
