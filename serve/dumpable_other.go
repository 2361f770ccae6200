//go:build !linux

package serve

// HideProcess does nothing outside Linux (see dumpable_linux.go): there exec
// sinks are trusted with whatever the engine's user may read.
func HideProcess() error { return nil }
