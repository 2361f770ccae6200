// Command parley-xmpp runs Parley topics over XMPP Multi-User Chat rooms.
//
//	parley-xmpp demo                 a short live demo against the configured server
//	parley-xmpp post TOPIC TEXT      post TEXT (or stdin with "-") and print its id
//	parley-xmpp fetch TOPIC          print a page of TOPIC as JSON lines
//	parley-xmpp tail TOPIC           print TOPIC's new messages as they arrive
//
// The server comes from PARLEY_XMPP_SERVICE, _DOMAIN, _MUC, _USER, _PASS and
// _NICK (defaults: the local development server). Exit status: 0 on success, 1
// when the operation failed, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type command struct {
	name, usage, summary string
	run                  func(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error
}

var commands = []command{
	{"demo", "demo [-topics N] [-messages N]", "a short live demo: topics joined, posts, subscribers, a catch-up, a long-poll", runDemo},
	{"post", "post TOPIC TEXT|-", "post TEXT (\"-\": read stdin) and print the message id", runPost},
	{"fetch", "fetch [-since C] [-limit N] [-block D] TOPIC", "print a page of TOPIC as JSON lines, then the next cursor", runFetch},
	{"tail", "tail TOPIC", "print TOPIC's new messages as JSON lines until interrupted", runTail},
}

// errUsage marks a usage error (exit status 2).
var errUsage = errors.New("usage")

func run(args []string, in io.Reader, out, errOut io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(errOut)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:], in, out, errOut)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(errOut, "parley-xmpp %s: %v\nusage: parley-xmpp %s\n", c.name, err, c.usage)
			return 2
		default:
			fmt.Fprintf(errOut, "parley-xmpp %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(errOut, "parley-xmpp: unknown command %q\n", args[0])
	usage(errOut)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "parley-xmpp: Parley topics as XMPP Multi-User Chat rooms")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-46s %s\n", c.usage, c.summary)
	}
	fmt.Fprintln(w, "\nThe server: PARLEY_XMPP_SERVICE, _DOMAIN, _MUC, _USER, _PASS, _NICK (default: the local dev server).")
}
