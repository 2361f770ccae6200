//go:build !unix

package serve

import "os/exec"

// killGroupOnCancel leaves exec.CommandContext's default, killing the process
// itself: process groups are a Unix notion.
func killGroupOnCancel(*exec.Cmd) {}
