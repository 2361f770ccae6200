package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/parley-go/parley-xmpp/internal/redact"
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
		"runtime.ring_messages": r.RingMessages, "runtime.ring_bytes": r.RingBytes,
		"runtime.fetch_limit": r.FetchLimit, "runtime.max_fetch_limit": r.MaxFetchLimit,
		"runtime.mam_page_size": r.MAMPageSize, "runtime.max_content_bytes": r.MaxContentBytes,
		"runtime.max_stanza_bytes": r.MaxStanzaBytes, "runtime.max_inbound_stanza_bytes": r.MaxInboundStanzaBytes,
		"runtime.rejoin_concurrency": r.RejoinConcurrency,
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
		if rt.Name == "." || rt.Name == ".." || strings.ContainsAny(rt.Name, `/\`+"\x00") || len(rt.Name) > maxRouteName {
			return bad(key+".name", "%.60q can't name a directory (it names the route's saved cursors; at most %d bytes)", rt.Name, maxRouteName)
		}
		if rt.RetryWait > 0 && rt.MaxRetryWait > 0 && rt.RetryWait > rt.MaxRetryWait {
			return bad(key+".retry_wait", "%s is longer than max_retry_wait %s", time.Duration(rt.RetryWait), time.Duration(rt.MaxRetryWait))
		}
		names[rt.Name] = true
		if rt.Server != "" {
			if _, ok := f.Servers[rt.Server]; !ok {
				return bad(key+".server", "no server %q under servers", rt.Server)
			}
		}
		seen := map[string]bool{}
		for j, t := range rt.Topics {
			if _, err := runtime.RoomLocalpart(seam.Topic(t)); err != nil {
				return bad(fmt.Sprintf("%s.topics[%d]", key, j), "%v", err)
			}
			if seen[t] {
				return bad(fmt.Sprintf("%s.topics[%d]", key, j), "%q is listed twice", t)
			}
			seen[t] = true
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
				return bad(key+".sink.webhook.url", "%q is not an http(s) URL", redact.URL(s.Webhook.URL))
			}
			for name, value := range s.Webhook.Headers {
				if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
					return bad(key+".sink.webhook.headers."+name, "not a valid HTTP header")
				}
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
			if f.serverIdentity(s.Relay.Server) == f.serverIdentity(rt.Server) {
				for _, t := range rt.Topics {
					if t == s.Relay.Topic {
						return bad(key+".sink.relay.topic", "%q relays into itself", t)
					}
				}
			}
		}
	}
	if err := f.checkSenders(); err != nil {
		return err
	}
	dir := ""
	if f.path != "" {
		dir = filepath.Dir(f.path)
	}
	if err := f.Serve.Cluster.validate(dir); err != nil {
		return err
	}
	return f.checkRelayLoops()
}

// maxRouteName bounds a route's name, which names its state directory (file
// systems take 255 bytes; serve keeps its names under 200).
const maxRouteName = 200

// checkRelayLoops refuses relays that lead back to where they started: a
// message would go round forever. Servers are compared by what they are
// (serverIdentity), not by their names in this file, so a loop through two
// names of one server is found.
func (f *File) checkRelayLoops() error {
	type node struct{ server, topic string }
	next := map[node][]node{}
	label := map[node]string{}
	for _, rt := range f.Serve.Routes {
		if r := rt.Sink.Relay; r != nil {
			for _, t := range rt.Topics {
				from := node{f.serverIdentity(rt.Server), t}
				to := node{f.serverIdentity(r.Server), r.Topic}
				next[from] = append(next[from], to)
				label[from] = describeTopic(rt.Server, t)
				if _, ok := label[to]; !ok {
					label[to] = describeTopic(r.Server, r.Topic)
				}
			}
		}
	}
	const (
		unseen = iota
		onPath
		done
	)
	mark := map[node]int{}
	var visit func(n node, path []string) error
	visit = func(n node, path []string) error {
		switch mark[n] {
		case onPath:
			return fmt.Errorf("%w: serve.routes: relays go round in a loop: %s", ErrConfig, strings.Join(append(path, label[n]), " → "))
		case done:
			return nil
		}
		mark[n] = onPath
		for _, m := range next[n] {
			if err := visit(m, append(path, label[n])); err != nil {
				return err
			}
		}
		mark[n] = done
		return nil
	}
	for n := range next {
		if err := visit(n, nil); err != nil {
			return err
		}
	}
	return nil
}

// describeTopic names a topic and, unless it is the default one, its server.
func describeTopic(server, topic string) string {
	if server == "" {
		return topic
	}
	return topic + " (" + server + ")"
}

// serverIdentity is what the server named name ("" for backend_config) is,
// whatever it is called here: its address (scheme-less services read as
// xmpp://, the host in lower case without a trailing dot, every loopback name
// and address as one, the default port filled in), its XMPP domain and its MUC
// service (in lower case). Two names with one identity reach the same rooms.
// Unset fields take the runtime's defaults.
func (f *File) serverIdentity(name string) string {
	b := f.Backend
	if name != "" {
		b = f.Servers[name].Backend
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	return serviceAddr(or(b.Service, runtime.DefaultService)) + " " +
		strings.ToLower(or(b.Domain, runtime.DefaultDomain)) + " " +
		strings.ToLower(or(b.MUCService, runtime.DefaultMUCService))
}

// serviceAddr is the host:port a service URL reaches, normalised (see
// serverIdentity); a service it can't read is returned in lower case, as is.
func serviceAddr(service string) string {
	s := service
	if !strings.Contains(s, "://") {
		s = "xmpp://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return strings.ToLower(service)
	}
	port := u.Port()
	switch {
	case port != "":
	case strings.EqualFold(u.Scheme, "xmpps"):
		port = "5223"
	default:
		port = "5222"
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		host = "loopback"
	}
	return net.JoinHostPort(host, port)
}
