package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCmd writes a man page per command into DIR (make man: man/).
func (a *app) manCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages (parley-xmpp.1, parley-xmpp-post.1, ...) into DIR",
		Hidden: true,
		Example: `  parley-xmpp man man/ && man -l man/parley-xmpp.1
  make man`,
		Args: argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("%w: DIR %s: %v", errUsage, dir, err)
			}
			if err := checkWritable("DIR", dir+"/parley-xmpp.1"); err != nil {
				return err
			}
			root.DisableAutoGenTag = true // the same pages from the same source
			header := &doc.GenManHeader{Title: "PARLEY-XMPP", Section: "1", Source: "parley-xmpp", Manual: "parley-xmpp manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("writing the man pages into %s: %w", dir, err)
			}
			return nil
		},
	}
}
