package room

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cenkalti/backoff/v4"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/observe"
)

// Occupancy: being in the room. It joins (after the pinned-nick check and,
// with PersistentRooms, the check whether the room exists), wins the
// cold-creation race, verifies a pinned nick, settles (reads the archive's tail,
// or replays what was missed), notices a removal (presence or self-ping) and
// rejoins with backoff. Requests that need the room wait in queued.

// phase is where the occupancy is.
type phase int

const (
	idle      phase = iota // not in the room
	checking               // before joining: asking the room who is in, or whether it exists
	joining                // join presence sent, waiting for our own presence
	verifying              // pinned nick: checking that no other session shares it
	settling               // in the room: unlocking it and reading the archive's tail
	replaying              // in the room: unlocking it and reading what was missed
	joined
)

// inRoom: the room counts us as an occupant (the join's own presence came).
func (p phase) inRoom() bool { return p == verifying || p == settling || p == replaying || p == joined }

// joinKind says what a join is for.
type joinKind int

const (
	firstJoin joinKind = iota // a request's first
	rejoin                    // regains an occupancy that was lost
)

// configStep is where the configuration of a room this runtime creates is
// (PersistentRooms).
type configStep int

const (
	configNone   configStep = iota // the room existed, or nobody asked
	configNeeded                   // the existence check said this join creates the room
	configForm                     // the configuration form is asked for (id)
	configSubmit                   // the persistent configuration is submitted (id)
)

type occupancy struct {
	s          *state
	phase      phase
	kind       joinKind
	nick       string // the nick we join as
	nickHeld   bool   // the pinned nick was verified as ours; rejoins reclaim it without checking (a ghost of our own lost link may hold it)
	joinID     string
	joinStart  time.Time
	retry      *backoff.ExponentialBackOff        // cold-creation retries of one join
	rejoinWait *backoff.ExponentialBackOff        // waits before rejoining after removals
	checks     struct{ itemsID, existsID string } // the IQs before joining (see startJoin)
	config     struct {
		step configStep
		id   string
	}
	probe struct {
		id, tok string
		seen    bool
	} // the pinned-nick probe (see startVerifying)
	pingID string      // the self-ping in flight
	banned error       // the room banned us; a later join refused without a readable reason is that
	queued []queuedReq // requests that need the room joined
	// lean: this join is a rejoin that reuses what the first join learnt (see
	// startRejoin); a refusal or a replay showing that it no longer holds
	// turns the next attempt into a full join.
	lean bool
	// known: a join completed in this room, so what its checks learnt holds
	// until the room shows otherwise (see startRejoin).
	known bool
	turn  turn // the session's rejoin turn (session.RejoinTurn)
	// notOwned: the affiliation other than owner that a full join found and
	// reported (NotOwned); "" while the room shows this account as its owner,
	// or before it said.
	notOwned string
	// subject: the room's subject as last reported (SubjectChanged); a join
	// that shows the same one reports nothing.
	subject string
}

// turn is where the occupancy is with the session's rejoin turns.
type turn int

const (
	noTurn      turn = iota
	turnWaiting      // asked for a turn
	turnHeld         // rejoining in its turn: give it back when in, or failed
)

// whenJoined runs m now if the room is joined, or queues it and starts the join.
func (o *occupancy) whenJoined(ctx actor.Context, m any, sender *actor.PID) {
	if o.phase != joined {
		o.queued = append(o.queued, queuedReq{msg: m, sender: sender})
		if o.phase == idle && o.s.online() {
			o.startJoin(ctx)
		}
		return
	}
	o.s.dispatch(ctx, m, sender)
}

// withdraw drops a post still queued for the join; false: none was.
func (o *occupancy) withdraw(origin string) bool {
	for i, q := range o.queued {
		if p, ok := q.msg.(*Post); ok && p.Origin == origin {
			o.queued = slices.Delete(o.queued, i, i+1)
			return true
		}
	}
	return false
}

