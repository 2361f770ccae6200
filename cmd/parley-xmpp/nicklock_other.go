//go:build !unix

package main

import "context"

// lockNick: no lock here; posts under one nick may fail on each other.
func lockNick(context.Context, string, string) (func(), error) { return func() {}, nil }
