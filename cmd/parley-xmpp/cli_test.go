package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/serve"
)

// decodeLines reads JSON lines of messages.
func decodeLines(t *testing.T, out string) []serve.Message {
	t.Helper()
	var ms []serve.Message
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var fields map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &fields), l)
		assert.Contains(t, fields, "mentions", "mentions is always there: %s", l)
		var m serve.Message
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		ms = append(ms, m)
	}
	return ms
}

// post --lines posts each line in order; post's nick is the account's
// stable nick, or --nick; fetch's lines are messages only, with mentions.
func TestPostLinesNickAndFetchLines(t *testing.T) {
	xmpptest.Require(t)
	topic := topicFor(t)
	code, out, errOut := runCLI(t, "one\n\ntwo for @bob\r\nthree", "post", "--lines", topic)
	require.Equal(t, 0, code, errOut)
	ids := strings.Fields(out)
	require.Len(t, ids, 3, "one id per non-empty line: %s", out)
	code, _, errOut = runCLI(t, "", "--nick", "cli-test-bot", "post", topic, "four")
	require.Equal(t, 0, code, errOut)

	code, out, errOut = runCLI(t, "", "fetch", "--from-start", topic)
	require.Equal(t, 0, code, errOut)
	ms := decodeLines(t, out)
	require.Len(t, ms, 4, out)
	var contents, senders []string
	for _, m := range ms {
		contents = append(contents, m.Content)
		senders = append(senders, m.Sender)
	}
	assert.Equal(t, []string{"one", "two for @bob", "three", "four"}, contents, "in order, line ends dropped")
	assert.Equal(t, ids, []string{ms[0].ID, ms[1].ID, ms[2].ID})
	c := runtime.ConfigFromEnv()
	nick := stableNick(c.Username, c.Domain)
	assert.Regexp(t, `^parley-[0-9a-f]{8}$`, nick)
	assert.Equal(t, []string{nick, nick, nick, "cli-test-bot"}, senders, "post's stable nick, then --nick")
	assert.Equal(t, []string{"bob"}, ms[1].Mentions)
	assert.Equal(t, []string{}, ms[0].Mentions)

	// The same nick on every run.
	code, _, errOut = runCLI(t, "", "post", topic, "five")
	require.Equal(t, 0, code, errOut)
	code, out, _ = runCLI(t, "", "fetch", "--limit", "1", topic)
	require.Equal(t, 0, code)
	assert.Equal(t, nick, decodeLines(t, out)[0].Sender)
}

// Posts of one user under one nick, at the same moment, take turns: none
// fails on the nick.
func TestConcurrentPostsShareTheStableNick(t *testing.T) {
	xmpptest.Require(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	topic := topicFor(t)
	const n = 4
	codes := make(chan string, n)
	for i := range n {
		go func() {
			code, _, errOut := runCLI(t, "", "post", topic, "concurrent "+string(rune('a'+i)))
			if code != 0 {
				codes <- errOut
				return
			}
			codes <- ""
		}()
	}
	for range n {
		assert.Empty(t, <-codes)
	}
	code, out, _ := runCLI(t, "", "fetch", "--from-start", topic)
	require.Equal(t, 0, code)
	assert.Len(t, decodeLines(t, out), n)
}

// tail --count N prints N messages, saves the last one's cursor, and exits 0.
func TestTailCount(t *testing.T) {
	xmpptest.Require(t)
	topic := topicFor(t)
	code, _, errOut := runCLI(t, "a\nb\nc\n", "post", "--lines", topic)
	require.Equal(t, 0, code, errOut)
	state := filepath.Join(t.TempDir(), "cursors.json")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var buf syncBuffer
	require.Equal(t, 0, runCtx(ctx, &buf, "tail", "--from-start", "--count", "2", "--state", state, topic))
	require.NoError(t, ctx.Err(), "tail stopped by itself")
	ms := decodeLines(t, buf.String())
	require.Len(t, ms, 2)
	assert.Equal(t, []string{"a", "b"}, []string{ms[0].Content, ms[1].Content})
	saved, err := os.ReadFile(state)
	require.NoError(t, err)
	assert.Contains(t, string(saved), ms[1].Cursor, "the last message printed is saved")

	// The next run resumes after it.
	var buf2 syncBuffer
	require.Equal(t, 0, runCtx(ctx, &buf2, "tail", "--count", "1", "--state", state, topic))
	ms = decodeLines(t, buf2.String())
	require.Len(t, ms, 1)
	assert.Equal(t, "c", ms[0].Content)
}

// --version prints what version prints.
func TestVersionFlag(t *testing.T) {
	code, flag, _ := runCLI(t, "", "--version")
	require.Equal(t, 0, code)
	code, cmd, _ := runCLI(t, "", "version")
	require.Equal(t, 0, code)
	assert.Equal(t, cmd, flag)
	assert.True(t, strings.HasPrefix(flag, "parley-xmpp "), flag)
}

// Every command's --help has examples.
func TestEveryCommandHasExamples(t *testing.T) {
	a := &app{}
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		n++
		assert.NotEmpty(t, c.Example, "%s has no examples", c.CommandPath())
		if c.Example != "" {
			assert.Contains(t, c.Example, "parley-xmpp ", c.CommandPath())
			for _, l := range strings.Split(c.Example, "\n") {
				assert.True(t, strings.HasPrefix(l, "  ") && strings.TrimSpace(l) != "", "%s: an example line is indented: %q", c.CommandPath(), l)
			}
		}
	}
	walk(a.root())
	assert.Greater(t, n, 15)
	code, out, _ := runCLI(t, "", "tail", "--help")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "Examples:\n  parley-xmpp tail general")
}

// The hidden man command writes a page per command; completion scripts come
// from cobra's completion command.
func TestManPagesAndCompletion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	code, _, errOut := runCLI(t, "", "man", dir)
	require.Equal(t, 0, code, errOut)
	for _, page := range []string{"parley-xmpp.1", "parley-xmpp-post.1", "parley-xmpp-fetch.1", "parley-xmpp-tail.1", "parley-xmpp-serve.1", "parley-xmpp-cluster-status.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		require.NoError(t, err, page)
		assert.Contains(t, string(b), ".TH \"PARLEY-XMPP\" \"1\"", page)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "parley-xmpp-tail.1"))
	assert.Contains(t, string(b), "EXAMPLE", "the examples are in the page")
	assert.Contains(t, string(b), "--count")
	_, err := os.Stat(filepath.Join(dir, "parley-xmpp-man.1"))
	assert.True(t, os.IsNotExist(err), "no page for the hidden man command")

	code, _, errOut = runCLI(t, "", "man", filepath.Join(dir, "parley-xmpp.1", "x"))
	assert.Equal(t, 2, code, "DIR under a file: %s", errOut)

	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errOut := runCLI(t, "", "completion", shell)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "parley-xmpp", shell)
	}
}
