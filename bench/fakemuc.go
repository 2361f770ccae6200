package bench

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/parley-go/parley-xmpp/internal/fakexmpp"
)

// fakeMUC is the least of an XMPP server and MUC service that lets a runtime
// join rooms and then feeds it messages as fast as a socket can carry them. It
// is for the in-process fan-out workload, which measures the runtime's fan-out
// and not any server's: a real server delivers a few thousand messages a second
// to one connection. It listens on 127.0.0.1 only and serves one client.
type fakeMUC struct {
	ln     net.Listener
	domain string
	muc    string

	mu     sync.Mutex
	conn   net.Conn
	jid    string
	joined map[string]bool   // rooms joined
	nicks  map[string]string // room → the client's nick in it
	seq    int               // the last stanza-id issued
	ready  chan struct{}     // closed when the client is logged in
	done   chan struct{}     // closed when the server has stopped
}

func newFakeMUC(domain, muc string) (*fakeMUC, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &fakeMUC{ln: ln, domain: domain, muc: muc, joined: map[string]bool{}, nicks: map[string]string{}, ready: make(chan struct{}), done: make(chan struct{})}
	go f.serve()
	return f, nil
}

func (f *fakeMUC) addr() string { return f.ln.Addr().String() }

func (f *fakeMUC) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	if f.conn != nil {
		_ = f.conn.Close()
	}
	f.mu.Unlock()
	<-f.done
}

func (f *fakeMUC) serve() {
	defer close(f.done)
	c, err := f.ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	f.mu.Lock()
	f.conn = c
	f.mu.Unlock()
	st, err := fakexmpp.Login(c, f.domain, 10*time.Second, nil)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.jid = st.JID
	f.mu.Unlock()
	close(f.ready)
	for {
		e, err := st.Next()
		if err != nil {
			return
		}
		f.answer(e)
	}
}

func (f *fakeMUC) send(s string) {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	_, _ = io.WriteString(c, s)
}

// answer plays the server and the room for what a runtime sends while joining
// and idling: presences are reflected as our own, disco#info offers an archive
// (which is always empty), everything else IQ is answered with an empty result.
func (f *fakeMUC) answer(e fakexmpp.Element) {
	to, from := e.Get("to"), f.jid
	switch e.XMLName.Local {
	case "presence":
		room, _, _ := strings.Cut(to, "/")
		kind := ""
		if e.Get("type") == "unavailable" {
			kind = " type='unavailable'"
		} else {
			f.mu.Lock()
			f.joined[room] = true
			_, f.nicks[room], _ = strings.Cut(to, "/")
			f.mu.Unlock()
		}
		f.send(fmt.Sprintf(`<presence from='%s' to='%s' id='%s'%s><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/><status code='110'/></x></presence>`, to, from, e.Get("id"), kind))
	case "message":
		if e.Get("type") != "groupchat" {
			return
		}
		// Reflect a post with the room's id, as the poster's occupant. The body and
		// origin-id are copied as they came (the fake doesn't unescape).
		var post struct {
			Body   string `xml:"body"`
			Origin struct {
				ID string `xml:"id,attr"`
			} `xml:"origin-id"`
		}
		_ = xml.Unmarshal([]byte("<m>"+e.Inner+"</m>"), &post)
		f.mu.Lock()
		nick := f.nicks[to]
		f.seq++
		seq := f.seq
		f.mu.Unlock()
		var body strings.Builder
		_ = xml.EscapeText(&body, []byte(post.Body))
		f.send(fmt.Sprintf(`<message from='%s/%s' to='%s' type='groupchat' id='%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='post-%d'/></message>`,
			to, nick, from, e.Get("id"), body.String(), post.Origin.ID, to, seq))
	case "iq":
		id := e.Get("id")
		if to == "" {
			to = f.domain
		}
		switch {
		case e.Get("type") == "result" || e.Get("type") == "error":
		case strings.Contains(e.Inner, "http://jabber.org/protocol/disco#info"):
			f.send(fmt.Sprintf(`<iq type='result' from='%s' to='%s' id='%s'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text'/><feature var='http://jabber.org/protocol/muc'/><feature var='urn:xmpp:mam:2'/><feature var='urn:xmpp:sid:0'/></query></iq>`, to, from, id))
		case strings.Contains(e.Inner, "urn:xmpp:mam:2"):
			f.send(fmt.Sprintf(`<iq type='result' from='%s' to='%s' id='%s'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set></fin></iq>`, to, from, id))
		default:
			f.send(fmt.Sprintf(`<iq type='result' from='%s' to='%s' id='%s'/>`, to, from, id))
		}
	}
}

// blast sends n messages to room, as another occupant posting them, each with
// the room's stanza-id, in chunks written whole.
func (f *fakeMUC) blast(room string, n int) error {
	f.mu.Lock()
	joined, jid, c := f.joined[room], f.jid, f.conn
	f.mu.Unlock()
	if !joined || c == nil {
		return errors.New("bench: the fake server has no client in " + room)
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `<message from='%s/poster' to='%s' type='groupchat' id='m%d'><body>message %d</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='fan-%d'/></message>`, room, jid, i, i, room, i)
		if b.Len() > 64<<10 || i == n-1 {
			if _, err := io.WriteString(c, b.String()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	return nil
}

// awaitClient waits for the client to log in.
func (f *fakeMUC) awaitClient(d time.Duration) error {
	select {
	case <-f.ready:
		return nil
	case <-time.After(d):
		return errors.New("bench: no client logged in to the fake server")
	}
}
