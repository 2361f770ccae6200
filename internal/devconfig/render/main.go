// Command render writes a dev server's configuration, for scripts/devserver.sh:
//
//	go run ./internal/devconfig/render prosody DIR DATA PORT   # DIR/prosody.cfg.lua
//	go run ./internal/devconfig/render ejabberd DIR DATA PORT  # DIR/etc/ejabberd.yml, DIR/etc/ejabberdctl.cfg
//
// Bad arguments exit 2.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/parley-go/parley-xmpp/internal/devconfig"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: render prosody|ejabberd DIR DATA PORT")
	}
	port, err := strconv.Atoi(args[3])
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("PORT %q is not a port", args[3])
	}
	s := devconfig.Dev(args[1], args[2], port)
	switch args[0] {
	case "prosody":
		cfg, err := devconfig.Prosody(s)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(s.Dir, "prosody.cfg.lua"), cfg, 0o644)
	case "ejabberd":
		yml, ctl, err := devconfig.Ejabberd(s)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.Dir, "etc", "ejabberd.yml"), yml, 0o640); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(s.Dir, "etc", "ejabberdctl.cfg"), ctl, 0o644)
	default:
		return fmt.Errorf("unknown server %q (prosody or ejabberd)", args[0])
	}
}
