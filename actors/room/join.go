package room

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cenkalti/backoff/v4"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
)

// needsRoom: something waits on the room's occupancy, so a lost one is
// regained without waiting for the next request.
func (s *state) needsRoom() bool {
	return len(s.subs) > 0 || len(s.posts) > 0 || len(s.queued) > 0 || len(s.waiters) > 0
}

// whenJoined runs m now if the room is joined, or queues it and starts the join.
func (s *state) whenJoined(ctx actor.Context, m any, sender *actor.PID) {
	if s.phase != joined {
		s.queued = append(s.queued, queuedReq{msg: m, sender: sender})
		if s.phase == idle && s.online {
			s.startJoin(ctx)
		}
		return
	}
	s.serve(ctx, m, sender)
}

func (s *state) serve(ctx actor.Context, m any, sender *actor.PID) {
	switch m := m.(type) {
	case *Post:
		s.post(ctx, m, sender)
	case *Subscribe:
		s.subscribe(ctx, m, sender)
	case *Fetch:
		s.startWaiter(ctx, m, sender)
	}
}

// startRejoin joins to regain an occupancy that was lost.
func (s *state) startRejoin(ctx actor.Context) {
	s.startJoin(ctx)
	s.rejoining = true
}

func (s *state) startJoin(ctx actor.Context) {
	s.rejoining = false
	s.phase = joining
	s.epoch++
	s.joinStart = time.Now()
	s.retry = backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(20*time.Millisecond),
		backoff.WithMaxInterval(time.Second),
		backoff.WithMaxElapsedTime(0), // the join timeout bounds the retries
	)
	s.arm(ctx, s.cfg.JoinTimeout, joinTimeout)
	s.creating, s.itemsID, s.existsID = false, "", ""
	if s.cfg.Pinned && !s.nickHeld {
		// Look, before joining with a pinned nick, at the occupants the room lists
		// (ejabberd lists them; Prosody's rooms usually don't). ejabberd lets a
		// second session of one account take over an occupied nick, so this is
		// its check; Prosody's is the probe after joining (startVerifying).
		s.phase = checking
		s.itemsID = s.iq(ctx, s.cfg.JID, func(id string) []byte { return stanza.DiscoItemsIQ(s.cfg.JID, id) })
	}
	if s.cfg.PersistentRooms {
		// Whether this join creates the room decides how to configure it.
		s.phase = checking
		s.existsID = s.iq(ctx, s.cfg.JID, func(id string) []byte { return stanza.DiscoInfoIQ(s.cfg.JID, id) })
	}
	if s.phase == joining {
		s.sendJoin(ctx)
	}
}

// onCheck takes the answer of a check before joining; the join follows the last
// one.
func (s *state) onCheck(ctx actor.Context, res *session.IQResult) {
	if s.phase != checking || res.Err != nil && errors.Is(res.Err, session.ErrLinkLost) {
		return // LinkDown follows
	}
	switch res.ID {
	case s.itemsID:
		s.itemsID = ""
		for _, item := range res.IQ.Items {
			if strings.EqualFold(stanza.Bare(item), s.cfg.JID) && stanza.Resource(item) == s.nick {
				s.failJoin(ctx, &NickConflictError{Nick: s.nick, Room: s.cfg.JID})
				return
			}
		}
	case s.existsID:
		s.existsID = ""
		s.creating = res.IQ.Error != nil && res.IQ.Error.Condition == "item-not-found"
	}
	if s.itemsID == "" && s.existsID == "" {
		s.phase = joining
		s.sendJoin(ctx)
	}
}

// configure makes a room this join created persistent, with archiving on: it
// asks for the configuration form and submits the fields the server offers. A
// refusal falls back to the instant room.
func (s *state) configure(ctx actor.Context) {
	s.formID = s.iq(ctx, s.cfg.JID, func(id string) []byte { return stanza.RoomConfigFormIQ(s.cfg.JID, id) })
}

