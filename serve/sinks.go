package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// delivery is one message on its way to a sink.
type delivery struct {
	route string
	msg   seam.Message
	line  []byte // the message as a JSON line
	// relayLast is the destination id of the route's last relayed message of
	// this topic ("" before the first).
	relayLast seam.BackendMsgID
}

// sink delivers messages. A nil error means the sink acknowledged the message;
// a relay also answers the id its post has in the destination. A sink is shared
// by its route's workers.
type sink interface {
	deliver(ctx context.Context, d delivery) (relayed seam.BackendMsgID, err error)
	close()
}

// newSinks makes a route's sink and, for on_exhausted: dead_letter, its
// dead-letter sink.
func newSinks(o Options, r config.Route) (preparedRoute, error) {
	s, err := newSink(o, r.Name, "sink", r.Sink)
	if err != nil {
		return preparedRoute{}, err
	}
	pr := preparedRoute{route: r, sink: s}
	if r.OnExhausted.Action == config.ExhaustedDeadLetter {
		if pr.deadLetter, err = newSink(o, r.Name, "on_exhausted.dead_letter", *r.OnExhausted.DeadLetter); err != nil {
			s.close()
			return preparedRoute{}, err
		}
	}
	return pr, nil
}

// newSink makes the sink s of route; key is where s is in the route
// (sink, on_exhausted.dead_letter), for errors.
func newSink(o Options, route, key string, s config.Sink) (sink, error) {
	n := 0
	for _, set := range []bool{s.Stdout != nil, s.Exec != nil, s.Webhook != nil, s.Relay != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%s: exactly one of stdout, exec, webhook or relay, got %d", key, n)
	}
	switch {
	case s.Stdout != nil:
		return stdoutSink{w: o.Stdout}, nil
	case s.Exec != nil:
		sk, err := newExecSink(*s.Exec)
		if err != nil {
			return nil, fmt.Errorf("%s.%w", key, err)
		}
		return sk, nil
	case s.Webhook != nil:
		sk, err := newWebhookSink(*s.Webhook)
		if err != nil {
			return nil, fmt.Errorf("%s.%w", key, err)
		}
		return sk, nil
	default:
		// Its destination is bound when the engine runs (Prepared.Run).
		return &relaySink{topic: seam.Topic(s.Relay.Topic), oversize: s.Relay.Oversize, format: s.Relay.Format, secret: o.secret, log: o.Logger.With(slog.String("route", route))}, nil
	}
}

// stdoutSink writes JSON lines to a writer shared by every route (a
// lockedWriter, so lines don't interleave).
type stdoutSink struct{ w io.Writer }

func (s stdoutSink) deliver(_ context.Context, d delivery) (seam.BackendMsgID, error) {
	_, err := s.w.Write(d.line)
	return "", err
}

func (stdoutSink) close() {}

// execSink runs a command per message, the JSON on its stdin.
type execSink struct {
	argv    []string
	timeout time.Duration
	allow   map[string]bool // PARLEY_XMPP_* variables let through
}

func newExecSink(c config.ExecSink) (*execSink, error) {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return nil, errors.New("exec.command: the command to run is missing")
	}
	// A typo in the command would otherwise be retried forever, message after
	// message never delivered.
	if _, err := exec.LookPath(c.Command[0]); err != nil {
		return nil, fmt.Errorf("exec.command: %w", err)
	}
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = defaultExecTimeout
	}
	allow := map[string]bool{}
	for _, name := range c.EnvAllowlist {
		allow[name] = true
	}
	return &execSink{argv: c.Command, timeout: timeout, allow: allow}, nil
}

// secretEnvPrefix: the engine's configuration variables, passwords among them
// (PARLEY_XMPP_PASS, PARLEY_XMPP_<NAME>_PASS, ..._PASS_FILE). A sink's command
// doesn't see them unless its env_allowlist names them.
const secretEnvPrefix = "PARLEY_XMPP_"

