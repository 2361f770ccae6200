package runtime

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/observe"
)

// Defaults, from the Parley XMPP backend's documentation.
const (
	DefaultService    = "xmpp://127.0.0.1:5222"
	DefaultDomain     = "parley.local"
	DefaultMUCService = "muc.parley.local"
	DefaultUsername   = "parley"
	DefaultPassword   = "parleypass"
)

// Config configures a Runtime. Each of the first six fields, when left empty,
// is taken from its environment variable, and failing that from its default:
//
//	Service     PARLEY_XMPP_SERVICE  xmpp://127.0.0.1:5222
//	Domain      PARLEY_XMPP_DOMAIN   parley.local
//	MUCService  PARLEY_XMPP_MUC      muc.parley.local
//	Username    PARLEY_XMPP_USER     parley
//	Password    PARLEY_XMPP_PASS     parleypass
//	Nick        PARLEY_XMPP_NICK     a random nick, new for each Runtime
//
// A field set in code always wins over the environment.
type Config struct {
	// Service is where to connect: "xmpp://host[:port]" (port 5222; STARTTLS
	// when the server offers or requires it, see AllowPlaintext) or
	// "xmpps://host[:port]" (port 5223; TLS from the first byte).
	Service string
	// Domain is the account's server (the domain part of its JID).
	Domain string
	// MUCService is the MUC service the rooms live on.
	MUCService string
	Username   string
	Password   string
	// Nick is the occupant nick the runtime joins rooms and posts under. Leave it
	// empty for a random nick per Runtime (distinct for every concurrent session
	// sharing an account). Pinned, it must be unique per concurrent connection:
	// a second connection using it fails with seam.ErrNickConflict.
	Nick string

	// AllowPlaintext permits sending the password over an unencrypted stream to
	// a server that is not on a loopback address. Without it the runtime insists
	// on TLS for every non-loopback server.
	AllowPlaintext bool
	// TLSConfig, when set, is used for TLS and STARTTLS.
	TLSConfig *tls.Config

	// Timeouts; zero picks the default in brackets.
	DialTimeout    time.Duration // TCP connect and login [15s]
	RequestTimeout time.Duration // one IQ round trip [30s]
	JoinTimeout    time.Duration // joining a room, cold-creation retries included [30s]
	PostTimeout    time.Duration // a post's reflection [30s]

	// Reconnecting. After a lost link the runtime dials again at once, then after
	// ReconnectWait, doubling (with jitter) up to MaxReconnectWait; a link that
	// stays up for StableAfter resets the wait. MaxReconnects > 0 gives up after
	// that many failed attempts (state Closed with the reason); 0 retries forever.
	ReconnectWait    time.Duration // [100ms]
	MaxReconnectWait time.Duration // [10s]
	MaxReconnects    int           // [0: forever]
	StableAfter      time.Duration // [30s]
	// KeepAlive is the interval of the XEP-0199 pings that find a half-open
	// link; a ping unanswered for KeepAliveTimeout drops the link and reconnects.
	// A negative KeepAlive turns them off.
	KeepAlive        time.Duration // [30s]
	KeepAliveTimeout time.Duration // [10s]
	// SelfPing is the interval of the XEP-0410 self-pings that find a silent
	// removal from a room (then the room is rejoined and replayed). Negative:
	// off.
	SelfPing time.Duration // [5m]
	// FailFast: while the link is down, calls fail at once with
	// seam.ErrNotConnected. By default they wait for the link within their ctx.
	FailFast bool
	// PersistentRooms configures every room this runtime creates as persistent,
	// with archiving on where the server offers the choice, so its history
	// survives every occupant leaving. A server that refuses persistence gets an
	// instant room (logged). See the README for the server settings involved.
	PersistentRooms bool
	// SubscriberBuffer bounds the messages queued for one subscriber. A handler
	// that falls that far behind is fed from the archive instead, from where it
	// is, so memory stays bounded and it still gets every message once [1024].
	SubscriberBuffer int

	// OnStateChange is told of every change of the connection's state
	// (connecting, online, reconnecting, closed), in order, on a goroutine of
	// the runtime's own.
	OnStateChange func(StateChange)
	// OnRoomEvent is told of what happens to rooms: rejoined after a lost link,
	// removed (kick, destruction), banned, history gaps, lagging or panicking
	// subscribers. Same goroutine as OnStateChange.
	OnRoomEvent func(RoomEvent)

	// FetchLimit is the page size when FetchRecentArgs.Limit <= 0 [50];
	// MaxFetchLimit caps any Limit [10000].
	FetchLimit    int
	MaxFetchLimit int
	// MAMPageSize is how many rows one MAM query asks for [50, Prosody's cap].
	MAMPageSize int
	// MaxContentBytes caps a post's content; servers close streams that carry
	// oversized stanzas [65536].
	MaxContentBytes int
	// MaxStanzaBytes caps a post's stanza as it is sent, after XML escaping
	// (which can make it up to five times its content: & " ' and line feeds
	// become entities); a post over it fails with seam.ErrContentTooLarge and
	// nothing is sent. A server that advertises a lower limit (XEP-0478) wins.
	// The default stays under the 256 KiB that Prosody and ejabberd take by
	// default; a server's stream closes on a stanza over its limit [245760].
	MaxStanzaBytes int
	// MaxInboundStanzaBytes caps one stanza the server sends; a larger one
	// closes the link (logged, state Reconnecting with an error that
	// errors.Is xmppconn.ErrInboundTooLarge) and the runtime reconnects with
	// backoff [1 MiB].
	MaxInboundStanzaBytes int

	// Metrics receives the runtime's measurements (nil: none); package metrics
	// has a Prometheus implementation.
	Metrics observe.Metrics

	// Logger receives the runtime's logs (nil: none). Passwords never appear.
	Logger *slog.Logger
}

