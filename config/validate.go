package config

import (
	"fmt"
	"net/url"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// validate checks what YAML's types can't, naming the key at fault.
func (f *File) validate() error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	r := f.Runtime
	for key, v := range map[string]int{
		"runtime.max_reconnects": r.MaxReconnects, "runtime.subscriber_buffer": r.SubscriberBuffer,
		"runtime.fetch_limit": r.FetchLimit, "runtime.max_fetch_limit": r.MaxFetchLimit,
		"runtime.mam_page_size": r.MAMPageSize, "runtime.max_content_bytes": r.MaxContentBytes,
	} {
		if v < 0 {
			return bad(key, "must not be negative, got %d", v)
		}
	}
	names := map[string]bool{}
	for i, rt := range f.Serve.Routes {
		key := fmt.Sprintf("serve.routes[%d]", i)
		switch {
		case rt.Name == "":
			return bad(key+".name", "every route needs a name (it names its saved cursors)")
		case names[rt.Name]:
			return bad(key+".name", "%q is used by another route", rt.Name)
		case len(rt.Topics) == 0:
			return bad(key+".topics", "a route needs at least one topic")
		case rt.Start != "" && rt.Start != "newest" && rt.Start != "start":
			return bad(key+".start", "%q is neither newest nor start", rt.Start)
		case rt.Batch < 0:
			return bad(key+".batch", "must not be negative, got %d", rt.Batch)
		}
		names[rt.Name] = true
		if rt.Server != "" {
			if _, ok := f.Servers[rt.Server]; !ok {
				return bad(key+".server", "no server %q under servers", rt.Server)
			}
		}
		for j, t := range rt.Topics {
			if _, err := runtime.RoomLocalpart(seam.Topic(t)); err != nil {
				return bad(fmt.Sprintf("%s.topics[%d]", key, j), "%v", err)
			}
		}
		s := rt.Sink
		n := 0
		for _, set := range []bool{s.Stdout != nil, s.Exec != nil, s.Webhook != nil, s.Relay != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return bad(key+".sink", "exactly one of stdout, exec, webhook or relay, got %d", n)
		}
		switch {
		case s.Exec != nil && len(s.Exec.Command) == 0:
			return bad(key+".sink.exec.command", "the command to run is missing")
		case s.Webhook != nil:
			u, err := url.Parse(s.Webhook.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return bad(key+".sink.webhook.url", "%q is not an http(s) URL", s.Webhook.URL)
			}
		case s.Relay != nil:
			if s.Relay.Server != "" {
				if _, ok := f.Servers[s.Relay.Server]; !ok {
					return bad(key+".sink.relay.server", "no server %q under servers", s.Relay.Server)
				}
			}
			if _, err := runtime.RoomLocalpart(seam.Topic(s.Relay.Topic)); err != nil {
				return bad(key+".sink.relay.topic", "%v", err)
			}
			if s.Relay.Server == rt.Server {
				for _, t := range rt.Topics {
					if t == s.Relay.Topic {
						return bad(key+".sink.relay.topic", "%q relays into itself", t)
					}
				}
			}
		}
	}
	return nil
}
