package bench

import (
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	xmpp "github.com/xmppo/go-xmpp"

	"github.com/parley-go/parley-xmpp/internal/rawclient"
)

// bare is the baseline: go-xmpp with nothing of the runtime's above it, doing
// the same work as simply and as fast as a careful user of the library would:
// one reader goroutine dispatching answers to waiters by id. (The tests'
// internal/rawclient offers every stanza to every waiter, which suits tests
// and would make the baseline slower than that careful user under load.)
type bare struct {
	c   *xmpp.Client
	end chan struct{}

	mu        sync.Mutex
	posts     map[string]chan string      // origin-id → its reflection's stanza-id
	presences map[string]chan string      // room/nick → "" or the error condition
	iqs       map[string]chan xmpp.IQ     // IQ id → its answer
	mam       map[string]chan []string    // query id → the archive ids, as they come
	onMessage func(room, body, id string) // every groupchat message with an id
}

func dialBare(s Server, resource string) (*bare, error) {
	o := xmpp.Options{Host: s.Addr, User: s.User + "@" + s.Domain, Password: s.Password, Resource: resource,
		NoTLS: true, InsecureAllowUnencryptedAuth: true, DialTimeout: 5 * time.Second}
	c, err := o.NewClient()
	if err != nil {
		return nil, err
	}
	b := &bare{c: c, end: make(chan struct{}), posts: map[string]chan string{}, presences: map[string]chan string{},
		iqs: map[string]chan xmpp.IQ{}, mam: map[string]chan []string{}}
	go b.read()
	return b, nil
}

func (b *bare) read() {
	defer close(b.end)
	for {
		v, err := b.c.Recv()
		if err != nil {
			if !rawclient.StreamEnded(err) {
				continue // an element go-xmpp can't interpret: the stream reads on
			}
			return
		}
		switch s := v.(type) {
		case xmpp.Chat:
			if len(s.OtherElem) > 0 && s.OtherElem[0].XMLName.Local == "result" {
				b.onMAM(s)
				continue
			}
			if s.Type != "groupchat" || s.StanzaID.ID == "" {
				continue
			}
			b.mu.Lock()
			ch := b.posts[s.OriginID]
			delete(b.posts, s.OriginID)
			on := b.onMessage
			b.mu.Unlock()
			if ch != nil {
				ch <- s.StanzaID.ID
			}
			if on != nil {
				on(bareJID(s.Remote), s.Text, s.StanzaID.ID)
			}
		case xmpp.Presence:
			b.mu.Lock()
			ch := b.presences[s.From]
			delete(b.presences, s.From)
			b.mu.Unlock()
			if ch != nil {
				ch <- s.Error
			}
		case xmpp.IQ:
			b.mu.Lock()
			ch := b.iqs[s.ID]
			delete(b.iqs, s.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- s
			}
		}
	}
}

