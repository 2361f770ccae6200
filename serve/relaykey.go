package serve

import (
	"crypto/hmac"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A relay key is "relay-" + X + M + T, 70 characters, lower-case hex after
// the prefix (an origin-id and a PostOnce key may hold up to 128):
//
//   - X, 32 hex characters: the message's key proper, an HMAC of the route,
//     the source topic and the message id (what PostOnce finds again after a
//     crash);
//   - M, 16: which relay made it, an HMAC of the route and the source topic
//     (makerTag);
//   - T, 16: an HMAC of X and M, so that whoever holds the secret recognises
//     any of its keys from the key alone (ownRelayKey), without the message
//     it was made from: that is how a relay route tells a message this engine
//     relayed itself, come back round a loop, from any other.
//
// Keys made before M and T existed ("relay-" + X) are not recognised; their
// posts are found again only by the same key, so a post left in doubt by an
// older engine is posted again once after the upgrade.
const (
	relayKeyPrefix = "relay-"
	relayKeyX      = 32
	relayKeyM      = 16
	relayKeyT      = 16
	relayKeyLen    = len(relayKeyPrefix) + relayKeyX + relayKeyM + relayKeyT
)

// relayKey is the origin-id a relayed message is posted under: stable across
// restarts (so PostOnce finds a post made before a crash), distinct per route,
// source topic and message (two routes relaying one message into one topic
// post it twice, as configured), and keyed with the state dir's secret, so an
// occupant of the destination who sees the source can't post it first. This
// engine recognises it as its own (ownRelayKey).
func relayKey(secret []byte, route string, topic seam.Topic, id seam.BackendMsgID) (string, error) {
	return ownKey(secret, route, topic, "relay", string(id))
}

// relayPartKey is the origin-id of part i of a relayed message that the
// destination takes only in parts: keyed as relayKey, plus the part's index
// and content, so that the same split finds its parts again after a crash,
// and a different one (the destination's limits changed in between) posts its
// own parts rather than take another split's for its own. Recognised as this
// engine's own like any relay key.
func relayPartKey(secret []byte, route string, topic seam.Topic, id seam.BackendMsgID, i int, content string) (string, error) {
	return ownKey(secret, route, topic, "relay-part", string(id), strconv.Itoa(i), content)
}

// ownKey is "relay-" + X + M + T for the relay (route, topic), X keyed on
// what (a purpose and the message's parts).
func ownKey(secret []byte, route string, topic seam.Topic, what ...string) (string, error) {
	x, err := runtime.OriginKey(secret, append([]string{what[0], route, string(topic)}, what[1:]...)...)
	if err != nil {
		return "", fmt.Errorf("relay key: %w", err)
	}
	m, err := makerTag(secret, route, topic)
	if err != nil {
		return "", fmt.Errorf("relay key: %w", err)
	}
	t, err := ownTag(secret, x+m)
	if err != nil {
		return "", fmt.Errorf("relay key: %w", err)
	}
	return relayKeyPrefix + x + m + t, nil
}

// makerTag names, in a relay key, the relay (route and source topic) that
// made it.
func makerTag(secret []byte, route string, topic seam.Topic) (string, error) {
	k, err := runtime.OriginKey(secret, "relay-maker", route, string(topic))
	return k[:min(len(k), relayKeyM)], err
}

// ownTag authenticates a relay key's X and M.
func ownTag(secret []byte, xm string) (string, error) {
	k, err := runtime.OriginKey(secret, "own-relay-key", xm)
	return k[:min(len(k), relayKeyT)], err
}

// ownRelayKey says whether originID is a relay key made with secret, whatever
// message, route or topic it was made for, and if so which relay made it
// (its makerTag). It tells nothing about the secret: the answer is only
// whether the tag matches.
func ownRelayKey(secret []byte, originID string) (maker string, ok bool) {
	rest, found := strings.CutPrefix(originID, relayKeyPrefix)
	if !found || len(rest) != relayKeyX+relayKeyM+relayKeyT {
		return "", false
	}
	xm, tag := rest[:relayKeyX+relayKeyM], rest[relayKeyX+relayKeyM:]
	want, err := ownTag(secret, xm)
	if err != nil || !hmac.Equal([]byte(want), []byte(tag)) {
		return "", false
	}
	return xm[relayKeyX:], true
}

// loopGuard keeps a relay route from relaying, out of one topic, a message
// this engine relayed itself: a relay loop (A → B by this engine, B → A by a
// route of an engine with the same secret, or through two names of one room
// that the configuration's check can't tell are one) would otherwise bounce
// it forever. A chain of this engine's own relays (A → B, B → C), which the
// configuration allows, is not a loop: a message that one of its relays
// posted into the guarded topic's room passes on. The configuration has no
// loop of its own relays (config checks it), so such a chain ends.
type loopGuard struct {
	secret []byte
	// chain: the makerTags of this engine's relays into the guarded topic's
	// room.
	chain map[string]bool
}

// newLoopGuard is the guard of topic of relay route r, or nil for a route
// that doesn't relay.
func newLoopGuard(o Options, r config.Route, topic string) *loopGuard {
	if r.Sink.Relay == nil {
		return nil
	}
	g := &loopGuard{secret: o.secret, chain: map[string]bool{}}
	here := o.room(r.Server, topic)
	for _, p := range o.Routes {
		if p.Sink.Relay == nil || o.room(p.Sink.Relay.Server, p.Sink.Relay.Topic) != here {
			continue
		}
		for _, t := range p.Topics {
			if m, err := makerTag(o.secret, p.Name, seam.Topic(t)); err == nil {
				g.chain[m] = true
			}
		}
	}
	return g
}

// refuses says whether m carries one of this engine's relay keys made by none
// of its relays into this topic: a message come back round a loop.
func (g *loopGuard) refuses(m seam.Message) bool {
	maker, ok := ownRelayKey(g.secret, m.OriginID)
	return ok && !g.chain[maker]
}

// room is the room of topic on server, as Options.RoomJID says.
func (o Options) room(server, topic string) string {
	if o.RoomJID != nil {
		return o.RoomJID(server, topic)
	}
	local, err := runtime.RoomLocalpart(seam.Topic(topic))
	if err != nil {
		local = topic
	}
	return server + "\x00" + strings.ToLower(local)
}

// refuseLoop records that the worker passed over m, a message come back round
// a relay loop: logged with its id (never its origin-id: that is a key made
// with the secret) and counted.
func (w *worker) refuseLoop(m seam.Message) {
	if r, ok := w.metrics.(LoopRecorder); ok {
		r.RelayLoopRefused(w.route.Name)
	}
	w.log.Warn("not relaying a message that this engine relayed itself (it carries one of its relay keys, made by none of its relays into this topic): "+
		"a relay loop, through a route of another engine with the same relay secret or two names of one room; passing over it",
		slog.String("id", string(m.BackendMsgID)))
}