func (s *state) onConfigStep(ctx actor.Context, res *session.IQResult) {
	if res.Err != nil && errors.Is(res.Err, session.ErrLinkLost) {
		return
	}
	switch res.ID {
	case s.formID:
		s.formID = ""
		want := map[string]string{
			"muc#roomconfig_persistentroom":  "1",
			"muc#roomconfig_enablearchiving": "1", // Prosody, when archiving is optional
			"mam":                            "1", // ejabberd
		}
		var vars []string
		for _, v := range stanza.FormFields(res.IQ.Payload) {
			if _, ok := want[v]; ok {
				vars = append(vars, v)
			}
		}
		if res.IQ.Error != nil || len(vars) == 0 {
			s.log.Warn("the room offers no persistence setting; it stays an instant room", slog.Any("err", res.IQ.Error))
			s.send(ctx, stanza.InstantRoomIQ(s.cfg.JID, rand.Text()))
			return
		}
		s.configID = s.iq(ctx, s.cfg.JID, func(id string) []byte { return stanza.RoomConfigSubmitIQ(s.cfg.JID, id, vars, want) })
	case s.configID:
		s.configID = ""
		if res.Err != nil || res.IQ.Error != nil {
			s.log.Warn("the room refused a persistent configuration; it stays an instant room", slog.Any("err", res.IQ.Error), slog.Any("failure", res.Err))
			s.send(ctx, stanza.InstantRoomIQ(s.cfg.JID, rand.Text()))
		}
	}
}

func (s *state) sendJoin(ctx actor.Context) {
	s.joinID = rand.Text()
	s.send(ctx, stanza.JoinPresence(s.cfg.JID, s.nick, s.joinID))
}

func (s *state) onJoinTimeout(ctx actor.Context) {
	if s.phase == checking || s.phase == joining || s.phase == verifying || s.phase == settling {
		s.failJoin(ctx, fmt.Errorf("%w: %s did not let %q in within %s", ErrJoinTimeout, s.cfg.JID, s.nick, s.cfg.JoinTimeout))
	}
}

func (s *state) onPresence(ctx actor.Context, p stanza.Presence) {
	s.trackOccupant(p)
	nick := stanza.Resource(p.From)
	switch s.phase {
	case joining:
		switch {
		case p.Type == "error":
			s.onJoinError(ctx, p)
		case p.Type == "" && (nick == s.nick || p.ID == s.joinID && nick != ""):
			// Our own presence. A server that renamed us (status 210, which
			// go-xmpp hides) still echoes the join's id.
			if nick != s.nick {
				s.log.Warn("the room assigned another nick", slog.String("asked", s.nick), slog.String("got", nick))
				s.nick = nick
			}
			if s.cfg.Pinned && !s.nickHeld {
				s.startVerifying(ctx)
			} else {
				s.startSettling(ctx)
			}
		}
	case verifying, settling, joined:
		if nick == s.nick && p.Type == "unavailable" {
			s.removed(ctx, p)
		}
	}
}

func (s *state) onJoinError(ctx actor.Context, p stanza.Presence) {
	cond := ""
	if p.Error != nil {
		cond = p.Error.Condition
	}
	switch cond {
	case "item-not-found":
		// A room another connection is creating stays locked until its creator
		// submits the configuration (Prosody); retry until the join timeout.
		s.arm(ctx, s.retry.NextBackOff(), retryJoin)
	case "conflict":
		if s.cfg.Pinned {
			s.failJoin(ctx, &NickConflictError{Nick: s.nick, Room: s.cfg.JID})
			return
		}
		// A random nick collided (or a ghost of an earlier connection holds it):
		// draw another.
		s.nick = "parley-" + rand.Text()[:10]
		s.log.Warn("random nick taken; drew another", slog.String("nick", s.nick))
		s.sendJoin(ctx)
	case "forbidden":
		s.failJoin(ctx, fmt.Errorf("%w: %w: %s answered the join with %v", ErrJoin, ErrBanned, s.cfg.JID, p.Error))
	default:
		if s.banned != nil && cond == "undefined-condition" {
			// go-xmpp hides the condition of an error with a text (ejabberd's
			// forbidden): after a ban, that refusal is the ban.
			s.failJoin(ctx, fmt.Errorf("%w: %w", ErrJoin, s.banned))
			return
		}
		s.failJoin(ctx, fmt.Errorf("%w: %s answered the join with %v", ErrJoin, s.cfg.JID, p.Error))
	}
}