// askTurn answers LinkUp: a room that needs its occupancy back rejoins when
// the session gives the turn (it bounds the rooms rejoining at once, rooms
// with subscribers first).
func (o *occupancy) askTurn(ctx actor.Context) {
	s := o.s
	need := o.phase == idle && s.needsRoom()
	if need {
		o.turn = turnWaiting
	}
	ctx.Send(s.cfg.Session, &session.RejoinTurn{Room: ctx.Self(), Need: need, Subscribed: len(s.fan.subs) > 0})
}

// onTurn: the session's go. A room that no longer needs it (a request joined
// it meanwhile, or the link went down) gives it back at once.
func (o *occupancy) onTurn(ctx actor.Context) {
	s := o.s
	if o.turn == turnWaiting && o.phase == idle && s.online() && s.needsRoom() {
		o.turn = turnHeld
		o.startRejoin(ctx)
		return
	}
	if o.turn != turnHeld {
		o.turn = noTurn
		ctx.Send(s.cfg.Session, &session.RejoinDone{Room: ctx.Self()})
	}
}

// giveTurn gives a held turn back (the rejoin ended, one way or another).
func (o *occupancy) giveTurn(ctx actor.Context) {
	if o.turn == turnHeld {
		ctx.Send(o.s.cfg.Session, &session.RejoinDone{Room: ctx.Self()})
	}
	o.turn = noTurn
}

// startRejoin joins to regain an occupancy that was lost. After a join that
// completed, a rejoin sends only what the room needs: the join presence
// (history suppressed) and then, once in, the read of what was missed from the
// room's cursor. What the first join checked still holds, and is not asked
// again:
//   - the room exists (the PersistentRooms disco#info), and it was configured
//     (or found) then: a room that was destroyed and made anew while the link
//     was down shows in the replay, whose cursor the new archive doesn't know
//     (onGap: fallBack, which configures and unlocks it);
//   - the pinned nick is ours (the disco#items check and the probe): it was
//     verified, and a ghost of our own lost link may still hold it, which the
//     server merges (Prosody) or replaces (ejabberd); another connection
//     taking it meanwhile shows as a conflict (onJoinError: a full join next);
//   - the room keeps an archive (the archive actor's disco#info, kept there),
//     and where this occupancy is in it: the fan-out's cursor, which the
//     replay reads after (a trusted cursor, archive.Query.Trusted), instead of
//     the archive's tail;
//   - the room is unlocked: it existed with us in it. The unlock is sent only
//     when the cursor can't show a recreated room (an empty archive).
//
// A removal by the room (forget) makes the next join a full one.
func (o *occupancy) startRejoin(ctx actor.Context) {
	o.begin(ctx, rejoin)
}

func (o *occupancy) startJoin(ctx actor.Context) { o.begin(ctx, firstJoin) }

func (o *occupancy) begin(ctx actor.Context, kind joinKind) {
	s := o.s
	o.kind = kind
	o.lean = kind == rejoin && o.known
	o.phase = joining
	s.epoch++
	o.joinStart = time.Now()
	o.retry = backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(20*time.Millisecond),
		backoff.WithMaxInterval(time.Second),
		backoff.WithMaxElapsedTime(0), // the join timeout bounds the retries
	)
	s.arm(ctx, s.cfg.JoinTimeout, joinTimeout)
	o.checks.itemsID, o.checks.existsID = "", ""
	if o.config.step == configNeeded {
		o.config.step = configNone
	}
	if o.lean {
		o.sendJoin(ctx)
		return
	}
	if s.cfg.Pinned && !o.nickHeld {
		// Look, before joining with a pinned nick, at the occupants the room lists
		// (ejabberd lists them; Prosody's rooms usually don't). ejabberd lets a
		// second session of one account take over an occupied nick, so this is
		// its check; Prosody's is the probe after joining (startVerifying).
		o.phase = checking
		o.checks.itemsID = s.iq(ctx, s.cfg.JID, func(id string) []byte { return stanza.DiscoItemsIQ(s.cfg.JID, id) })
	}
	if s.cfg.PersistentRooms {
		// Whether this join creates the room decides how to configure it.
		o.phase = checking
		o.checks.existsID = s.iq(ctx, s.cfg.JID, func(id string) []byte { return stanza.DiscoInfoIQ(s.cfg.JID, id) })
	}
	if o.phase == joining {
		o.sendJoin(ctx)
	}
}

