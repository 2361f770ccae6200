// Package ctxtime holds the one wait the engine's loops share.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d, or less if ctx ends first; it says whether ctx is still
// live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