// startVerifying checks a pinned nick after joining. A server that folds two
// sessions of one account into one occupant (Prosody's multi-session nicks)
// answers the second join like any other, so the runtime asks the room itself:
// an IQ addressed to our own occupant JID is routed to the occupant's primary
// session. If it comes back to this connection we hold the nick alone (or
// first); if another session answers it, the nick was already taken.
func (s *state) startVerifying(ctx actor.Context) {
	s.phase = verifying
	s.probeTok, s.probeSeen = rand.Text(), false
	occupant := stanza.Occupant(s.cfg.JID, s.nick)
	s.probeID = s.iq(ctx, occupant, func(id string) []byte { return stanza.NickProbeIQ(occupant, id, s.probeTok) })
}

// onIQ handles requests the session routed here: our own nick probe, and
// anything else an occupant asks (which the runtime doesn't serve).
func (s *state) onIQ(ctx actor.Context, iq stanza.IQ) {
	if iq.Type != "get" && iq.Type != "set" {
		return
	}
	if s.phase == verifying && stanza.Resource(iq.From) == s.nick && stanza.IsNickProbe(iq.Payload, s.probeTok) {
		s.probeSeen = true
	}
	s.send(ctx, stanza.ErrorReplyIQ(iq.From, iq.ID, "service-unavailable"))
}

func (s *state) onIQResult(ctx actor.Context, res *session.IQResult) {
	switch res.ID {
	case s.itemsID, s.existsID:
		s.onCheck(ctx, res)
	case s.formID, s.configID:
		s.onConfigStep(ctx, res)
	case s.probeID:
		s.probeID = ""
		if s.phase != verifying {
			return
		}
		if s.probeSeen {
			s.nickHeld = true
			s.startSettling(ctx)
			return
		}
		if res.Err != nil && errors.Is(res.Err, session.ErrLinkLost) {
			return // the link went down; LinkDown handles it
		}
		s.send(ctx, stanza.LeavePresence(s.cfg.JID, s.nick))
		s.failJoin(ctx, &NickConflictError{Nick: s.nick, Room: s.cfg.JID})
	case s.pingID:
		s.pingID = ""
		s.onSelfPingAnswer(ctx, res)
	}
}

// startSettling: we are in the room. Unlock it in case we created it, and read
// the archive: its tail on a first join (which proves the room has an archive
// and fixes where this occupancy starts), or everything after the last message
// fanned out when rejoining with someone to replay to. Live messages wait in
// the buffer meanwhile.
func (s *state) startSettling(ctx actor.Context) {
	// In the room: what remains is reading the archive, which may be long after
	// a long outage and has its own timeouts and retries.
	s.disarm(joinTimeout)
	s.phase = settling
	s.catchingUp, s.buffered, s.overflowed = true, nil, false
	s.replaying = s.haveLast && s.hasReplayAudience()
	epoch := s.epoch
	if s.creating && s.cfg.PersistentRooms {
		s.configure(ctx)
	} else {
		// Refusal is normal (the room existed and we don't own it), and nothing
		// waits on the answer: the server handles one stream's stanzas in order,
		// so the room is unlocked before it answers the read below.
		s.send(ctx, stanza.InstantRoomIQ(s.cfg.JID, rand.Text()))
	}
	if s.replaying {
		s.readGap(ctx)
		return
	}
	// The archive answers after up to three requests in a row (the room's
	// disco#info, the service's when the room is missing, the newest row), each
	// bounded by IQTimeout; the future only guards against a lost answer.
	tf := ctx.RequestFuture(s.archive, &archive.Tail{}, 3*s.cfg.IQTimeout+5*time.Second)
	ctx.ReenterAfter(tf, func(res any, err error) {
		t, ok := res.(*archive.TailResult)
		if !ok {
			t = &archive.TailResult{Err: fmt.Errorf("room: archive tail of %s: %v", s.cfg.JID, err)}
		}
		s.onTail(ctx, epoch, t)
	})
}

