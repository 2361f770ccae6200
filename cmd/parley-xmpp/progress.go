package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// progress shows how long work goes (joining many rooms, a long backlog): on a
// terminal, one status line rewritten in place; elsewhere, plain lines.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	open bool         // a status line is on screen
	log  *slog.Logger // JSON mode: lines are Info records
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if j, ok := w.(jsonStderr); ok {
		p.log = j.log
		return p
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) line(s string) {
	if p.log != nil {
		p.log.Info(s)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		p.open = true
		return
	}
	fmt.Fprintln(p.w, s)
}

// done ends the status line, if any.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}
