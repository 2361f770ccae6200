package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

func TestUsageAndExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 2, run(nil, nil, &out, &errOut), "no command is a usage error")
	assert.Contains(t, errOut.String(), "commands:")
	errOut.Reset()
	assert.Equal(t, 0, run([]string{"help"}, nil, &out, &errOut))
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"frobnicate"}, nil, &out, &errOut))
	assert.Contains(t, errOut.String(), `unknown command "frobnicate"`)
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"post", "only-topic"}, nil, &out, &errOut))
	assert.Contains(t, errOut.String(), "usage: parley-xmpp post")
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"demo", "-topics", "0"}, nil, &out, &errOut))
}

// The README's main job, run as a user runs it, against the local server.
func TestDemoRunsClean(t *testing.T) {
	xmpptest.Require(t)
	var out, errOut bytes.Buffer
	code := run([]string{"demo", "-topics", "2", "-messages", "3"}, nil, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "ok: 6 messages on 2 topics, none lost, duplicated or reordered")
}

func TestPostThenFetch(t *testing.T) {
	xmpptest.Require(t)
	topic := "cli-" + strings.ToLower(t.Name())
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"post", topic, "-"}, strings.NewReader("from stdin\n"), &out, &errOut), errOut.String())
	id := strings.TrimSpace(out.String())
	require.NotEmpty(t, id)

	out.Reset()
	require.Equal(t, 0, run([]string{"fetch", "-limit", "1", topic}, nil, &out, &errOut), errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2, out.String())
	var m jsonMessage
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m))
	assert.Equal(t, id, m.ID)
	assert.Equal(t, "from stdin", m.Content)
	assert.Contains(t, lines[1], `"next_cursor":"`+id+`"`)
}
