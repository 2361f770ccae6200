package conformance_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/seam/conformance"
)

// TestMemoryBackendPasses is the positive control: the reference backend passes
// every clause, through every path of the suite.
func TestMemoryBackendPasses(t *testing.T) {
	for _, c := range []struct {
		name string
		opts fixtureOpts
	}{
		// ConcurrentPost and IndependentPost from the fixture.
		{"with_hooks", fixtureOpts{}},
		// Writers and the independent client from NewBackend instead.
		{"fallbacks", fixtureOpts{minimal: true}},
		// Clause 7's error variant: a never-posted topic reads as NoSuchTopicError.
		{"absent_topic_error", fixtureOpts{
			wrap: onPage(noSuchTopicNamed),
			caps: caps(func(c *conformance.Capabilities) { c.AbsentTopic = conformance.AbsentTopicError }),
		}},
		// Clause 22's side: a backend without native long-poll (the wrapper drops Block).
		{"no_native_block", fixtureOpts{
			wrap: onFetch(blockReturnsAtOnce),
			caps: caps(func(c *conformance.Capabilities) { c.BlockingFetch = false }),
		}},
		// The XMPP clauses against a faithful fake MUC.
		{"fake_xmpp", fixtureOpts{xmpp: &xmppBreaks{}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Registered first, so it runs after the suite's and the fixture's
			// cleanups: the suite and the backend leave no goroutine behind.
			t.Cleanup(func() { goleak.VerifyNone(t) })
			conformance.Run(t, newFixture(t, c.opts))
		})
	}
}

// noSuchTopicNamed reports a never-posted topic as a *seam.NoSuchTopicError naming
// it, instead of memory's empty page.
func noSuchTopicNamed(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	return noSuchTopic(args.Topic)(inner, ctx, args, r, err)
}