// onIQResult takes the answers to the occupancy's IQs; it reports whether
// res was one of them.
func (o *occupancy) onIQResult(ctx actor.Context, res *session.IQResult) bool {
	switch {
	case res.ID == "":
		return false
	case res.ID == o.checks.itemsID || res.ID == o.checks.existsID:
		o.onCheck(ctx, res)
	case res.ID == o.config.id && (o.config.step == configForm || o.config.step == configSubmit):
		o.onConfigStep(ctx, res)
	case res.ID == o.probe.id:
		o.probe.id = ""
		o.onProbe(ctx, res)
	case res.ID == o.pingID:
		o.pingID = ""
		o.onSelfPingAnswer(ctx, res)
	default:
		return false
	}
	return true
}

// onCheck takes the answer of a check before joining; the join follows the last
// one.
func (o *occupancy) onCheck(ctx actor.Context, res *session.IQResult) {
	s := o.s
	if o.phase != checking || res.Err != nil && errors.Is(res.Err, vocab.ErrLinkLost) {
		return // LinkDown follows
	}
	switch res.ID {
	case o.checks.itemsID:
		o.checks.itemsID = ""
		for _, item := range res.IQ.Items {
			if strings.EqualFold(stanza.Bare(item), s.cfg.JID) && stanza.Resource(item) == o.nick {
				s.failJoin(ctx, &NickConflictError{Nick: o.nick, Room: s.cfg.JID})
				return
			}
		}
	case o.checks.existsID:
		o.checks.existsID = ""
		if res.IQ.Error != nil && res.IQ.Error.Condition == "item-not-found" {
			o.config.step = configNeeded
		}
	}
	if o.checks.itemsID == "" && o.checks.existsID == "" {
		o.phase = joining
		o.sendJoin(ctx)
	}
}

// configure makes a room this join created persistent, with archiving on: it
// asks for the configuration form and submits the fields the server offers. A
// refusal falls back to the instant room.
func (o *occupancy) configure(ctx actor.Context) {
	s := o.s
	o.config.step = configForm
	o.config.id = s.iq(ctx, s.cfg.JID, func(id string) []byte { return stanza.RoomConfigFormIQ(s.cfg.JID, id) })
}

func (o *occupancy) onConfigStep(ctx actor.Context, res *session.IQResult) {
	s := o.s
	if res.Err != nil && errors.Is(res.Err, vocab.ErrLinkLost) {
		return
	}
	step := o.config.step
	o.config.step, o.config.id = configNone, ""
	switch step {
	case configForm:
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
		o.config.step = configSubmit
		o.config.id = s.iq(ctx, s.cfg.JID, func(id string) []byte { return stanza.RoomConfigSubmitIQ(s.cfg.JID, id, vars, want) })
	case configSubmit:
		if res.Err != nil || res.IQ.Error != nil {
			s.log.Warn("the room refused a persistent configuration; it stays an instant room", slog.Any("err", res.IQ.Error), slog.Any("failure", res.Err))
			s.send(ctx, stanza.InstantRoomIQ(s.cfg.JID, rand.Text()))
		}
	}
}

func (o *occupancy) sendJoin(ctx actor.Context) {
	o.joinID = rand.Text()
	o.s.send(ctx, stanza.JoinPresence(o.s.cfg.JID, o.nick, o.joinID))
}

func (o *occupancy) onTimeout(ctx actor.Context) {
	if o.phase != idle && o.phase != joined {
		s := o.s
		s.failJoin(ctx, fmt.Errorf("%w: %s did not let %q in within %s", vocab.ErrJoinTimeout, s.cfg.JID, o.nick, s.cfg.JoinTimeout))
	}
}

func (o *occupancy) onPresence(ctx actor.Context, p stanza.Presence) {
	s := o.s
	nick := stanza.Resource(p.From)
	switch {
	case o.phase == joining:
		switch {
		case p.Type == "error":
			o.onJoinError(ctx, p)
		case p.Type == "" && (nick == o.nick || p.ID == o.joinID && nick != ""):
			// Our own presence. A server that renamed us (status 210, which
			// go-xmpp hides) still echoes the join's id.
			if nick != o.nick {
				s.log.Warn("the room assigned another nick", slog.String("asked", o.nick), slog.String("got", nick))
				o.nick = nick
			}
			if !o.lean {
				o.checkOwner(ctx, p.Affiliation)
			}
			if s.cfg.Pinned && !o.nickHeld {
				o.startVerifying(ctx)
			} else {
				o.startSettling(ctx)
			}
		}
	case o.phase.inRoom():
		if nick == o.nick && p.Type == "unavailable" {
			s.removed(ctx, p)
		}
	}
}