// resolved is a Config with everything filled in and checked.
type resolved struct {
	Config
	addr      string
	directTLS bool
	loopback  bool
	pinned    bool
}

var errConfig = errors.New("parley-xmpp: bad config")

// ErrInboundTooLarge is the reason (StateChange.Err) for a link the runtime
// closed because the server sent a stanza over MaxInboundStanzaBytes; it
// reconnects with backoff.
var ErrInboundTooLarge = xmppconn.ErrInboundTooLarge

func envOr(v, env, def string) string {
	if v != "" {
		return v
	}
	if e := os.Getenv(env); e != "" {
		return e
	}
	return def
}

func resolve(c Config) (*resolved, error) {
	c.Service = envOr(c.Service, "PARLEY_XMPP_SERVICE", DefaultService)
	c.Domain = envOr(c.Domain, "PARLEY_XMPP_DOMAIN", DefaultDomain)
	c.MUCService = envOr(c.MUCService, "PARLEY_XMPP_MUC", DefaultMUCService)
	c.Username = envOr(c.Username, "PARLEY_XMPP_USER", DefaultUsername)
	c.Password = envOr(c.Password, "PARLEY_XMPP_PASS", DefaultPassword)
	c.Nick = envOr(c.Nick, "PARLEY_XMPP_NICK", "")
	r := &resolved{Config: c, pinned: c.Nick != ""}
	if !r.pinned {
		r.Nick = "parley-" + strings.ToLower(rand.Text()[:8])
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&r.DialTimeout, 15*time.Second)
	setDur(&r.RequestTimeout, 30*time.Second)
	setDur(&r.JoinTimeout, 30*time.Second)
	setDur(&r.PostTimeout, 30*time.Second)
	setDur(&r.ReconnectWait, 100*time.Millisecond)
	setDur(&r.MaxReconnectWait, 10*time.Second)
	setDur(&r.StableAfter, 30*time.Second)
	if r.KeepAlive == 0 {
		r.KeepAlive = 30 * time.Second
	}
	setDur(&r.KeepAliveTimeout, 10*time.Second)
	if r.SelfPing == 0 {
		r.SelfPing = 5 * time.Minute
	}
	setInt := func(n *int, def int) {
		if *n <= 0 {
			*n = def
		}
	}
	setInt(&r.FetchLimit, 50)
	setInt(&r.MaxFetchLimit, 10000)
	setInt(&r.MAMPageSize, 50)
	setInt(&r.MaxContentBytes, 64*1024)
	setInt(&r.SubscriberBuffer, 1024)
	setInt(&r.MaxStanzaBytes, xmppconn.DefaultMaxStanzaBytes)
	setInt(&r.MaxInboundStanzaBytes, xmppconn.DefaultMaxInboundBytes)
	if r.MaxReconnects < 0 {
		return nil, fmt.Errorf("%w: MaxReconnects %d is negative", errConfig, r.MaxReconnects)
	}
	if r.FetchLimit > r.MaxFetchLimit {
		return nil, fmt.Errorf("%w: FetchLimit %d exceeds MaxFetchLimit %d", errConfig, r.FetchLimit, r.MaxFetchLimit)
	}
	if err := r.parseService(); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"Domain", r.Domain}, {"MUCService", r.MUCService}, {"Username", r.Username}} {
		if strings.ContainsAny(f.v, "@/ \t\n\"'<>&") {
			return nil, fmt.Errorf("%w: %s %q holds a character a JID can't", errConfig, f.name, f.v)
		}
	}
	if strings.ContainsAny(r.Nick, "/\t\n\"<>&") || strings.TrimSpace(r.Nick) != r.Nick {
		return nil, fmt.Errorf("%w: Nick %q holds characters a nick can't", errConfig, r.Nick)
	}
	return r, nil
}

// connOptions is how the runtime connects. The password goes over an
// unencrypted stream only to a loopback address, or when AllowPlaintext says so;
// anywhere else TLS is required (STARTTLS, or xmpps:// from the first byte).
func (r *resolved) connOptions() xmppconn.Options {
	plaintextOK := r.loopback || r.AllowPlaintext
	return xmppconn.Options{
		Addr:            r.addr,
		User:            r.Username + "@" + r.Domain,
		Password:        r.Password,
		Resource:        "parley-" + strings.ToLower(rand.Text()[:8]),
		DirectTLS:       r.directTLS,
		RequireTLS:      !r.directTLS && !plaintextOK,
		AllowPlaintext:  plaintextOK,
		TLSConfig:       r.TLSConfig,
		DialTimeout:     r.DialTimeout,
		MaxStanzaBytes:  r.MaxStanzaBytes,
		MaxInboundBytes: r.MaxInboundStanzaBytes,
	}
}

func (r *resolved) parseService() error {
	s := r.Service
	if !strings.Contains(s, "://") {
		s = "xmpp://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%w: Service %q is not xmpp://host[:port] or xmpps://host[:port]", errConfig, r.Service)
	}
	port := u.Port()
	switch u.Scheme {
	case "xmpp":
		if port == "" {
			port = "5222"
		}
	case "xmpps":
		r.directTLS = true
		if port == "" {
			port = "5223"
		}
	default:
		return fmt.Errorf("%w: Service %q: scheme must be xmpp or xmpps", errConfig, r.Service)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%w: Service %q: bad port", errConfig, r.Service)
	}
	host := u.Hostname()
	r.addr = net.JoinHostPort(host, port)
	ip := net.ParseIP(host)
	r.loopback = host == "localhost" || ip != nil && ip.IsLoopback()
	return nil
}
