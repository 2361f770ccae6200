package runtime

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/redact"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// Defaults, from the Parley XMPP backend's documentation (the dev server's).
const (
	DefaultService    = defaults.Service
	DefaultDomain     = defaults.Domain
	DefaultMUCService = defaults.MUCService
	DefaultUsername   = defaults.Username
	DefaultPassword   = defaults.Password
)

// Config configures a Runtime. The runtime reads no environment:
// ConfigFromEnv fills the first six fields from their variables for whoever
// wants them. Each of them, left empty, takes its default:
//
//	Service     PARLEY_XMPP_SERVICE  xmpp://127.0.0.1:5222
//	Domain      PARLEY_XMPP_DOMAIN   parley.local
//	MUCService  PARLEY_XMPP_MUC      muc.parley.local
//	Username    PARLEY_XMPP_USER     parley
//	Password    PARLEY_XMPP_PASS     parleypass, for a loopback Service only
//	Nick        PARLEY_XMPP_NICK     a random nick, new for each Runtime
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
	// TLSConfig, when set, is used for TLS and STARTTLS, and TLS is then
	// required even on loopback. Its ServerName, when empty, is Domain: the
	// server's certificate must name the XMPP domain. STARTTLS is used whenever
	// the server offers it, whatever AllowPlaintext says.
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
	// link. A ping unanswered for KeepAliveTimeout is late, not lost: the link
	// is dropped (and redialed) when neither its answer nor anything else came
	// for twice the wait, and a late answer lengthens the wait of the next
	// pings, up to 4 × KeepAliveTimeout. A negative KeepAlive turns them off.
	KeepAlive        time.Duration // [30s]
	KeepAliveTimeout time.Duration // [10s]
	// SelfPing is the interval of the XEP-0410 self-pings that find a silent
	// removal from a room (then the room is rejoined and replayed). Negative:
	// off.
	SelfPing time.Duration // [5m]
	// RejoinConcurrency bounds the rooms rejoining at once after a reconnect,
	// rooms with subscribers first; a room whose rejoin takes over 2 s stops
	// counting, up to twice as many in all [100].
	RejoinConcurrency int
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
	// RingMessages and RingBytes bound the ring of recent messages each room
	// holds while one of its subscribers lags (count, and bytes of content): one
	// copy per message, shared by every subscriber, emptied when none lags. A
	// lagging subscriber is fed from it, and reads the archive (in full MAM
	// pages, shared by the room's lagging subscribers) only for what the ring no
	// longer holds [2048, 1 MiB].
	RingMessages int
	RingBytes    int
	// ArchiveWait bounds how long a lagging subscriber waits for the archive to
	// supply messages the room fanned out (ejabberd reflects a message before
	// it archives it) before the room reports them skipped: RoomHistoryGap,
	// with their ids in RoomEvent.Skipped [10s].
	ArchiveWait time.Duration

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

	// DisableStreamManagement turns XEP-0198 stream management off. By default
	// (stream_management: true) it is enabled, with resumption, whenever the
	// server offers it: the server acknowledges what the runtime sends, and a
	// lost link is resumed within the server's resumption timeout (at most
	// 30 s) with the rooms' occupancy kept: no rejoin, no replay, no archive
	// lookups for posts in flight (RoomResumed). A resumption the server
	// refuses (it restarted, the session timed out) recovers in full, as
	// without it (RoomRejoined). See docs/reliability.md.
	DisableStreamManagement bool

	// Metrics receives the runtime's measurements (nil: none); package metrics
	// has a Prometheus implementation.
	Metrics observe.Metrics

	// Allow, for a topic it names, delivers to Subscribe and FetchRecent only
	// the messages of the senders its Allowlist admits: occupant nicks, or bare
	// real JIDs where the room shows them. The others are withheld, counted
	// (observe.Room.Filtered), and passed over: cursors move past them, so no
	// reader is held up. It is the guard against strangers in open rooms.
	// Topics it doesn't name deliver every message. Posts are not affected.
	Allow map[seam.Topic]Allowlist

	// Logger receives the runtime's logs (nil: none, but for a Subscribe
	// handler's panic, logged at ERROR to slog.Default()). Passwords never
	// appear.
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

var errConfig = ErrConfig