// checkOwner reads this account's affiliation in the room's own presence of a
// full join. A topic's room is the runtime's own: it creates it on first use
// (cold creation), and its creator is the room's owner. A room that gives it
// less than owner was there before it, made by another account, which controls
// it (squatting: docs/security.md): the room is used as it is, and reported
// (NotOwned, a warning, the metric) once until a join shows this account as its
// owner again. A presence without an affiliation says nothing.
func (o *occupancy) checkOwner(ctx actor.Context, aff string) {
	s := o.s
	switch aff {
	case "":
		return
	case "owner":
		o.notOwned = ""
		return
	case o.notOwned:
		return // reported
	}
	o.notOwned = aff
	err := fmt.Errorf("%w: %s existed before this join and gives %s the affiliation %q, not owner: another account created it", vocab.ErrRoomNotOwned, s.cfg.JID, s.cfg.Account, aff)
	s.log.Warn("the topic's room is owned by another account (squatting: see docs/security.md)", slog.String("affiliation", aff))
	if m, ok := s.cfg.Metrics.(observe.OwnershipRecorder); ok {
		m.RoomNotOwned()
	}
	if s.cfg.Notify != nil {
		ctx.Send(s.cfg.Notify, &vocab.RoomEvent{Topic: s.cfg.Topic, Room: s.cfg.JID, Kind: vocab.RoomNotOwned, Err: err, Affiliation: aff, At: time.Now()})
	}
}

func (o *occupancy) onJoinError(ctx actor.Context, p stanza.Presence) {
	s := o.s
	cond := ""
	if p.Error != nil {
		cond = p.Error.Condition
	}
	switch cond {
	case "item-not-found":
		// A room another connection is creating stays locked until its creator
		// submits the configuration (Prosody); retry until the join timeout.
		s.arm(ctx, o.retry.NextBackOff(), retryJoin)
	case "conflict":
		// Whoever holds the nick now, it is not a ghost of ours to reclaim:
		// the next join checks it again.
		o.nickHeld, o.known = false, false
		if s.cfg.Pinned {
			s.failJoin(ctx, &NickConflictError{Nick: o.nick, Room: s.cfg.JID})
			return
		}
		// A random nick collided (or a ghost of an earlier connection holds it):
		// draw another.
		o.nick = "parley-" + rand.Text()[:10]
		s.log.Warn("random nick taken; drew another", slog.String("nick", o.nick))
		o.sendJoin(ctx)
	case "forbidden":
		s.failJoin(ctx, fmt.Errorf("%w: %w: %s answered the join with %v", vocab.ErrJoin, vocab.ErrBanned, s.cfg.JID, p.Error))
	default:
		if o.banned != nil && cond == "undefined-condition" {
			// go-xmpp hides the condition of an error with a text (ejabberd's
			// forbidden): after a ban, that refusal is the ban.
			s.failJoin(ctx, fmt.Errorf("%w: %w", vocab.ErrJoin, o.banned))
			return
		}
		s.failJoin(ctx, fmt.Errorf("%w: %s answered the join with %v", vocab.ErrJoin, s.cfg.JID, p.Error))
	}
}

// startVerifying checks a pinned nick after joining. A server that folds two
// sessions of one account into one occupant (Prosody's multi-session nicks)
// answers the second join like any other, so the runtime asks the room itself:
// an IQ addressed to our own occupant JID is routed to the occupant's primary
// session. If it comes back to this connection we hold the nick alone (or
// first); if another session answers it, the nick was already taken.
func (o *occupancy) startVerifying(ctx actor.Context) {
	s := o.s
	o.phase = verifying
	o.probe.tok, o.probe.seen = rand.Text(), false
	occupant := stanza.Occupant(s.cfg.JID, o.nick)
	o.probe.id = s.iq(ctx, occupant, func(id string) []byte { return stanza.NickProbeIQ(occupant, id, o.probe.tok) })
}

