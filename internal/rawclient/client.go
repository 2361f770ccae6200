// Package rawclient is an XMPP client independent of the runtime: bare go-xmpp
// with none of the runtime's code above it. Tests and the chaos suite use it to
// write to rooms from "another connection" and to read a room's archive without
// trusting the runtime's own MAM code.
package rawclient

import (
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	xmpp "github.com/xmppo/go-xmpp"
)

// Client is an independent XMPP client: bare go-xmpp with its own reader.
type Client struct {
	c   *xmpp.Client
	nl  sync.Mutex
	sub []chan any
	end chan struct{}
}

// Dial logs in to addr (host:port, plain text: loopback test servers only) as
// user@domain.
func Dial(addr, domain, user, password string) (*Client, error) {
	o := xmpp.Options{
		Host: addr, User: user + "@" + domain, Password: password,
		NoTLS: true, InsecureAllowUnencryptedAuth: true, Resource: "rawclient-" + rand.Text()[:8],
		DialTimeout: 5 * time.Second,
	}
	c, err := o.NewClient()
	if err != nil {
		return nil, err
	}
	cl := &Client{c: c, end: make(chan struct{})}
	go cl.read()
	return cl, nil
}

func (cl *Client) read() {
	defer close(cl.end)
	for {
		v, err := cl.c.Recv()
		if err != nil {
			if !StreamEnded(err) {
				continue
			}
			return
		}
		cl.nl.Lock()
		for _, ch := range cl.sub {
			select {
			case ch <- v:
			default:
			}
		}
		cl.nl.Unlock()
	}
}

// StreamEnded reports whether an error of go-xmpp's Recv ended the stream
// (a transport or decoder error, a stream error, the server's
// </stream:stream>), as opposed to one it returns after reading a whole
// element it could not interpret (an unknown top-level element, a pubsub
// event without items: anyone can send one to the account's bare JID, and
// every resource gets it), after which the stream reads on. Test tooling
// on go-xmpp (this client, bench's bare client) reads on past those, as the
// runtime's own reader does.
func StreamEnded(err error) bool {
	var syntax *xml.SyntaxError
	var netErr net.Error
	msg := err.Error()
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &syntax) || errors.As(err, &netErr) ||
		strings.HasPrefix(msg, "stream error") || strings.HasPrefix(msg, "server closed stream")
}

// listen returns a channel of every stanza the client receives from now on,
// and the function that stops it.
func (cl *Client) listen(size int) (<-chan any, func()) {
	ch := make(chan any, size)
	cl.nl.Lock()
	cl.sub = append(cl.sub, ch)
	cl.nl.Unlock()
	return ch, func() {
		cl.nl.Lock()
		defer cl.nl.Unlock()
		for i, c := range cl.sub {
			if c == ch {
				cl.sub = append(cl.sub[:i], cl.sub[i+1:]...)
				return
			}
		}
	}
}

// wait returns the first stanza satisfying ok within d.
func (cl *Client) wait(d time.Duration, send func() error, ok func(any) bool) (any, error) {
	ch, stop := cl.listen(1024)
	defer stop()
	if err := send(); err != nil {
		return nil, err
	}
	deadline := time.After(d)
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return v, nil
			}
		case <-cl.end:
			return nil, errors.New("rawclient: connection ended")
		case <-deadline:
			return nil, errors.New("rawclient: timed out")
		}
	}
}