// ConfigFromEnv returns a Config holding the PARLEY_XMPP_* variables (see
// Config); unset ones stay empty, for New's defaults. Set any other field on
// the result:
//
//	c := runtime.ConfigFromEnv()
//	c.OnStateChange = ...
//	rt, err := runtime.New(c)
//
// The library reads no environment by itself; the command reads these
// variables (and .env files) through package config.
func ConfigFromEnv() Config {
	return Config{
		Service:    os.Getenv(defaults.EnvService),
		Domain:     os.Getenv(defaults.EnvDomain),
		MUCService: os.Getenv(defaults.EnvMUCService),
		Username:   os.Getenv(defaults.EnvUsername),
		Password:   os.Getenv(defaults.EnvPassword),
		Nick:       os.Getenv(defaults.EnvNick),
	}
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func resolve(c Config) (*resolved, error) {
	c.Service = or(c.Service, DefaultService)
	c.Domain = or(c.Domain, DefaultDomain)
	c.MUCService = or(c.MUCService, DefaultMUCService)
	c.Username = or(c.Username, DefaultUsername)
	r := &resolved{Config: c, pinned: c.Nick != ""}
	if !r.pinned {
		r.Nick = "parley-" + strings.ToLower(rand.Text()[:8])
	}
	orDefault(&r.DialTimeout, defaults.DialTimeout)
	orDefault(&r.RequestTimeout, defaults.IQTimeout)
	orDefault(&r.JoinTimeout, defaults.JoinTimeout)
	orDefault(&r.PostTimeout, defaults.PostTimeout)
	orDefault(&r.ReconnectWait, defaults.ReconnectWait)
	orDefault(&r.MaxReconnectWait, defaults.MaxReconnectWait)
	orDefault(&r.StableAfter, defaults.StableAfter)
	if r.KeepAlive == 0 {
		r.KeepAlive = defaults.KeepAlive
	}
	orDefault(&r.KeepAliveTimeout, defaults.KeepAliveTimeout)
	if r.SelfPing == 0 {
		r.SelfPing = defaults.SelfPing
	}
	orDefault(&r.RejoinConcurrency, defaults.RejoinInFlight)
	orDefault(&r.FetchLimit, defaults.FetchLimit)
	orDefault(&r.MaxFetchLimit, defaults.MaxFetchLimit)
	orDefault(&r.MAMPageSize, defaults.MAMPageSize)
	orDefault(&r.MaxContentBytes, defaults.MaxContentBytes)
	orDefault(&r.SubscriberBuffer, defaults.SubscriberBuffer)
	orDefault(&r.RingMessages, defaults.RingMessages)
	orDefault(&r.RingBytes, defaults.RingBytes)
	orDefault(&r.ArchiveWait, defaults.ArchiveWait)
	orDefault(&r.MaxStanzaBytes, defaults.MaxStanzaBytes)
	orDefault(&r.MaxInboundStanzaBytes, defaults.MaxInboundStanzaBytes)
	if r.MaxReconnects < 0 {
		return nil, fmt.Errorf("%w: MaxReconnects %d is negative", errConfig, r.MaxReconnects)
	}
	if r.FetchLimit > r.MaxFetchLimit {
		return nil, fmt.Errorf("%w: FetchLimit %d exceeds MaxFetchLimit %d", errConfig, r.FetchLimit, r.MaxFetchLimit)
	}
	if err := r.parseService(); err != nil {
		return nil, err
	}
	if r.Password == "" {
		if !r.loopback {
			return nil, fmt.Errorf("%w: Password is empty (set it, or PARLEY_XMPP_PASS for ConfigFromEnv): the dev server's default password applies only to a loopback Service, not %q", errConfig, redact.URL(r.Service))
		}
		r.Password = DefaultPassword
	}
	for _, f := range []struct{ name, v string }{{"Domain", r.Domain}, {"MUCService", r.MUCService}, {"Username", r.Username}} {
		if strings.ContainsAny(f.v, "@/ \t\n\"'<>&") {
			return nil, fmt.Errorf("%w: %s %q holds a character a JID can't", errConfig, f.name, f.v)
		}
	}
	if strings.ContainsAny(r.Nick, "/\t\n\"<>&") || strings.TrimSpace(r.Nick) != r.Nick {
		return nil, fmt.Errorf("%w: Nick %q holds characters a nick can't", errConfig, r.Nick)
	}
	r.Allow = maps.Clone(r.Allow) // the caller's map may change later; the rooms read it
	for topic, a := range r.Allow {
		if err := a.Check(); err != nil {
			return nil, fmt.Errorf("%w: Allow[%q]: %v", errConfig, topic, err)
		}
	}
	return r, nil
}

// Allowlist names the senders whose messages a topic delivers (Config.Allow):
// occupant nicks, or bare real JIDs where the room shows them (a non-anonymous
// room, or to a moderator). A nick is only as good as the room's nick policy (in
// an open room anyone may take a nick that is free); a JID is the server's word.
// Its Check says what is wrong with it, if anything.
type Allowlist = vocab.Allowlist

// orDefault sets an unset (zero or negative) setting to its default.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// connOptions is how the runtime connects. STARTTLS is used whenever the server
// offers it. The password goes over an unencrypted stream only to a loopback
// address, or when AllowPlaintext says so, and never when a TLSConfig is set;
// anywhere else TLS is required (STARTTLS, or xmpps:// from the first byte).
// One login at a time: the runtime's dials share a gate.
func (r *resolved) connOptions() xmppconn.Options {
	o := xmppconn.OptionsFor(r.dialPlan())
	o.Logins = xmppconn.NewLoginGate()
	return o
}

// dialPlan is how the runtime logs in (connOptions, and ProbeConfig.Dial).
func (r *resolved) dialPlan() DialPlan {
	plaintextOK := (r.loopback || r.AllowPlaintext) && r.TLSConfig == nil
	return DialPlan{
		Addr:                    r.addr,
		User:                    r.Username + "@" + r.Domain,
		Password:                r.Password,
		Resource:                "parley-" + strings.ToLower(rand.Text()[:8]),
		DirectTLS:               r.directTLS,
		RequireTLS:              !r.directTLS && !plaintextOK,
		AllowPlaintext:          plaintextOK,
		TLSConfig:               r.TLSConfig,
		DialTimeout:             r.DialTimeout,
		MaxStanzaBytes:          r.MaxStanzaBytes,
		MaxInboundBytes:         r.MaxInboundStanzaBytes,
		DisableStreamManagement: r.DisableStreamManagement,
	}
}

func (r *resolved) parseService() error {
	svc, err := ParseService(r.Service)
	if err != nil {
		return err
	}
	if svc.UserInfo {
		return fmt.Errorf("%w: Service %q holds credentials: give the account as Username and Password instead", errConfig, redact.URL(r.Service))
	}
	r.addr, r.directTLS, r.loopback = svc.Addr, svc.DirectTLS, svc.Loopback
	return nil
}

// Service is a parsed Config.Service.
type Service struct {
	Addr      string // host:port, the port defaulted (5222, or 5223 for xmpps)
	DirectTLS bool   // xmpps://: TLS from the first byte
	Loopback  bool   // the host is this machine (IsLoopback)
	// UserInfo: the URL holds a user or password, which Config refuses
	// (credentials belong in Username and Password). Reported, not an
	// error, so a caller can say first what else is wrong with the server.
	UserInfo bool
}

// ParseService parses a Config.Service: "xmpp://host[:port]",
// "xmpps://host[:port]", or a bare "host[:port]" (xmpp). Its errors wrap
// ErrConfig and never repeat a password the URL might hold; user info in it
// is reported (Service.UserInfo), and Config refuses it.
func ParseService(service string) (Service, error) {
	s := service
	if !strings.Contains(s, "://") {
		s = "xmpp://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
		return Service{}, fmt.Errorf("%w: Service %q is not xmpp://host[:port] or xmpps://host[:port]", errConfig, redact.URL(service))
	}
	svc := Service{UserInfo: u.User != nil}
	port := u.Port()
	switch u.Scheme {
	case "xmpp":
		if port == "" {
			port = "5222"
		}
	case "xmpps":
		svc.DirectTLS = true
		if port == "" {
			port = "5223"
		}
	default:
		return Service{}, fmt.Errorf("%w: Service %q: scheme must be xmpp or xmpps", errConfig, redact.URL(service))
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return Service{}, fmt.Errorf("%w: Service %q: bad port", errConfig, redact.URL(service))
	}
	svc.Addr = net.JoinHostPort(u.Hostname(), port)
	svc.Loopback = IsLoopback(u.Hostname())
	return svc, nil
}

// IsLoopback says whether host (a name or an address, without a port) is this
// machine: "localhost" or a loopback address. Only there does the runtime send
// a password unencrypted by default, or fall back to the dev server's password.
func IsLoopback(host string) bool {
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
