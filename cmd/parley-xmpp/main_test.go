package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/serve"
)

// runCLI runs the command in-process and returns its exit status and output.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	code, _, _ := runCLI(t, "", "help")
	assert.Equal(t, 0, code)
	code, _, errOut := runCLI(t, "", "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `unknown command "frobnicate"`)
	code, _, errOut = runCLI(t, "", "fetch")
	assert.Equal(t, 2, code, errOut)
	assert.Contains(t, errOut, "fetch wants 1 arguments")
	code, _, errOut = runCLI(t, "", "fetch", "--limit", "many", "t")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--limit", "the error names the flag")
	code, _, _ = runCLI(t, "", "demo", "--topics", "0")
	assert.Equal(t, 2, code)
	code, _, errOut = runCLI(t, "", "bench", "--only", "nope")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--only nope")
	code, _, errOut = runCLI(t, "", "bench", "--scale", "0")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--scale")
	code, _, errOut = runCLI(t, "", "serve")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--config")
	code, _, errOut = runCLI(t, "", "fetch", "--format", "xml", "t")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--format")
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(p, []byte("backend_config:\n  sevice: x\n"), 0o600))
	code, _, errOut := runCLI(t, "", "--config", p, "room", "general")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "backend_config.sevice")
}

func TestRoomPrintsTheMapping(t *testing.T) {
	code, out, _ := runCLI(t, "", "room", "general", "Team Chat")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "general\tgeneral@")
	assert.Contains(t, out, "Team Chat\t~team%20~chat@")
}

func topicFor(t *testing.T) string {
	return "cli-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + fmt.Sprint(time.Now().UnixNano()%100000)
}

func TestPostFetchTail(t *testing.T) {
	xmpptest.Require(t)
	topic := topicFor(t)
	code, out, errOut := runCLI(t, "from stdin\n", "post", topic)
	require.Equal(t, 0, code, errOut)
	first := strings.TrimSpace(out)
	require.NotEmpty(t, first)
	code, out, errOut = runCLI(t, "", "post", topic, "second")
	require.Equal(t, 0, code, errOut)
	second := strings.TrimSpace(out)

	code, out, errOut = runCLI(t, "", "fetch", "--limit", "1", topic)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1, "one line per message, nothing else: %s", out)
	var m serve.Message
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m))
	assert.Equal(t, second, m.ID)
	assert.Equal(t, "second", m.Content)
	assert.Equal(t, "next cursor: "+second+"\n", errOut, "the next cursor goes to standard error")

	// --trailer: the old last line; --cursor-file: the cursor in a file.
	cursorFile := filepath.Join(t.TempDir(), "cursor")
	code, out, errOut = runCLI(t, "", "fetch", "--limit", "1", "--trailer", "--cursor-file", cursorFile, topic)
	require.Equal(t, 0, code, errOut)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	assert.Equal(t, `{"next_cursor":"`+second+`"}`, lines[1])
	assert.Empty(t, errOut, "with --cursor-file, nothing on standard error")
	saved, err := os.ReadFile(cursorFile)
	require.NoError(t, err)
	assert.Equal(t, second+"\n", string(saved))

	code, out, errOut = runCLI(t, "", "fetch", "--from-start", "--format", "table", topic)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "from stdin")
	assert.Contains(t, out, "next cursor: "+second)

	// tail from the start, with a state file; stop it once both are printed.
	state := filepath.Join(t.TempDir(), "cursors.json")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var buf syncBuffer
	done := make(chan int, 1)
	go func() { done <- runCtx(ctx, &buf, "tail", "--from-start", "--state", state, topic) }()
	require.Eventually(t, func() bool { return strings.Count(buf.String(), "\n") >= 2 }, 10*time.Second, 20*time.Millisecond)
	cancel()
	<-done
	ids := []string{}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m serve.Message
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		ids = append(ids, m.ID)
	}
	assert.Equal(t, []string{first, second}, ids)
	saved, err = os.ReadFile(state)
	require.NoError(t, err)
	assert.Contains(t, string(saved), second, "the state file holds the last cursor printed")

	// A new message; tail resumes from the state file: only the new one.
	code, out, _ = runCLI(t, "", "post", topic, "third")
	require.Equal(t, 0, code)
	third := strings.TrimSpace(out)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	var buf2 syncBuffer
	go func() { done <- runCtx(ctx2, &buf2, "tail", "--state", state, topic) }()
	require.Eventually(t, func() bool { return strings.Contains(buf2.String(), third) }, 10*time.Second, 20*time.Millisecond)
	cancel2()
	<-done
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(buf2.String()), "\n")+1, buf2.String())
}

// The README's main job, run as a user runs it, against the local server.
func TestDemoRunsClean(t *testing.T) {
	xmpptest.Require(t)
	code, out, errOut := runCLI(t, "", "demo", "--topics", "2", "--duration", "4s")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "ok: nothing lost, duplicated or reordered")
	assert.Contains(t, out, "total")
}

// The bench command prints a table with both clients' figures (the bench
// package's own tests cover the workloads; this one, the command around them).
func TestBenchPrintsATable(t *testing.T) {
	xmpptest.Require(t)
	code, out, errOut := runCLI(t, "", "bench", "--scale", "0.01", "--only", "post-sequential,fan-out")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "| workload | runtime | bare go-xmpp | ratio |")
	assert.Contains(t, out, "(1) post → reflection, sequential")
	assert.Contains(t, out, "(4) in-process fan-out")
	assert.NotContains(t, out, "(5)")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// runCtx runs the command with a context of the test's (tail runs until it ends).
func runCtx(ctx context.Context, out *syncBuffer, args ...string) int {
	a := &app{in: strings.NewReader(""), out: out, errOut: &syncBuffer{}}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(out)
	if err := root.ExecuteContext(ctx); err != nil {
		return 1
	}
	return 0
}
