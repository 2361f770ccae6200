package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/parley-go/parley-xmpp/internal/defaults"
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
	if keys, values := r.negativeInts(); len(keys) > 0 {
		return bad(keys[0], "must not be negative, got %d", values[0])
	}
	if r.MaxFetchLimit > 0 {
		switch {
		case r.FetchLimit > r.MaxFetchLimit:
			return bad("runtime.fetch_limit", "%d exceeds runtime.max_fetch_limit %d", r.FetchLimit, r.MaxFetchLimit)
		case r.FetchLimit == 0 && defaults.FetchLimit > r.MaxFetchLimit:
			return bad("runtime.max_fetch_limit", "%d is under runtime.fetch_limit's default, %d: set fetch_limit too", r.MaxFetchLimit, defaults.FetchLimit)
		}
	}
	names := map[string]bool{}
	for i, rt := range f.Serve.Routes {
		key := fmt.Sprintf("serve.routes[%d]", i)
		if err := rt.Check(i); err != nil {
			return err
		}
		if names[rt.Name] {
			return bad(key+".name", "%q is used by another route", rt.Name)
		}
		names[rt.Name] = true
		if rt.Server != "" {
			if _, ok := f.Servers[rt.Server]; !ok {
				return bad(key+".server", "no server %q under servers", rt.Server)
			}
		}
		s := rt.Sink
		switch {
		case s.Relay != nil:
			if s.Relay.Server != "" {
				if _, ok := f.Servers[s.Relay.Server]; !ok {
					return bad(key+".sink.relay.server", "no server %q under servers", s.Relay.Server)
				}
			}
			if _, err := runtime.RoomLocalpart(seam.Topic(s.Relay.Topic)); err != nil {
				return bad(key+".sink.relay.topic", "%v", err)
			}
			if s.Relay.Format != "" {
				if _, err := parseRelayFormat(s.Relay.Format); err != nil {
					return bad(key+".sink.relay.format", "%v", err)
				}
			}
			for _, t := range rt.Topics {
				if f.RoomJID(s.Relay.Server, s.Relay.Topic) == f.RoomJID(rt.Server, t) {
					return bad(key+".sink.relay.topic", "%q relays into its own room (%s)", t, f.RoomJID(rt.Server, t))
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

// Check checks route i on its own, as far as it can without the rest of the
// file (its servers, the other routes): its name, start, batch, retry waits,
// topics, sink and exhaustion policy. It is the one route validator: the
// file's validation and serve's engine both call it.
func (rt Route) Check(i int) error {
	key := fmt.Sprintf("serve.routes[%d]", i)
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	switch {
	case rt.Name == "":
		return bad(key+".name", "every route needs a name (it names its saved cursors)")
	case len(rt.Topics) == 0:
		return bad(key+".topics", "a route needs at least one topic")
	case rt.Start != "" && rt.Start != "newest" && rt.Start != "start":
		return bad(key+".start", "%q is neither newest nor start", rt.Start)
	case rt.Batch < 0:
		return bad(key+".batch", "must not be negative, got %d", rt.Batch)
	}
	if !RouteNameOK(rt.Name) {
		return bad(key+".name", "%.60q can't name a directory (it names the route's saved cursors; at most %d bytes)", rt.Name, MaxRouteName)
	}
	if rt.RetryWait > 0 && rt.MaxRetryWait > 0 && rt.RetryWait > rt.MaxRetryWait {
		return bad(key+".retry_wait", "%s is longer than max_retry_wait %s", time.Duration(rt.RetryWait), time.Duration(rt.MaxRetryWait))
	}
	if err := checkPolicy(key, rt); err != nil {
		return err
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
	return checkSink(key+".sink", rt.Sink)
}

// checkSink checks what a sink at key needs, whatever its route: exactly one
// kind, and that kind's own keys (a relay's topic and server are the route's
// business).
func checkSink(key string, s Sink) error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	n := 0
	for _, set := range []bool{s.Stdout != nil, s.Exec != nil, s.Webhook != nil, s.Relay != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return bad(key, "exactly one of stdout, exec, webhook or relay, got %d", n)
	}
	switch {
	case s.Exec != nil && len(s.Exec.Command) == 0:
		return bad(key+".exec.command", "the command to run is missing")
	case s.Webhook != nil:
		u, err := url.Parse(s.Webhook.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(key+".webhook.url", "%q is not an http(s) URL", redact.URL(s.Webhook.URL))
		}
		for name, value := range s.Webhook.Headers {
			if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
				return bad(key+".webhook.headers."+name, "not a valid HTTP header")
			}
		}
	case s.Relay != nil:
		switch s.Relay.Oversize {
		case "", OversizeExhausted, OversizeSplit, OversizeTruncate:
		default:
			return bad(key+".relay.oversize", "%q is none of split, truncate or on_exhausted", s.Relay.Oversize)
		}
	}
	return nil
}

// checkPolicy checks a route's max_attempts and on_exhausted.
func checkPolicy(key string, rt Route) error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	if rt.MaxAttempts < 0 {
		return bad(key+".max_attempts", "must not be negative, got %d (0: unlimited)", rt.MaxAttempts)
	}
	o := rt.OnExhausted
	if o.Action != ExhaustedDeadLetter {
		return nil
	}
	dl := key + ".on_exhausted.dead_letter"
	if o.DeadLetter == nil {
		return bad(dl, "the dead-letter sink is missing")
	}
	if o.DeadLetter.Relay != nil {
		// A relay needs its own destination, key and state: not supported.
		return bad(dl+".relay", "a dead-letter sink is stdout, exec or webhook")
	}
	return checkSink(dl, *o.DeadLetter)
}

// MaxRouteName bounds a route's name, which names its state directory (file
// systems take 255 bytes; serve keeps its names under 200).
const MaxRouteName = 200

// RouteNameOK says whether name can name a route's state directory: one path
// element, not empty, "." or "..", at most MaxRouteName bytes.
func RouteNameOK(name string) bool {
	return name != "" && len(name) <= MaxRouteName && name != "." && name != ".." && !strings.ContainsAny(name, `/\`+"\x00")
}

// checkRelayLoops refuses relays that lead back to where they started: a
// message would go round forever. Topics are compared by their rooms' JIDs
// (RoomJID), not by their servers' names or addresses in this file, so a loop
// through two names of one server is found.
func (f *File) checkRelayLoops() error {
	type node = string // a room's JID
	next := map[node][]node{}
	label := map[node]string{}
	for _, rt := range f.Serve.Routes {
		if r := rt.Sink.Relay; r != nil {
			for _, t := range rt.Topics {
				from := f.RoomJID(rt.Server, t)
				to := f.RoomJID(r.Server, r.Topic)
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

// RoomJID is the room a topic of the server named server ("" for
// backend_config) lives in: the topic's room localpart at the server's MUC
// service (lower case, no trailing dot; unset: the runtime's default). Relays
// are compared by it, not by the server's name or address here: a server
// reached by two names (a host name and its address, two DNS names, a proxy)
// has one MUC service, so a loop through both names is found. Two distinct
// servers whose MUC services share a name (two private servers both calling
// themselves parley.local) count as one: give their topics different names.
func (f *File) RoomJID(server, topic string) string {
	b := f.Backend
	if server != "" {
		b = f.Servers[server].Backend
	}
	muc := b.MUCService
	if muc == "" {
		muc = runtime.DefaultMUCService
	}
	local, err := runtime.RoomLocalpart(seam.Topic(topic))
	if err != nil {
		local = topic // refused elsewhere, with its key
	}
	return strings.ToLower(local) + "@" + strings.TrimSuffix(strings.ToLower(muc), ".")
}