func (b *bare) onMAM(s xmpp.Chat) {
	e := s.OtherElem[0]
	var qid, id string
	for _, a := range e.Attr {
		switch a.Name.Local {
		case "queryid":
			qid = a.Value
		case "id":
			id = a.Value
		}
	}
	var fwd struct {
		Message struct {
			Body *string `xml:"body"`
		} `xml:"message"`
	}
	if xml.Unmarshal([]byte(e.InnerXML), &fwd) != nil || fwd.Message.Body == nil {
		id = "" // not a message: counted for paging, not as a row
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch := b.mam[qid]; ch != nil {
		select {
		case ch <- []string{id}:
		default: // more rows than asked for: the page's count will tell
		}
	}
}

func bareJID(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

var errEnded = errors.New("bench: bare connection ended")

func (b *bare) await(ch chan string, d time.Duration) (string, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-b.end:
		return "", errEnded
	case <-time.After(d):
		return "", errors.New("bench: bare client timed out")
	}
}

// join enters room as nick (retrying while another connection creates it) and
// unlocks it.
func (b *bare) join(room, nick string) error {
	for attempt := 0; ; attempt++ {
		ch := make(chan string, 1)
		b.mu.Lock()
		b.presences[room+"/"+nick] = ch
		b.mu.Unlock()
		if _, err := b.c.SendOrg(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`, room, nick)); err != nil {
			return err
		}
		cond, err := b.await(ch, 20*time.Second)
		switch {
		case err != nil:
			return err
		case cond == "item-not-found" && attempt < 100:
			time.Sleep(20 * time.Millisecond)
			continue
		case cond != "":
			return fmt.Errorf("bench: join %s: %s", room, cond)
		}
		_, err = b.c.SendOrg(fmt.Sprintf(`<iq type='set' to='%s' id='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`, room, rand.Text()))
		return err
	}
}

// joinAndRead joins room as the runtime does: the join and the unlock, then
// whether the room archives (disco#info) and where its archive ends (a MAM
// query for the newest row). go-xmpp hands disco#info answers over without
// their ids, so this sends it and waits for the archive's answer, which the
// room sends after it.
func (b *bare) joinAndRead(room, nick string) error {
	if err := b.join(room, nick); err != nil {
		return err
	}
	if _, err := b.c.SendOrg(fmt.Sprintf(`<iq type='get' to='%s' id='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, room, rand.Text())); err != nil {
		return err
	}
	_, _, _, err := b.query(room, "<max>1</max><before/>", 1)
	return err
}

// post sends body to room and returns the stanza-id of its reflection.
func (b *bare) post(room, body string) (string, error) {
	origin := rand.Text()
	ch := make(chan string, 1)
	b.mu.Lock()
	b.posts[origin] = ch
	b.mu.Unlock()
	var esc strings.Builder
	_ = xml.EscapeText(&esc, []byte(body))
	if _, err := b.c.SendOrg(fmt.Sprintf(`<message to='%s' type='groupchat' id='%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>`, room, origin, esc.String(), origin)); err != nil {
		return "", err
	}
	return b.await(ch, 30*time.Second)
}

// page reads one MAM page of room after after: the ids of its rows with a body,
// the id to page on from, and whether it was the last page.
func (b *bare) page(room, after string, max int) (ids []string, last string, complete bool, err error) {
	set := fmt.Sprintf("<max>%d</max>", max)
	if after != "" {
		set += "<after>" + after + "</after>"
	}
	return b.query(room, set, max)
}

// query sends a MAM query with the RSM set given, for at most max rows, and
// collects its answer.
func (b *bare) query(room, set string, max int) (ids []string, last string, complete bool, err error) {
	qid, id := rand.Text(), rand.Text()
	rows := make(chan []string, max+16)
	answer := make(chan xmpp.IQ, 1)
	b.mu.Lock()
	b.mam[qid], b.iqs[id] = rows, answer
	b.mu.Unlock()
	done := func() {
		b.mu.Lock()
		delete(b.mam, qid)
		close(rows)
		b.mu.Unlock()
	}
	if _, err := b.c.SendOrg(fmt.Sprintf(`<iq type='set' to='%s' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'><set xmlns='http://jabber.org/protocol/rsm'>%s</set></query></iq>`, room, id, qid, set)); err != nil {
		done()
		return nil, "", false, err
	}
	select {
	case iq := <-answer:
		done()
		for r := range rows {
			if r[0] != "" {
				ids = append(ids, r[0])
			}
		}
		if iq.Type == "error" {
			return nil, "", false, fmt.Errorf("bench: MAM query: %s", iq.Error.Condition)
		}
		var fin struct {
			Complete string `xml:"complete,attr"`
			Set      struct {
				Last string `xml:"last"`
			} `xml:"set"`
		}
		_ = xml.Unmarshal(iq.Query, &fin)
		return ids, fin.Set.Last, fin.Complete == "true", nil
	case <-b.end:
		done()
		return nil, "", false, errEnded
	case <-time.After(30 * time.Second):
		done()
		return nil, "", false, errors.New("bench: MAM query timed out")
	}
}

// ping makes a round trip to the server.
func (b *bare) ping(domain string) (time.Duration, error) {
	id := rand.Text()
	answer := make(chan xmpp.IQ, 1)
	b.mu.Lock()
	b.iqs[id] = answer
	b.mu.Unlock()
	t0 := time.Now()
	if _, err := b.c.SendOrg(fmt.Sprintf(`<iq type='get' to='%s' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, domain, id)); err != nil {
		return 0, err
	}
	select {
	case <-answer:
		return time.Since(t0), nil
	case <-b.end:
		return 0, errEnded
	case <-time.After(30 * time.Second):
		return 0, errors.New("bench: ping timed out")
	}
}

func (b *bare) close() {
	_, _ = b.c.SendOrg("</stream:stream>")
	select {
	case <-b.end:
	case <-time.After(2 * time.Second):
	}
}
