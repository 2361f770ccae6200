//go:build !unix

package serve

// lockStateDir: no advisory lock here; keep one serve per state dir.
func lockStateDir(string) (func(), error) { return func() {}, nil }
