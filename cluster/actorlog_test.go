package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What protoactor logged at WARN and ERROR in a kill -9 failover
// (TestKill9MidStream, issue 19: 14 to 35 ERROR lines a run): each is
// expected when a member dies, and none stays an ERROR or a WARN. The same
// messages with other causes, and the library's other errors, keep their
// level.
func TestActorLoggerDemotesAFailoversExpectedErrors(t *testing.T) {
	refused := errors.New(`rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:37987: connect: connection refused"`)
	eof := errors.New("rpc error: code = Unavailable desc = error reading from server: EOF")
	pid := actor.NewPID("127.0.0.1:37987", "partition-activator/out/t1$s")
	failover := []struct {
		level slog.Level
		msg   string
		attrs []any
		want  slog.Level
	}{
		{slog.LevelError, "EndpointWriter lost connection", []any{"address", "127.0.0.1:37987", "error", eof}, slog.LevelInfo},
		{slog.LevelError, "EndpointWriter failed to create receive stream", []any{"address", "127.0.0.1:37987", "error", refused}, slog.LevelDebug},
		{slog.LevelError, "EndpointWriter failed to connect", []any{"address", "127.0.0.1:37987", "error", refused, "retry", 0}, slog.LevelDebug},
		{slog.LevelError, "cluster.RequestFuture failed", []any{"error", actor.ErrTimeout, "pid", pid}, slog.LevelDebug},
		{slog.LevelError, "cluster.RequestFuture failed", []any{"error", actor.ErrDeadLetter, "pid", pid}, slog.LevelDebug},
		{slog.LevelWarn, "Request retried but failed", []any{"identity", "out/t1", "kind", "parley-route-topic"}, slog.LevelDebug},
		{slog.LevelWarn, "sendGossipForMember failed", []any{"MemberId", "c@x", "error", actor.ErrTimeout}, slog.LevelDebug},
		{slog.LevelInfo, "Updating topology", nil, slog.LevelDebug},
	}
	kept := []struct {
		level slog.Level
		msg   string
		attrs []any
	}{
		{slog.LevelError, "EndpointWriter failed to connect", []any{"error", errors.New("rpc error: code = Unauthenticated desc = bad certificate")}},
		{slog.LevelError, "cluster.RequestFuture failed", []any{"error", errors.New("marshal: bad message")}},
		{slog.LevelError, "EndpointWriter failed to serialize message", []any{"error", errors.New("no serializer")}},
		{slog.LevelWarn, "sendGossipForMember failed", []any{"error", errors.New("odd")}},
		{slog.LevelError, "Failure watching service.", nil},
	}
	var buf bytes.Buffer
	log := actorLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	read := func() map[string]any {
		t.Helper()
		var rec map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &rec), "%q", buf.String())
		buf.Reset()
		return rec
	}
	for _, c := range failover {
		log.Log(t.Context(), c.level, c.msg, c.attrs...)
		rec := read()
		assert.Equal(t, c.want.String(), rec["level"], "%s", c.msg)
		assert.Equal(t, "protoactor", rec["lib"])
		if c.level >= slog.LevelWarn {
			assert.Equal(t, c.level.String(), rec["lib_severity"], "a demoted record says what the library said: %s", c.msg)
		}
	}
	for _, c := range kept {
		log.Log(t.Context(), c.level, c.msg, c.attrs...)
		rec := read()
		assert.Equal(t, c.level.String(), rec["level"], "%s keeps its level", c.msg)
		assert.NotContains(t, rec, "lib_severity")
	}

	// At the node's usual levels (warn, info), a failover's lines are
	// filtered out or Info; the library's chatter stays out.
	for _, lv := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		buf.Reset()
		log := actorLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: lv})))
		for _, c := range failover {
			log.Log(t.Context(), c.level, c.msg, c.attrs...)
		}
		assert.NotContains(t, buf.String(), "level=ERROR")
		assert.NotContains(t, buf.String(), "level=WARN")
		assert.NotContains(t, buf.String(), "Updating topology")
		if lv == slog.LevelInfo {
			assert.Equal(t, 1, strings.Count(buf.String(), "\n"), "only the lost connection, at Info: %s", buf.String())
		}
	}
}
