// Package defaults is the one table of parley-xmpp's default settings. The
// runtime fills an unset Config field from here and hands the actors every
// setting resolved; an actor fills none (MustBeSet), so each default is
// stated once and nothing can disagree with it. runtime.Config documents them
// to users.
package defaults

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// The connection's account and server (the dev server's, see scripts/devserver.sh).
const (
	Service    = "xmpp://127.0.0.1:5222"
	Domain     = "parley.local"
	MUCService = "muc.parley.local"
	Username   = "parley"
	// Password applies only to a loopback Service.
	Password = "parleypass"
)

// Timeouts.
const (
	DialTimeout = 15 * time.Second // TCP connect and login
	IQTimeout   = 30 * time.Second // one IQ round trip
	JoinTimeout = 30 * time.Second // joining a room, cold-creation retries included
	PostTimeout = 30 * time.Second // a post's reflection
	CloseGrace  = 2 * time.Second  // how long Disconnect waits for the server to close the stream
)

// Reconnecting and keeping alive.
const (
	ReconnectWait    = 100 * time.Millisecond
	MaxReconnectWait = 10 * time.Second
	StableAfter      = 30 * time.Second
	KeepAlive        = 30 * time.Second
	KeepAliveTimeout = 10 * time.Second
	SelfPing         = 5 * time.Minute
	// RejoinInFlight bounds the rooms rejoining at once after a reconnect;
	// a room whose rejoin takes longer than RejoinLease stops counting (up
	// to twice as many in all).
	RejoinInFlight = 100
	RejoinLease    = 2 * time.Second
)

// Sizes.
const (
	FetchLimit       = 50    // a FetchRecent page when Limit <= 0
	MaxFetchLimit    = 10000 // the cap on any Limit
	MAMPageSize      = 50    // rows one MAM query asks for (Prosody's cap)
	MaxMAMResults    = 1000  // rows one MAM query may collect
	MaxContentBytes  = 64 * 1024
	SubscriberBuffer = 1024
	// MaxStanzaBytes stays under the 256 KiB Prosody and ejabberd take by
	// default.
	MaxStanzaBytes        = 240 * 1024
	MaxInboundStanzaBytes = 1 << 20
	// PostWindow bounds one room's posts on the wire (sent, not yet
	// reflected): above the 50 concurrent posters of the pipelined benchmark,
	// and with room for dozens of busy rooms in the link's send queue.
	PostWindow = 64
	// RingMessages and RingBytes bound the ring of recent messages a room holds
	// while one of its subscribers lags (count; bytes of content).
	RingMessages = 2048
	RingBytes    = 1 << 20
	// TargetLookback bounds the archive rows a room reads back, before a
	// relation, for a target older than what it has seen (two MAM pages).
	TargetLookback = 100
)

// Archive reads are bounded, so a server whose paging never ends (empty pages,
// each with a fresh RSM <last/> and complete=false) can't keep a read, and the
// link, busy for ever. Each read of the archive (one FetchRecent, one replay
// after a rejoin, one page for lagging subscribers) stops with
// vocab.ErrArchiveRunaway past any of these.
const (
	// MaxArchiveExtraPages: MAM queries a read may send beyond those its
	// limit needs at MAMPageSize rows a page (so a larger MaxFetchLimit or a
	// smaller MAMPageSize never trips it). The largest read, with
	// MaxArchiveNonMessageRows other rows on the way, takes 200 more pages
	// of 50; this leaves room for a server that answers 20 rows a page.
	MaxArchiveExtraPages = 1000
	// MaxArchiveIdlePages: pages in a row that bring no new row while the
	// server says there is more. A real server ends its archive with an
	// empty page that is complete or has no <last/>; an empty page that
	// claims more is the pathology.
	MaxArchiveIdlePages = 3
	// MaxArchiveNonMessageRows: rows a read passes over that aren't messages
	// (no body: chat states, subject changes, reactions), as many as the
	// largest read has messages.
	MaxArchiveNonMessageRows = 10000
)

// ArchiveWait bounds how long a lagging subscriber waits for the archive to
// supply messages the room fanned out (ejabberd reflects a message before it
// archives it) before they are reported skipped.
const ArchiveWait = 10 * time.Second

// The environment variables of the connection settings, read only where a
// caller asks for them: runtime.ConfigFromEnv, package config (for the
// command, with .env files), and the test fixtures (internal/xmpptest).
const (
	EnvService    = "PARLEY_XMPP_SERVICE"
	EnvDomain     = "PARLEY_XMPP_DOMAIN"
	EnvMUCService = "PARLEY_XMPP_MUC"
	EnvUsername   = "PARLEY_XMPP_USER"
	EnvPassword   = "PARLEY_XMPP_PASS"
	EnvNick       = "PARLEY_XMPP_NICK"
)

// A room's own bounds (not settings an embedder sets; the runtime passes
// these to every room).
const (
	DedupWindow = 4096                   // ids a room remembers, to drop a second copy
	RejoinMin   = 500 * time.Millisecond // a removed room's first rejoin wait
	RejoinMax   = time.Minute            // … and its longest
	MaxBuffered = 10000                  // live messages held while a room catches up
)

// MustBeSet panics unless each named field of cfg (a struct) is positive.
// An actor's Props takes its settings as the runtime resolved them: it never
// fills a default of its own, which could silently disagree with the
// runtime's. A zero here is a bug in whoever built cfg (a test, or the
// runtime forgetting a field), and the panic names it.
func MustBeSet(cfg any, names ...string) {
	v := reflect.ValueOf(cfg)
	var unset []string
	for _, n := range names {
		f := v.FieldByName(n)
		if !f.IsValid() {
			panic(fmt.Sprintf("%s has no field %s", v.Type(), n))
		}
		if f.Int() <= 0 {
			unset = append(unset, n)
		}
	}
	if len(unset) > 0 {
		panic(fmt.Sprintf("%s: %s unset: the runtime resolves every setting (internal/defaults); an actor fills none", v.Type(), strings.Join(unset, ", ")))
	}
}
