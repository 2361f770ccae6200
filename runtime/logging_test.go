package runtime

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type payload struct{ Content string }

// protoactor's dead-letter lines, at debug level, name the message's type, never
// its content (a post's text, say).
func TestDeadLetterLogsOmitPayloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path) // an *os.File: safe for the actor system's goroutines
	require.NoError(t, err)
	defer f.Close()
	log := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet(log) }))
	defer sys.Shutdown()
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	_ = sys.Root.StopFuture(pid).Wait()
	sys.Root.Send(pid, &payload{Content: "dead-letter-secret-content"})
	read := func() string { data, _ := os.ReadFile(path); return string(data) }
	assert.Eventually(t, func() bool { return strings.Contains(read(), "[DeadLetter]") }, 5*time.Second, 10*time.Millisecond)
	out := read()
	assert.NotContains(t, out, "dead-letter-secret-content")
	assert.Contains(t, out, "message_type=*runtime.payload")
}