// hasReplayAudience: someone would receive a replay (a subscriber, a post
// whose fate is in doubt, a long-poll waiting for the next message).
func (s *state) hasReplayAudience() bool {
	if len(s.subs) > 0 {
		return true
	}
	for _, p := range s.posts {
		if p.inDoubt {
			return true
		}
	}
	for _, w := range s.waiters {
		if w.archiveDone {
			return true
		}
	}
	return false
}

func (s *state) onTail(ctx actor.Context, epoch int, t *archive.TailResult) {
	if epoch != s.epoch || s.phase != settling {
		return
	}
	if t.Err != nil {
		if errors.Is(t.Err, session.ErrLinkLost) {
			return
		}
		s.send(ctx, stanza.LeavePresence(s.cfg.JID, s.nick))
		s.failJoin(ctx, t.Err)
		return
	}
	// Where this occupancy starts in the archive: the newest live message seen
	// while settling, else the tail. Nobody was waiting for those messages.
	s.last = t.ID
	if n := len(s.buffered); n > 0 {
		s.last = string(s.buffered[n-1].msg.Cursor)
		for _, l := range s.buffered {
			s.recent.add(string(l.msg.BackendMsgID))
		}
	}
	s.haveLast = true
	s.catchingUp, s.buffered = false, nil
	s.joinDone(ctx)
}

// joinDone: the join is complete; serve what waited for it.
func (s *state) joinDone(ctx actor.Context) {
	rejoin := s.replaying
	s.phase = joined
	s.replaying, s.rejoining, s.banned = false, false, nil
	s.cfg.Metrics.Joined(true)
	s.disarm(joinTimeout)
	s.rejoin.Reset()
	s.log.Debug("joined", slog.String("nick", s.nick), slog.Duration("took", time.Since(s.joinStart)), slog.Bool("replayed", rejoin))
	if rejoin {
		s.notify(ctx, Rejoined, nil)
	}
	s.resendInDoubt(ctx)
	for _, w := range s.waiters {
		if !w.archiveDone && !w.reading {
			s.readForWaiter(ctx, w)
		}
	}
	for _, sub := range s.subs {
		if sub.lagging && !sub.reading {
			s.feedLagging(ctx, sub)
		}
	}
	queued := s.queued
	s.queued = nil
	for _, q := range queued {
		s.serve(ctx, q.msg, q.sender)
	}
	s.armSelfPing(ctx)
}

// failJoin answers every queued request with err and returns to idle; the next
// request tries again.
func (s *state) failJoin(ctx actor.Context, err error) {
	s.log.Debug("join failed", slog.Any("err", err))
	if s.rejoining && !errors.Is(err, ErrBanned) {
		s.notify(ctx, RejoinFailed, err)
		s.arm(ctx, s.rejoin.NextBackOff(), rejoinNow)
	}
	s.rejoining = false
	s.phase = idle
	s.epoch++
	s.catchingUp, s.buffered = false, nil
	s.disarm(joinTimeout)
	s.disarm(retryJoin)
	for _, q := range s.queued {
		answerErr(ctx, q.msg, q.sender, err)
	}
	s.queued = nil
	if errors.Is(err, ErrBanned) {
		s.failPending(ctx, err)
	}
}

