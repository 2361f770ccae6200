package runtime_test

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parley-go/parley-xmpp/runtime"
)

// liveExamples run against the server of runtime.ConfigFromEnv
// (example_live_test.go).
const liveExamples = `^ExampleRuntime_(FetchRecent_resume|FetchRecent_fromTheStart|Post_identity|Subscribe_panic)$`

// TestMain skips the live examples when their server is unreachable, as
// xmpptest.Require skips a test: except under CI=true or
// PARLEY_XMPP_REQUIRE_SERVER=1, where they run, and fail. (An example can't
// skip itself.)
func TestMain(m *testing.M) {
	flag.Parse()
	addr := strings.TrimPrefix(runtime.ConfigFromEnv().Service, "xmpp://")
	if addr == "" {
		addr = strings.TrimPrefix(runtime.DefaultService, "xmpp://")
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		_ = c.Close()
	} else if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
		fmt.Fprintf(os.Stderr, "XMPP server %s unreachable (%v): the live examples fail (CI must run it: scripts/devserver.sh start)\n", addr, err)
	} else {
		skip := liveExamples
		if s := flag.Lookup("test.skip").Value.String(); s != "" {
			skip = s + "|" + liveExamples
		}
		_ = flag.Set("test.skip", skip)
		fmt.Fprintf(os.Stderr, "XMPP server %s unreachable (%v): the live examples are skipped; start one with scripts/devserver.sh start (with CI=true they fail)\n", addr, err)
	}
	os.Exit(m.Run())
}