// onIQ handles requests the session routed here: our own nick probe, and
// anything else an occupant asks (which the runtime doesn't serve).
func (o *occupancy) onIQ(ctx actor.Context, iq stanza.IQ) {
	if iq.Type != "get" && iq.Type != "set" {
		return
	}
	if o.phase == verifying && stanza.Resource(iq.From) == o.nick && stanza.IsNickProbe(iq.Payload, o.probe.tok) {
		o.probe.seen = true
	}
	o.s.send(ctx, stanza.ErrorReplyIQ(iq.From, iq.ID, "service-unavailable"))
}

// onProbe: the probe's answer came (after the probe itself, if it came to us:
// both are messages, in the order the session routed them).
func (o *occupancy) onProbe(ctx actor.Context, res *session.IQResult) {
	s := o.s
	if o.phase != verifying {
		return
	}
	if o.probe.seen {
		o.nickHeld = true
		o.startSettling(ctx)
		return
	}
	if res.Err != nil && errors.Is(res.Err, vocab.ErrLinkLost) {
		return // the link went down; LinkDown handles it
	}
	s.send(ctx, stanza.LeavePresence(s.cfg.JID, o.nick))
	s.failJoin(ctx, &NickConflictError{Nick: o.nick, Room: s.cfg.JID})
}

// startSettling: we are in the room. Unlock it in case we created it, and read
// the archive: its tail on a first join (which proves the room has an archive
// and fixes where this occupancy starts), or everything after the last message
// fanned out when rejoining with someone to replay to. Live messages wait in
// the fan-out's buffer meanwhile.
func (o *occupancy) startSettling(ctx actor.Context) {
	s := o.s
	// In the room: what remains is reading the archive, which may be long after
	// a long outage and has its own timeouts and retries.
	s.disarm(joinTimeout)
	o.phase = settling
	if s.fan.stream != unplaced && s.hasReplayAudience() {
		o.phase = replaying
	}
	s.fan.hold()
	switch {
	case o.config.step == configNeeded && s.cfg.PersistentRooms:
		o.configure(ctx)
	case o.lean && o.phase == replaying && s.fan.last != "":
		// The room existed with us in it; the replay shows if it was made
		// anew (startRejoin).
	default:
		// Refusal is normal (the room existed and we don't own it), and nothing
		// waits on the answer: the server handles one stream's stanzas in order,
		// so the room is unlocked before it answers the read below.
		s.send(ctx, stanza.InstantRoomIQ(s.cfg.JID, rand.Text()))
	}
	if o.phase == replaying {
		s.fan.readGap(ctx)
		return
	}
	// The archive answers after up to three requests in a row (the room's
	// disco#info, the service's when the room is missing, the newest row), each
	// bounded by IQTimeout; the future only guards against a lost answer.
	epoch := s.epoch
	s.ask(ctx, s.archive, &archive.Tail{}, 3*session.MaxIQStretch*s.cfg.IQTimeout+5*time.Second, func(res any, err error) any {
		t, ok := res.(*archive.TailResult)
		if !ok {
			t = &archive.TailResult{Err: fmt.Errorf("%w: room: archive tail of %s: no answer from the archive actor (%v)", vocab.ErrActorFailed, s.cfg.JID, err)}
		}
		return &tailAnswer{epoch: epoch, res: t}
	})
}

func (o *occupancy) onTail(ctx actor.Context, a *tailAnswer) {
	s := o.s
	if a.epoch != s.epoch || o.phase != settling {
		return
	}
	if t := a.res; t.Err != nil {
		if errors.Is(t.Err, vocab.ErrLinkLost) {
			return
		}
		s.send(ctx, stanza.LeavePresence(s.cfg.JID, o.nick))
		s.failJoin(ctx, t.Err)
		return
	}
	s.fan.place(a.res.ID)
	s.joinDone(ctx)
}