// childEnv is the command's environment: the engine's, minus PARLEY_XMPP_*
// variables not allowed, plus the message's.
func (s *execSink) childEnv(d delivery) []string {
	env := make([]string, 0, len(os.Environ())+3)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, secretEnvPrefix) && !s.allow[name] {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"PARLEY_ROUTE="+d.route,
		"PARLEY_TOPIC="+string(d.msg.Topic),
		"PARLEY_MESSAGE_ID="+string(d.msg.BackendMsgID),
	)
}

// exitDataErr (sysexits' EX_DATAERR) is how a handler says it refuses this
// message for good: the route's on_exhausted takes it at once. Any other
// failure is retried.
const exitDataErr = 65

// waitDelay bounds how long a finished command's inherited pipes may stay open
// (a daemon it started holding stderr): the exit status decides, not them.
const waitDelay = 2 * time.Second

func (s *execSink) deliver(ctx context.Context, d delivery) (seam.BackendMsgID, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.argv[0], s.argv[1:]...)
	cmd.Stdin = bytes.NewReader(d.line)
	cmd.Env = s.childEnv(d)
	stderr := &tailBuffer{max: 512}
	cmd.Stderr = stderr // stdout is discarded: it may be the stdout sink's
	cmd.WaitDelay = waitDelay
	killGroupOnCancel(cmd)

	// Only argv[0] is named in errors: arguments may hold secrets.
	name := filepath.Base(s.argv[0])
	err := cmd.Run()
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		return "", nil // it exited 0; something it left running kept its stderr open
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "", fmt.Errorf("exec %s: timed out after %s (killed)%s", name, s.timeout, stderr.suffix())
	case cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == exitDataErr:
		return "", fmt.Errorf("exec %s: %w: exit status %d (EX_DATAERR)%s", name, ErrRefused, exitDataErr, stderr.suffix())
	default:
		return "", fmt.Errorf("exec %s: %w%s", name, err, stderr.suffix())
	}
}

func (*execSink) close() {}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) suffix() string {
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

// webhookSink POSTs the JSON to a URL.
type webhookSink struct {
	url       string
	shownURL  string // the URL without credentials or query, for errors and logs
	headers   map[string]string
	timeout   time.Duration
	client    *http.Client
	transport *http.Transport
}

func newWebhookSink(c config.WebhookSink) (*webhookSink, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook.url: not an http(s) URL")
	}
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = defaultWebhookTimeout
	}
	// A transport of its own, so that Run can close its idle connections on the
	// way out.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &webhookSink{
		url: c.URL, shownURL: redactURL(u), headers: c.Headers, timeout: timeout, transport: transport,
		client: &http.Client{
			Transport: transport,
			// A redirect is not an acknowledgement, and following one would
			// hand the configured headers (secrets, often) to another URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func (s *webhookSink) deliver(ctx context.Context, d delivery) (seam.BackendMsgID, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(d.line))
	if err != nil {
		return "", fmt.Errorf("webhook %s: %w", s.shownURL, err)
	}
	req.Header.Set("User-Agent", "parley-xmpp")
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	// Set last: the receiver's dedup relies on them.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", string(d.msg.BackendMsgID))
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error repeats the full URL, which may carry a token: name the
		// redacted one instead.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", fmt.Errorf("webhook %s: no answer within %s: %w", s.shownURL, s.timeout, err)
		}
		return "", fmt.Errorf("webhook %s: %w", s.shownURL, err)
	}
	// Drained, so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	if refusesContent(resp.StatusCode) {
		return "", fmt.Errorf("webhook %s answered %s: %w", s.shownURL, resp.Status, ErrRefused)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("webhook %s answered %s", s.shownURL, resp.Status)
	}
	return "", nil
}