// Join enters room as nick, asking for no history, and unlocks the room if this
// join created it. Joining a room another connection is creating is retried.
func (cl *Client) Join(room, nick string) error {
	for attempt := 0; ; attempt++ {
		v, err := cl.wait(10*time.Second, func() error {
			_, err := cl.c.SendOrg(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`, room, nick))
			return err
		}, func(v any) bool {
			p, ok := v.(xmpp.Presence)
			return ok && strings.EqualFold(p.From, room+"/"+nick)
		})
		if err != nil {
			return err
		}
		p := v.(xmpp.Presence)
		if p.Type == "error" {
			if p.Error == "item-not-found" && attempt < 50 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("rawclient: join %s: %s", room, p.Error)
		}
		_, err = cl.c.SendOrg(fmt.Sprintf(`<iq type='set' to='%s' id='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`, room, rand.Text()))
		return err
	}
}

// Post sends body to room with extra raw XML inside the <message/> and returns
// the stanza-id of its reflection.
func (cl *Client) Post(room, body, extra string) (string, error) {
	return cl.PostWithOrigin(room, body, rand.Text(), extra)
}

// PostWithOrigin is Post with a chosen XEP-0359 origin-id (which is also the
// message's id): an occupant that knows or guesses another's origin-id.
func (cl *Client) PostWithOrigin(room, body, origin, extra string) (string, error) {
	v, err := cl.wait(10*time.Second, func() error {
		_, err := cl.c.SendOrg(fmt.Sprintf(`<message to='%s' type='groupchat' id='%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/>%s</message>`, room, escape(origin), escape(body), escape(origin), extra))
		return err
	}, func(v any) bool {
		m, ok := v.(xmpp.Chat)
		return ok && m.OriginID == origin
	})
	if err != nil {
		return "", err
	}
	return v.(xmpp.Chat).StanzaID.ID, nil
}

// Send writes raw XML to the stream: a stanza a test makes by hand (a forged
// error, say).
func (cl *Client) Send(raw string) error {
	_, err := cl.c.SendOrg(raw)
	return err
}

// OriginIDs returns a channel of the XEP-0359 origin-id of every groupchat
// message from room the client receives from now on (those without one are
// left out; when the channel is full, ids are dropped), and the function that
// stops it.
func (cl *Client) OriginIDs(room string, size int) (<-chan string, func()) {
	in, stop := cl.listen(size)
	out := make(chan string, size)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case v := <-in:
				m, ok := v.(xmpp.Chat)
				from, _, _ := strings.Cut(m.Remote, "/")
				if !ok || m.Type != "groupchat" || m.OriginID == "" || !strings.EqualFold(from, room) {
					continue
				}
				select {
				case out <- m.OriginID:
				default:
				}
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() { once.Do(func() { stop(); close(quit) }) }
}

// Done is closed once the connection has ended (the server closed it, the link
// broke, or Close).
func (cl *Client) Done() <-chan struct{} { return cl.end }

// Close drops the connection.
func (cl *Client) Close() {
	_, _ = cl.c.SendOrg("</stream:stream>")
	select {
	case <-cl.end:
	case <-time.After(2 * time.Second):
	}
}

// RoomExists asks the MUC service whether room exists (disco#info: an answer,
// or item-not-found).
func (cl *Client) RoomExists(room string) (bool, error) {
	id := rand.Text()
	v, err := cl.wait(10*time.Second, func() error {
		_, err := cl.c.SendOrg(fmt.Sprintf(`<iq type='get' to='%s' id='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, room, id))
		return err
	}, func(v any) bool {
		switch r := v.(type) {
		case xmpp.IQ:
			return r.ID == id
		case xmpp.DiscoResult:
			return r.ID == id
		}
		return false
	})
	if err != nil {
		return false, err
	}
	if iq, ok := v.(xmpp.IQ); ok && iq.Type == "error" {
		if iq.Error.Condition == "item-not-found" {
			return false, nil
		}
		return false, fmt.Errorf("rawclient: disco#info %s: %s", room, iq.Error.Condition)
	}
	return true, nil
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Admin sends a MUC admin or owner IQ (the inner XML of its <query/>, with its
// namespace) to room and waits for the answer.
func (cl *Client) Admin(room, xmlns, inner string) error {
	id := rand.Text()
	v, err := cl.wait(10*time.Second, func() error {
		_, err := cl.c.SendOrg(fmt.Sprintf(`<iq type='set' to='%s' id='%s'><query xmlns='%s'>%s</query></iq>`, room, id, xmlns, inner))
		return err
	}, func(v any) bool {
		iq, ok := v.(xmpp.IQ)
		return ok && iq.ID == id
	})
	if err != nil {
		return err
	}
	if iq := v.(xmpp.IQ); iq.Type == "error" {
		return fmt.Errorf("rawclient: %s refused: %s", room, iq.Error.Condition)
	}
	return nil
}

// Request sends an IQ get to `to` with payload (its child element's XML) and
// returns the answer's type ("result" or "error") within d.
func (cl *Client) Request(to, payload string, d time.Duration) (string, error) {
	id := rand.Text()
	v, err := cl.wait(d, func() error {
		_, err := cl.c.SendOrg(fmt.Sprintf(`<iq type='get' to='%s' id='%s'>%s</iq>`, to, id, payload))
		return err
	}, func(v any) bool {
		switch iq := v.(type) {
		case xmpp.IQ:
			return iq.ID == id
		case xmpp.DiscoResult:
			return iq.ID == id
		}
		return false
	})
	if err != nil {
		return "", err
	}
	if iq, ok := v.(xmpp.IQ); ok {
		return iq.Type, nil
	}
	return "result", nil
}