// joined: the join is complete (the room's caller serves what waited for it).
// It reports whether the join replayed what was missed.
func (o *occupancy) joined() (replayed bool) {
	replayed = o.phase == replaying
	o.phase = joined
	o.kind, o.banned, o.lean, o.known = firstJoin, nil, false, true
	o.rejoinWait.Reset()
	o.s.log.Debug("joined", slog.String("nick", o.nick), slog.Duration("took", time.Since(o.joinStart)), slog.Bool("replayed", replayed))
	return replayed
}

// forget: the room removed us (a kick, its destruction, a silent removal):
// what the first join learnt may no longer hold, and the next join checks it
// all again. Only a lost link, which the room had no part in, leaves it known.
func (o *occupancy) forget() { o.known = false }

// fallBack: a lean rejoin's replay found that the archive no longer knows the
// room's cursor: the room was destroyed and made anew (or its archive
// expired). What the first join learnt no longer holds: configure or unlock the
// room as a first join would (a new room stays locked on Prosody until then),
// and check everything again on the next join.
func (o *occupancy) fallBack(ctx actor.Context) {
	if !o.lean {
		return
	}
	s := o.s
	o.lean, o.known = false, false
	s.log.Warn("the room was made anew while the link was down; configuring it as a first join would")
	if s.cfg.PersistentRooms {
		o.configure(ctx)
		return
	}
	s.send(ctx, stanza.InstantRoomIQ(s.cfg.JID, rand.Text()))
}

// failed returns to idle after a failed join; a rejoin that failed (other than
// by a ban) is tried again with backoff.
func (o *occupancy) failed(ctx actor.Context, err error) {
	s := o.s
	s.log.Debug("join failed", slog.Any("err", err))
	o.giveTurn(ctx)
	// The epoch first: the retry's timer carries the epoch it is armed in (armed
	// before the bump, it was stale and a failed rejoin was never retried).
	s.epoch++
	if o.kind == rejoin && !errors.Is(err, vocab.ErrBanned) {
		s.notify(ctx, vocab.RoomRejoinFailed, err)
		s.arm(ctx, o.rejoinWait.NextBackOff(), rejoinNow)
	}
	o.kind, o.lean = firstJoin, false
	o.phase = idle
	s.disarm(joinTimeout)
	s.disarm(retryJoin)
}

// answerQueued answers every request waiting for the join with err.
func (o *occupancy) answerQueued(ctx actor.Context, err error) {
	for _, q := range o.queued {
		answerErr(ctx, q.msg, q.sender, err)
	}
	o.queued = nil
}

// left forgets the occupancy (the room or the link ended it).
func (o *occupancy) left() {
	if o.phase == joined {
		o.s.cfg.Metrics.Joined(false)
	}
	o.phase = idle
	o.probe.id, o.pingID = "", ""
}

// ---- self-ping (XEP-0410) ----

func (o *occupancy) armSelfPing(ctx actor.Context) {
	if o.s.cfg.SelfPing > 0 {
		o.s.arm(ctx, o.s.cfg.SelfPing, selfPing)
	}
}

func (o *occupancy) sendSelfPing(ctx actor.Context) {
	if o.phase != joined || o.pingID != "" {
		return
	}
	s := o.s
	occupant := stanza.Occupant(s.cfg.JID, o.nick)
	o.pingID = s.iq(ctx, occupant, func(id string) []byte { return stanza.PingIQ(occupant, id) })
}

func (o *occupancy) onSelfPingAnswer(ctx actor.Context, res *session.IQResult) {
	s := o.s
	if o.phase != joined {
		return
	}
	if e := res.IQ.Error; res.Err == nil && e != nil {
		switch e.Condition {
		case "not-acceptable", "item-not-found", "not-allowed":
			// The room no longer counts us as an occupant, and said nothing.
			s.leave(ctx)
			o.forget()
			err := fmt.Errorf("%w: self-ping of %s answered %v", vocab.ErrLeft, s.cfg.JID, e)
			s.log.Warn("silently removed from the room; rejoining", slog.Any("err", err))
			s.notify(ctx, vocab.RoomRemoved, err)
			o.startRejoin(ctx)
			return
		}
	}
	// A result, or an error meaning "joined, but I don't answer pings", or a
	// timeout (the session's keepalive judges the link).
	o.armSelfPing(ctx)
}