// refusesContent says whether a webhook's status refuses the message itself,
// which no retry mends: 400 Bad Request, 413 Content Too Large, 415
// Unsupported Media Type, 422 Unprocessable Content. Other 4xx (401, 403,
// 404, 408, 409, 429...) speak of the endpoint, its credentials or its load,
// which an operator can mend, so they are retried like 5xx: were they
// refusals, a wrong token would pass over every message.
func refusesContent(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

func (s *webhookSink) close() { s.transport.CloseIdleConnections() }

// redactURL drops a URL's user info, query and fragment, where tokens live.
func redactURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// relaySink posts each message to a topic, exactly once (see relayKey).
type relaySink struct {
	dest     Backend
	topic    seam.Topic
	oversize string // config.Oversize*: what becomes of content the destination can't take
	format   string // config.RelaySink.Format ("": the content alone)
	secret   []byte
	log      *slog.Logger
}

// postChecker is what a destination tells about what fits in a post (the
// runtime does); without it, oversize content follows on_exhausted.
type postChecker interface {
	CheckPostOnce(topic seam.Topic, key, content string) error
	MaxContentBytes() int
}

// text is what the relay posts for m: its content, or the route's format
// filled in.
func (s *relaySink) text(m seam.Message) string {
	if s.format == "" {
		return m.Content
	}
	return config.ExpandRelayFormat(s.format, map[string]string{
		"sender": string(m.SenderHandle), "content": m.Content, "topic": string(m.Topic),
		"id": string(m.BackendMsgID), "timestamp": Encode(m).Timestamp.Format(time.RFC3339),
	})
}

func (s *relaySink) deliver(ctx context.Context, d delivery) (seam.BackendMsgID, error) {
	key, err := relayKey(s.secret, d.route, d.msg.Topic, d.msg.BackendMsgID)
	if err != nil {
		return "", err
	}
	text := s.text(d.msg)
	pc, checks := s.dest.(postChecker)
	if checks && text != d.msg.Content && s.tooLarge(pc, key, text) && !s.tooLarge(pc, key, d.msg.Content) {
		// The format made the text too long for the destination: relay the
		// content alone rather than refuse a message that fits.
		s.log.Warn("the formatted text can't be posted; relaying the content alone",
			slog.String("topic", string(d.msg.Topic)), slog.String("id", string(d.msg.BackendMsgID)))
		text = d.msg.Content
	}
	if rb, ok := s.dest.(RelationBackend); ok && (d.msg.IsRelation() || d.msg.InReplyTo != "") {
		if checks && d.msg.Content != "" && s.oversize != "" && s.oversize != config.OversizeExhausted && s.tooLarge(pc, key, text) {
			// A correction or reply is one message: past the destination's
			// limit it is truncated, under split too (a part would be no
			// correction, nor a reply).
			n := longestFit(text, func(c string) bool { return pc.CheckPostOnce(s.topic, key, c+truncMark) == nil })
			if n == 0 {
				return "", fmt.Errorf("relay to %q: %w: not even its first character fits the destination", s.topic, ErrRefused)
			}
			s.log.Info("the relation's text is too large for the destination: relayed truncated", slog.String("id", string(d.msg.BackendMsgID)))
			text = text[:n] + truncMark
		}
		send, skip, err := s.relation(ctx, rb, d, key, text)
		if err != nil {
			return "", err
		}
		if skip {
			return "", nil
		}
		if send != nil {
			var after *seam.Cursor
			if d.relayLast != "" {
				// The runtime's ids are its cursors (the room's stanza-id).
				c := seam.Cursor(d.relayLast)
				after = &c
			}
			id, err := send(after)
			if err != nil && after != nil && errors.Is(err, seam.ErrUnknownCursor) {
				// As in postOnce: look for it in the whole archive.
				s.log.Warn("the last relayed message is no longer in the destination's archive; checking all of it for this message",
					slog.String("topic", string(d.msg.Topic)), slog.String("relay_topic", string(s.topic)), slog.String("relay_last", string(d.relayLast)))
				id, err = send(nil)
			}
			if err != nil {
				return "", fmt.Errorf("relay to %q: %w", s.topic, err)
			}
			return id, nil
		}
		// The target has no copy at the destination: the text goes as a
		// plain message.
	}
	if d.msg.Content == "" {
		// A retraction or reactions the destination can't carry, or a
		// relation not honoured at the source that had no text: there is
		// nothing to post.
		s.log.Info("a message without text is passed over", slog.String("topic", string(d.msg.Topic)), slog.String("id", string(d.msg.BackendMsgID)))
		return "", nil
	}
	parts := []relayPost{{key: key, content: text}}
	if checks && s.oversize != "" && s.oversize != config.OversizeExhausted && s.tooLarge(pc, key, text) {
		if parts, err = s.fit(pc, d, key, text); err != nil {
			return "", fmt.Errorf("relay to %q: %w", s.topic, err)
		}
		s.log.Info("the message is too large for the destination: relayed "+s.oversize,
			slog.String("id", string(d.msg.BackendMsgID)), slog.Int("parts", len(parts)))
	}
	// Each part is posted after the one before (PostOnce looks for it there
	// after a crash), the first after the last message relayed.
	last := d.relayLast
	for _, p := range parts {
		if last, err = s.postOnce(ctx, d, p, last); err != nil {
			return "", fmt.Errorf("relay to %q: %w", s.topic, err)
		}
	}
	return last, nil
}

// relayPost is one PostOnce of a relayed message: the whole, or a part of it.
type relayPost struct{ key, content string }

// postOnce posts p after the destination id after ("" for the archive's
// start), or finds it there.
func (s *relaySink) postOnce(ctx context.Context, d delivery, p relayPost, after seam.BackendMsgID) (seam.BackendMsgID, error) {
	var since *seam.Cursor
	if after != "" {
		// The runtime's ids are its cursors (the room's stanza-id).
		c := seam.Cursor(after)
		since = &c
	}
	id, err := s.dest.PostOnce(ctx, s.topic, p.key, p.content, since)
	if err != nil && since != nil && errors.Is(err, seam.ErrUnknownCursor) {
		// The last relayed message left the destination's archive (expired, or
		// the room was recreated): look for this one in the whole archive.
		s.log.Warn("the last relayed message is no longer in the destination's archive; checking all of it for this message",
			slog.String("topic", string(d.msg.Topic)), slog.String("relay_topic", string(s.topic)), slog.String("relay_last", string(after)))
		id, err = s.dest.PostOnce(ctx, s.topic, p.key, p.content, nil)
	}
	return id, err
}

// tooLarge says whether content is over what the destination takes in one
// post: its max_content_bytes, or its stanza limit once escaped.
func (s *relaySink) tooLarge(pc postChecker, key, content string) bool {
	return len(content) > pc.MaxContentBytes() || errors.Is(pc.CheckPostOnce(s.topic, key, content), seam.ErrContentTooLarge)
}

// truncMark ends truncated content.
const truncMark = "…"

// fit makes oversize content (the text relayed) fit, as s.oversize says: split, each part with
// a key of its own (relayPartKey), or truncated under the message's key.
// Content no part of which fits is ErrRefused.
func (s *relaySink) fit(pc postChecker, d delivery, key, content string) ([]relayPost, error) {
	// Every key has key's length, so a part that fits under key fits under
	// its own.
	fits := func(c string) bool { return pc.CheckPostOnce(s.topic, key, c) == nil }
	if s.oversize == config.OversizeTruncate {
		n := longestFit(content, func(c string) bool { return fits(c + truncMark) })
		if n == 0 {
			return nil, fmt.Errorf("%w: not even its first character fits the destination", ErrRefused)
		}
		return []relayPost{{key: key, content: content[:n] + truncMark}}, nil
	}
	var parts []relayPost
	for i := 0; content != ""; i++ {
		n := len(content)
		if !fits(content) {
			n = longestFit(content, fits)
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: part %d does not fit the destination", ErrRefused, i+1)
		}
		k, err := relayPartKey(s.secret, d.route, d.msg.Topic, d.msg.BackendMsgID, i, content[:n])
		if err != nil {
			return nil, err
		}
		parts = append(parts, relayPost{key: k, content: content[:n]})
		content = content[n:]
	}
	return parts, nil
}

// longestFit is the length of the longest prefix of content that fits (0:
// none), cut at a rune boundary, and after a line break or space when one is
// in its last quarter, so that words stay whole. fits must be monotonic over
// prefixes (a longer prefix escapes to a longer stanza).
func longestFit(content string, fits func(string) bool) int {
	lo, hi := 0, len(content) // content[:lo] fits (or lo is 0); content[:hi] doesn't
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		for mid > lo && !utf8.RuneStart(content[mid]) {
			mid--
		}
		if mid == lo {
			// No rune boundary between lo and hi but hi itself.
			break
		}
		if fits(content[:mid]) {
			lo = mid
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0
	}
	if i := strings.LastIndexAny(content[:lo], "\n "); i >= lo-lo/4 && i > 0 {
		return i + 1
	}
	return lo
}

func (*relaySink) close() {}

// relation is how a relation is relayed: the send that carries it into the
// destination, its target mapped to the destination's copy (a correction or
// reply posts text: the route's format filled in); nil when the
// destination holds no copy of the target and the message has text (it goes
// as a plain message); skip when it has none (a retraction or reactions
// whose target was never relayed: nothing to carry). A target relayed in
// parts (oversize: split) has no copy under its own key, so it counts as
// never relayed.
func (s *relaySink) relation(ctx context.Context, rb RelationBackend, d delivery, key, text string) (send func(*seam.Cursor) (seam.BackendMsgID, error), skip bool, err error) {
	m := d.msg
	target := m.InReplyTo
	for _, t := range []seam.BackendMsgID{m.Replaces, m.Retracts, m.ReactsTo} {
		if t != "" {
			target = t
		}
	}
	copyKey, err := relayKey(s.secret, d.route, m.Topic, target)
	if err != nil {
		return nil, false, err
	}
	dest, err := rb.OwnID(ctx, s.topic, copyKey)
	if errors.Is(err, runtime.ErrUnknownTarget) {
		// The destination's room may not have read its copy yet (after a
		// restart): a read of its newest page makes it known.
		if _, ferr := s.dest.FetchRecent(ctx, seam.FetchRecentArgs{Topic: s.topic}); ferr == nil {
			dest, err = rb.OwnID(ctx, s.topic, copyKey)
		}
	}
	switch {
	case errors.Is(err, runtime.ErrUnknownTarget):
		if m.Content == "" || m.Retracts != "" || m.ReactsTo != "" {
			s.log.Info("a relation whose target was never relayed is passed over", slog.String("topic", string(m.Topic)), slog.String("id", string(m.BackendMsgID)))
			return nil, true, nil
		}
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	opts := func(after *seam.Cursor) runtime.ActOptions { return runtime.ActOptions{Key: key, After: after} }
	switch {
	case m.Replaces != "":
		return func(after *seam.Cursor) (seam.BackendMsgID, error) {
			return rb.Edit(ctx, s.topic, dest, text, opts(after))
		}, false, nil
	case m.Retracts != "":
		return func(after *seam.Cursor) (seam.BackendMsgID, error) {
			return rb.Retract(ctx, s.topic, dest, opts(after))
		}, false, nil
	case m.ReactsTo != "":
		return func(after *seam.Cursor) (seam.BackendMsgID, error) {
			return rb.React(ctx, s.topic, dest, m.Reactions, opts(after))
		}, false, nil
	}
	return func(after *seam.Cursor) (seam.BackendMsgID, error) {
		return rb.PostOnceWith(ctx, s.topic, key, text, after, seam.PostOptions{InReplyTo: dest})
	}, false, nil
}
