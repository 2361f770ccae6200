package runtime

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type payload struct{ Content string }

// protoactor's dead-letter lines, at debug level, name the message's type, never
// its content (a post's text, say).
func TestDeadLetterLogsOmitPayloads(t *testing.T) {
	var buf lockedBuf
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet(log) }))
	defer sys.Shutdown()
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	_ = sys.Root.StopFuture(pid).Wait()
	sys.Root.Send(pid, &payload{Content: "dead-letter-secret-content"})
	assert.Eventually(t, func() bool { return bytes.Contains([]byte(buf.String()), []byte("[DeadLetter]")) }, 5*time.Second, 10*time.Millisecond)
	out := buf.String()
	assert.NotContains(t, out, "dead-letter-secret-content")
	assert.Contains(t, out, "message_type=*runtime.payload")
}
