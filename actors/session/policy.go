package session

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// linkPolicy is the session's link policy, in one place and with no actor in
// it: when to log in again after a lost link or a failed login (backoff,
// flap damping, giving up), and how long a keepalive ping may take. (How long
// an IQ may take is the iqTable's deadline.)
type linkPolicy struct {
	reconnect        Reconnect
	keepAliveTimeout time.Duration

	backoff     *backoff.ExponentialBackOff
	attempt     int // login attempts in this outage
	upAfter     int // the attempts the current link took
	onlineSince time.Time
	// pingWait is when a ping counts as late: KeepAliveTimeout, or more on a
	// server whose answers come late (twice the last round trip, up to
	// keepAliveMaxWait times KeepAliveTimeout).
	pingWait time.Duration
}

// flapWindow: a link lost sooner than this after its login counts as a failed
// login attempt (capped by Reconnect.StableAfter), so that whatever kills new
// links, logins never come faster than about one a second; a link that lived
// longer is reconnected at once, as a single dropped link should be.
const flapWindow = time.Second

// keepAliveGrace: a ping with nothing heard for this many times its wait
// drops the link; keepAliveMaxWait caps the wait, in KeepAliveTimeouts.
const (
	keepAliveGrace   = 2
	keepAliveMaxWait = 4
)

func newLinkPolicy(r Reconnect, keepAliveTimeout time.Duration) linkPolicy {
	return linkPolicy{reconnect: r, keepAliveTimeout: keepAliveTimeout, pingWait: keepAliveTimeout}
}

// dialing: a login attempt starts.
func (p *linkPolicy) dialing() { p.attempt++ }

// loggedIn: a login succeeded at now.
func (p *linkPolicy) loggedIn(now time.Time) {
	p.upAfter, p.attempt = p.attempt, 0
	p.onlineSince, p.pingWait = now, p.keepAliveTimeout
}

// lost: the link was lost at now. flapped: it died within flapWindow of its
// login, so its login counts as failed and the next one waits its backoff
// (next); otherwise the next login is at once. A link that lived
// StableAfter starts the backoff over.
func (p *linkPolicy) lost(now time.Time) (flapped bool, up time.Duration) {
	up = now.Sub(p.onlineSince)
	if up >= p.reconnect.StableAfter || p.backoff == nil {
		p.backoff = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(p.reconnect.InitialInterval),
			backoff.WithMaxInterval(p.reconnect.MaxInterval),
			backoff.WithRandomizationFactor(0.5),
			backoff.WithMaxElapsedTime(0),
		)
	}
	if up < min(p.reconnect.StableAfter, flapWindow) {
		p.attempt = p.upAfter
		return true, up
	}
	p.attempt = 0
	return false, up
}

// next: after a failed attempt, how long until the next one, or giveUp once
// MaxAttempts were made.
func (p *linkPolicy) next() (wait time.Duration, giveUp bool) {
	if max := p.reconnect.MaxAttempts; max > 0 && p.attempt >= max {
		return 0, true
	}
	return p.backoff.NextBackOff(), false
}

// pingTimeout is how long a ping may go unanswered, with nothing else heard,
// before the link is taken for dead.
func (p *linkPolicy) pingTimeout() time.Duration { return keepAliveGrace * p.pingWait }

// pinged takes a ping's round trip: the next pings wait twice as long as it
// took, from KeepAliveTimeout up to keepAliveMaxWait × KeepAliveTimeout.
// late: it took longer than the wait.
func (p *linkPolicy) pinged(rtt time.Duration) (wait time.Duration, late bool) {
	wait = min(max(2*rtt, p.keepAliveTimeout), keepAliveMaxWait*p.keepAliveTimeout)
	late = rtt > p.pingWait
	p.pingWait = wait
	return wait, late
}
