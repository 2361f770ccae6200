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

func newSink(o Options, r config.Route) (sink, error) {
	s := r.Sink
	n := 0
	for _, set := range []bool{s.Stdout != nil, s.Exec != nil, s.Webhook != nil, s.Relay != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("a route needs exactly one sink (stdout, exec, webhook or relay), got %d", n)
	}
	switch {
	case s.Stdout != nil:
		return stdoutSink{w: o.Stdout}, nil
	case s.Exec != nil:
		return newExecSink(*s.Exec)
	case s.Webhook != nil:
		return newWebhookSink(*s.Webhook)
	default:
		// Its destination is bound when the engine runs (Prepared.Run).
		return &relaySink{topic: seam.Topic(s.Relay.Topic), secret: o.secret, log: o.Logger.With(slog.String("route", r.Name))}, nil
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
		return nil, errors.New("sink.exec.command: the command to run is missing")
	}
	// A typo in the command would otherwise be retried forever, message after
	// message never delivered.
	if _, err := exec.LookPath(c.Command[0]); err != nil {
		return nil, fmt.Errorf("sink.exec.command: %w", err)
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
		return nil, errors.New("webhook: the url is not an http(s) URL")
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
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("webhook %s answered %s", s.shownURL, resp.Status)
	}
	return "", nil
}

func (s *webhookSink) close() { s.transport.CloseIdleConnections() }

// redactURL drops a URL's user info, query and fragment, where tokens live.
func redactURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// relaySink posts each message to a topic, exactly once (see relayKey).
type relaySink struct {
	dest   Backend
	topic  seam.Topic
	secret []byte
	log    *slog.Logger
}

func (s *relaySink) deliver(ctx context.Context, d delivery) (seam.BackendMsgID, error) {
	key, err := relayKey(s.secret, d.route, d.msg.Topic, d.msg.BackendMsgID)
	if err != nil {
		return "", err
	}
	var after *seam.Cursor
	if d.relayLast != "" {
		// The runtime's ids are its cursors (the room's stanza-id).
		c := seam.Cursor(d.relayLast)
		after = &c
	}
	var send func(after *seam.Cursor) (seam.BackendMsgID, error)
	if rb, ok := s.dest.(RelationBackend); ok && (d.msg.IsRelation() || d.msg.InReplyTo != "") {
		relation, skip, err := s.relation(ctx, rb, d, key)
		if err != nil {
			return "", err
		}
		if skip {
			return "", nil
		}
		send = relation
	}
	if send == nil {
		if d.msg.Content == "" {
			// A retraction or reactions the destination can't carry, or a
			// relation not honoured at the source that had no text: there
			// is nothing to post.
			s.log.Info("a message without text is passed over", slog.String("topic", string(d.msg.Topic)), slog.String("id", string(d.msg.BackendMsgID)))
			return "", nil
		}
		send = func(after *seam.Cursor) (seam.BackendMsgID, error) {
			return s.dest.PostOnce(ctx, s.topic, key, d.msg.Content, after)
		}
	}
	id, err := send(after)
	if err != nil && after != nil && errors.Is(err, seam.ErrUnknownCursor) {
		// The last relayed message left the destination's archive (expired, or
		// the room was recreated): look for this one in the whole archive.
		s.log.Warn("the last relayed message is no longer in the destination's archive; checking all of it for this message",
			slog.String("topic", string(d.msg.Topic)), slog.String("relay_topic", string(s.topic)), slog.String("relay_last", string(d.relayLast)))
		id, err = send(nil)
	}
	if err != nil {
		return "", fmt.Errorf("relay to %q: %w", s.topic, err)
	}
	return id, nil
}

func (*relaySink) close() {}

// relation is how a relation is relayed: the send that carries it into the
// destination, its target mapped to the destination's copy; nil when the
// destination holds no copy of the target and the message has text (it goes
// as a plain message); skip when it has none (a retraction or reactions
// whose target was never relayed: nothing to carry).
func (s *relaySink) relation(ctx context.Context, rb RelationBackend, d delivery, key string) (send func(*seam.Cursor) (seam.BackendMsgID, error), skip bool, err error) {
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
			return rb.Edit(ctx, s.topic, dest, m.Content, opts(after))
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
		return rb.PostOnceWith(ctx, s.topic, key, m.Content, after, seam.PostOptions{InReplyTo: dest})
	}, false, nil
}
