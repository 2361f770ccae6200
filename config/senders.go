package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Senders is a route's sender allowlist: the route delivers only the messages
// of these occupant nicks, or of these bare real JIDs where the room shows
// real JIDs (a non-anonymous room, or the runtime a moderator). Others'
// messages are skipped, counted in parley_xmpp_messages_filtered_total{topic},
// and the route's cursor moves past them. A nick is only as trustworthy as
// the room's nick policy (in an open room anyone may take a free nick); a JID
// is the server's word.
type Senders struct {
	Nicks []string `yaml:"nicks"`
	JIDs  []string `yaml:"jids"`
}

func (s *Senders) allowlist() runtime.Allowlist {
	return runtime.Allowlist{Nicks: s.Nicks, JIDs: s.JIDs}
}

func (s *Senders) same(o *Senders) bool {
	if s == nil || o == nil {
		return s == o
	}
	sorted := func(v []string) []string { v = slices.Clone(v); slices.Sort(v); return v }
	lower := func(v []string) []string {
		out := make([]string, len(v))
		for i, j := range v {
			out[i] = strings.ToLower(j)
		}
		return out
	}
	return slices.Equal(sorted(s.Nicks), sorted(o.Nicks)) && slices.Equal(sorted(lower(s.JIDs)), sorted(lower(o.JIDs)))
}

// checkSenders checks each route's senders and that routes reading one topic
// of one server agree on them: a server's runtime filters a topic once, for
// every route that reads it.
func (f *File) checkSenders() error {
	type read struct{ server, topic string }
	first := map[read]int{}
	for i, rt := range f.Serve.Routes {
		key := fmt.Sprintf("serve.routes[%d].senders", i)
		if rt.Senders != nil {
			if err := rt.Senders.allowlist().Check(); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrConfig, key, err)
			}
		}
		for _, t := range rt.Topics {
			r := read{rt.Server, t}
			j, ok := first[r]
			if !ok {
				first[r] = i
				continue
			}
			if other := f.Serve.Routes[j]; !other.Senders.same(rt.Senders) {
				return fmt.Errorf("%w: %s: route %q reads topic %q with other senders than route %q: routes that read one topic of one server must list the same senders (or none)",
					ErrConfig, key, rt.Name, t, other.Name)
			}
		}
	}
	return nil
}

// Allow is the runtime allowlists of the routes that read from server (""
// for the default): runtime.Config.Allow for that server's runtime.
func (s Serve) Allow(server string) map[seam.Topic]runtime.Allowlist {
	var out map[seam.Topic]runtime.Allowlist
	for _, rt := range s.Routes {
		if rt.Server != server || rt.Senders == nil {
			continue
		}
		if out == nil {
			out = map[seam.Topic]runtime.Allowlist{}
		}
		for _, t := range rt.Topics {
			if _, ok := out[seam.Topic(t)]; !ok { // the routes agree (checkSenders)
				out[seam.Topic(t)] = rt.Senders.allowlist()
			}
		}
	}
	return out
}
