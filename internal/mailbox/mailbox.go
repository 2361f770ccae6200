// Package mailbox is a protoactor mailbox that allocates nothing per message once
// its queue has grown to its working size. protoactor's default mailbox
// allocates a closure each time it schedules itself, which it does whenever a
// message finds it idle: on the fan-out path, where a room hands each message to
// a thousand subscribers that keep draining their mailboxes, that is an
// allocation per subscriber for a good share of the messages. This one binds its
// run function once. Every actor of the runtime uses it.
//
// Semantics are protoactor's: system messages first, user messages in order,
// suspension while a failure is handled, a yield to the scheduler after the
// dispatcher's throughput, and a panic escalated as the actor's failure.
package mailbox

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

const (
	idle int32 = iota
	running
)

// Unbounded returns a producer of mailboxes whose queues grow as needed (the
// sender bounds what it queues: see the room's flow control).
func Unbounded() actor.MailboxProducer {
	return func() actor.Mailbox { return &mailbox{} }
}

type mailbox struct {
	user, system queue
	scheduled    atomic.Int32
	suspended    atomic.Bool
	invoker      actor.MessageInvoker
	dispatcher   actor.Dispatcher
	process      func() // m.processMessages, bound once
}

func (m *mailbox) PostUserMessage(msg any) {
	m.user.push(msg)
	m.schedule()
}

func (m *mailbox) PostSystemMessage(msg any) {
	m.system.push(msg)
	m.schedule()
}

func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
	m.process = m.processMessages
}

func (m *mailbox) Start() {}

func (m *mailbox) UserMessageCount() int { return int(m.user.length.Load()) }

func (m *mailbox) schedule() {
	if m.scheduled.CompareAndSwap(idle, running) {
		m.dispatcher.Schedule(m.process)
	}
}

func (m *mailbox) processMessages() {
	for {
		m.run()
		m.scheduled.Store(idle)
		// A message posted after run saw the queues empty, and before the store
		// above, found the mailbox running and didn't schedule it: look again.
		pending := m.system.length.Load() > 0 || !m.suspended.Load() && m.user.length.Load() > 0
		if !pending || !m.scheduled.CompareAndSwap(idle, running) {
			return
		}
	}
}

func (m *mailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	throughput := m.dispatcher.Throughput()
	for i := 0; ; i++ {
		if i > throughput {
			i = 0
			runtime.Gosched()
		}
		if msg = m.system.pop(); msg != nil {
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if m.suspended.Load() {
			return
		}
		if msg = m.user.pop(); msg == nil {
			return
		}
		m.invoker.InvokeUserMessage(msg)
	}
}

// queue is a FIFO of many producers and one consumer: a ring that doubles when
// full and is let go when it drains after growing past keep, so a burst doesn't
// pin its memory.
type queue struct {
	mu     sync.Mutex
	ring   []any
	head   int // index of the oldest
	n      int // how many are queued
	length atomic.Int64
}

// keep is the most capacity a drained queue keeps: a busy actor's queue drains
// and refills all the time and must keep its ring (letting go of rings past 64
// slots costs a subscriber 0.04 allocations a message in the fan-out
// benchmark); a subscriber's queue is bounded by the room's flow control
// (SubscriberBuffer, 1024 by default), so this is what it can hold on to, 16 KiB.
const keep = 1024

func (q *queue) push(v any) {
	q.mu.Lock()
	if q.n == len(q.ring) {
		grown := make([]any, max(4, 2*len(q.ring)))
		copied := copy(grown, q.ring[q.head:])
		copy(grown[copied:], q.ring[:q.head])
		q.ring, q.head = grown, 0
	}
	q.ring[(q.head+q.n)%len(q.ring)] = v
	q.n++
	q.length.Add(1)
	q.mu.Unlock()
}

// pop returns the oldest, or nil when empty.
func (q *queue) pop() any {
	if q.length.Load() == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil
	}
	v := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.length.Add(-1)
	if q.n == 0 && len(q.ring) > keep {
		q.ring, q.head = nil, 0
	}
	return v
}
