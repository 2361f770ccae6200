package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
)

// actorLogger is the node's logger as protoactor's: its records carry
// lib=protoactor, its chatter (Info: every topology update) goes to Debug,
// and what it logs as a WARN or an ERROR when a member dies or leaves (kill
// -9, a crash, a partition) goes to Info or Debug, with lib_severity saying
// what the library said (not lib_level: a grep for level=ERROR would find
// it). A normal failover logs no ERROR (issue 19); the cluster's own lines
// say what it did ("taken over", "lock lost"). Every other WARN and ERROR of
// the library keeps its level.
func actorLogger(l *slog.Logger) *slog.Logger {
	return slog.New(actorHandler{h: l.Handler()}).With(slog.String("lib", "protoactor"))
}

type actorHandler struct{ h slog.Handler }

func (a actorHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	if lv < slog.LevelWarn {
		return a.h.Enabled(ctx, slog.LevelDebug)
	}
	return a.h.Enabled(ctx, lv) // a demoted record is checked again in Handle
}

func (a actorHandler) Handle(ctx context.Context, r slog.Record) error {
	lv := actorLevel(r)
	if !a.h.Enabled(ctx, lv) {
		return nil
	}
	out := slog.NewRecord(r.Time, lv, r.Message, r.PC)
	r.Attrs(func(at slog.Attr) bool {
		out.AddAttrs(at)
		return true
	})
	if lv != r.Level && r.Level >= slog.LevelWarn {
		out.AddAttrs(slog.String("lib_severity", r.Level.String()))
	}
	return a.h.Handle(ctx, out)
}

func (a actorHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return actorHandler{a.h.WithAttrs(as)}
}

func (a actorHandler) WithGroup(n string) slog.Handler { return actorHandler{a.h.WithGroup(n)} }

// actorLevel is the level a protoactor record is logged at. The expected
// ones, each seen in a kill -9 failover (cluster/live_test.go):
//
//   - EndpointWriter lost connection (ERROR): a member's connection ended;
//     Info, once per member.
//   - EndpointWriter failed to connect / to create receive stream / to send
//     or receive the connect request (ERROR), with a gRPC Unavailable,
//     DeadlineExceeded or Canceled: the writer redialing a dead member
//     (connection refused) until it gives up; Debug.
//   - EndpointWatcher receive message for already terminated endpoint
//     (ERROR): a late message to that member; Debug.
//   - cluster.RequestFuture failed (ERROR) with future: timeout or dead
//     letter: a request to an activation on the dead member, which the
//     cluster retries (elsewhere, once the topology has changed); Debug.
//   - Request retried but failed (WARN): the retries ran out; the caller
//     reports it (touchOwned: at Debug; the next round retries); Debug.
//   - sendGossipForMember failed (WARN) with a timeout or dead letter:
//     gossip to the dead member; Debug.
//
// Anything else at WARN or ERROR (a message that can't be serialized, a
// corrupt gossip state, an etcd watch failing, a gRPC error other than those)
// keeps its level.
func actorLevel(r slog.Record) slog.Level {
	if r.Level < slog.LevelWarn {
		return slog.LevelDebug
	}
	errAttr := func() any {
		var v any
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" {
				v = a.Value.Any()
				return false
			}
			return true
		})
		return v
	}
	switch r.Message {
	case "EndpointWriter lost connection":
		return slog.LevelInfo
	case "EndpointWriter failed to connect", "EndpointWriter failed to create receive stream",
		"EndpointWriter failed to send connect request", "EndpointWriter failed to receive connect response":
		if peerGone(errAttr()) {
			return slog.LevelDebug
		}
	case "EndpointWatcher receive message for already terminated endpoint", "Request retried but failed":
		return slog.LevelDebug
	case "cluster.RequestFuture failed", "sendGossipForMember failed":
		if retriable(errAttr()) {
			return slog.LevelDebug
		}
	}
	return r.Level
}

// peerGone: a gRPC error saying the other end is not there (or stopped
// answering), as the endpoint writer reports it.
func peerGone(v any) bool {
	s := fmt.Sprint(v)
	for _, code := range []string{"code = Unavailable", "code = DeadlineExceeded", "code = Canceled"} {
		if strings.Contains(s, code) {
			return true
		}
	}
	return false
}

// retriable: a request's timeout or dead letter, which protoactor retries.
func retriable(v any) bool {
	err, ok := v.(error)
	if !ok {
		return false
	}
	for _, e := range []error{actor.ErrTimeout, actor.ErrDeadLetter, remote.ErrTimeout, remote.ErrDeadLetter} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
