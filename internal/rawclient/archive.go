package rawclient

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"crypto/rand"

	xmpp "github.com/xmppo/go-xmpp"
)

// Row is one message of a room's archive.
type Row struct {
	ID       string // the archive id (the room's stanza-id)
	Nick     string
	Body     string
	OriginID string
}

// Archive reads room's whole MAM archive, oldest first, paging forward by
// pageSize. Rows without a body are left out.
func (cl *Client) Archive(room string, pageSize int) ([]Row, error) {
	var rows []Row
	after := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			return nil, errors.New("rawclient: archive paging does not end")
		}
		page, last, complete, err := cl.archivePage(room, after, pageSize)
		if err != nil {
			return nil, err
		}
		rows = append(rows, page...)
		if complete || last == "" || last == after {
			return rows, nil
		}
		after = last
	}
}

// ArchivePage reads one page of room's MAM archive: up to max messages strictly
// after the archive id after ("" from the start), oldest first. last is the id
// of the page's last result (with or without a body: the cursor for the next
// page, "" when the page is empty); complete is the server's word that nothing
// follows. Rows without a body are left out.
func (cl *Client) ArchivePage(room, after string, max int) (rows []Row, last string, complete bool, err error) {
	return cl.archivePage(room, after, max)
}

func (cl *Client) archivePage(room, after string, max int) (rows []Row, last string, complete bool, err error) {
	qid, id := rand.Text(), rand.Text()
	set := fmt.Sprintf("<max>%d</max>", max)
	if after != "" {
		set += "<after>" + escape(after) + "</after>"
	}
	ch, stop := cl.listen(4096)
	defer stop()
	if _, err := cl.c.SendOrg(fmt.Sprintf(`<iq type='set' to='%s' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'><set xmlns='http://jabber.org/protocol/rsm'>%s</set></query></iq>`, room, id, qid, set)); err != nil {
		return nil, "", false, err
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case v := <-ch:
			switch s := v.(type) {
			case xmpp.Chat:
				for _, e := range s.OtherElem {
					if e.XMLName.Local != "result" || !strings.EqualFold(s.Remote, room) || attr(e, "queryid") != qid {
						continue
					}
					r, ok, err := parseRow(attr(e, "id"), e.InnerXML)
					if err != nil {
						return nil, "", false, err
					}
					last = r.ID
					if ok {
						rows = append(rows, r)
					}
				}
			case xmpp.IQ:
				if s.ID != id {
					continue
				}
				if s.Type == "error" {
					return nil, "", false, fmt.Errorf("rawclient: MAM query of %s: %s", room, s.Error.Condition)
				}
				var fin struct {
					Complete string `xml:"complete,attr"`
				}
				_ = xml.Unmarshal(s.Query, &fin)
				return rows, last, fin.Complete == "true", nil
			}
		case <-cl.end:
			return nil, "", false, errors.New("rawclient: connection ended")
		case <-deadline:
			return nil, "", false, errors.New("rawclient: MAM query timed out")
		}
	}
}

func attr(e xmpp.XMLElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func parseRow(id, inner string) (Row, bool, error) {
	var v struct {
		Message struct {
			From     string  `xml:"from,attr"`
			Body     *string `xml:"body"`
			OriginID struct {
				ID string `xml:"id,attr"`
			} `xml:"origin-id"`
		} `xml:"message"`
	}
	if err := xml.Unmarshal([]byte(inner), &v); err != nil {
		return Row{}, false, fmt.Errorf("rawclient: unreadable MAM result %s: %w", id, err)
	}
	r := Row{ID: id, OriginID: v.Message.OriginID.ID}
	if i := strings.IndexByte(v.Message.From, '/'); i >= 0 {
		r.Nick = v.Message.From[i+1:]
	}
	if v.Message.Body == nil {
		return r, false, nil
	}
	r.Body = *v.Message.Body
	return r, true, nil
}