// removed: the room dropped us (our own presence came back unavailable). A ban
// (affiliation outcast) ends it; anything else (a kick, the room's destruction,
// a forced nick change) is followed by a rejoin with backoff, and a replay.
func (s *state) removed(ctx actor.Context, p stanza.Presence) {
	s.leave(ctx)
	if p.Affiliation == "outcast" {
		err := fmt.Errorf("%w: %s", ErrBanned, s.cfg.JID)
		s.banned = err
		s.log.Warn("banned from the room", slog.Any("err", err))
		s.notify(ctx, Banned, err)
		s.failPending(ctx, err)
		for _, q := range s.queued {
			answerErr(ctx, q.msg, q.sender, err)
		}
		s.queued = nil
		return
	}
	err := fmt.Errorf("%w: %s removed %q (kicked, or the room was destroyed)", ErrLeft, s.cfg.JID, s.nick)
	s.log.Warn("removed from the room; rejoining", slog.Any("err", err))
	s.notify(ctx, Removed, err)
	s.arm(ctx, s.rejoin.NextBackOff(), rejoinNow)
}

// leave forgets the occupancy (the room or the link ended it) but keeps
// everything waiting on it: posts sent become in doubt, and the next join
// replays.
func (s *state) leave(ctx actor.Context) {
	if s.phase == joined {
		s.cfg.Metrics.Joined(false)
	}
	s.phase = idle
	s.epoch++
	s.catchingUp, s.buffered, s.replaying = false, nil, false
	s.probeID, s.pingID = "", ""
	clear(s.occupants) // the next join's presences tell them again
	for k := range s.timers {
		if k != rejoinNow {
			s.disarm(k)
		}
	}
	for _, p := range s.posts {
		stopTimer(p.timer)
		p.timer = nil
		p.onDeadLink = p.sent
		if p.sent {
			// Posts still waiting for the window were never sent: they wait on.
			p.sent, p.inDoubt = false, true
		}
	}
	s.inflight, s.ready, s.outbox = 0, nil, nil
	for _, w := range s.waiters {
		w.reading = false
	}
	for _, sub := range s.subs {
		sub.reading = false
	}
}

func (s *state) linkDown(ctx actor.Context, err error) {
	s.serverEnded = xmppconn.EndedByServer(err)
	s.online, s.link = false, nil
	if s.phase == checking || s.phase == joining || s.phase == verifying || s.phase == settling {
		// The requests queued for the join keep waiting for the next link.
		s.disarm(joinTimeout)
	}
	s.leave(ctx)
	s.disarm(rejoinNow)
	s.log.Debug("link down", slog.Any("err", err))
}

func (s *state) linkUp(ctx actor.Context) {
	s.online = true
	waiting := s.awaitingLink
	s.awaitingLink = nil
	for _, q := range waiting {
		s.fetch(ctx, q.msg.(*Fetch), q.sender)
	}
	if s.phase == idle && s.needsRoom() {
		s.startRejoin(ctx)
	}
}

// ---- self-ping (XEP-0410) ----

func (s *state) armSelfPing(ctx actor.Context) {
	if s.cfg.SelfPing > 0 {
		s.arm(ctx, s.cfg.SelfPing, selfPing)
	}
}

func (s *state) sendSelfPing(ctx actor.Context) {
	if s.phase != joined || s.pingID != "" {
		return
	}
	occupant := stanza.Occupant(s.cfg.JID, s.nick)
	s.pingID = s.iq(ctx, occupant, func(id string) []byte { return stanza.PingIQ(occupant, id) })
}

func (s *state) onSelfPingAnswer(ctx actor.Context, res *session.IQResult) {
	if s.phase != joined {
		return
	}
	if e := res.IQ.Error; res.Err == nil && e != nil {
		switch e.Condition {
		case "not-acceptable", "item-not-found", "not-allowed":
			// The room no longer counts us as an occupant, and said nothing.
			s.leave(ctx)
			err := fmt.Errorf("%w: self-ping of %s answered %v", ErrLeft, s.cfg.JID, e)
			s.log.Warn("silently removed from the room; rejoining", slog.Any("err", err))
			s.notify(ctx, Removed, err)
			s.startRejoin(ctx)
			return
		}
	}
	// A result, or an error meaning "joined, but I don't answer pings", or a
	// timeout (the session's keepalive judges the link).
	s.armSelfPing(ctx)
}
