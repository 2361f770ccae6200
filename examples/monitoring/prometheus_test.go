package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/chaos"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// freePort is a loopback port nobody listens on (yet).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// start runs a command until the test ends (SIGTERM, then kill).
func start(t *testing.T, logf string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	pass := xmpptest.Env().Accounts[0][1] // the dev servers' account, on both
	cmd.Env = append(os.Environ(), "PARLEY_XMPP_SERVICE=xmpp://"+prosodyAddr, "PARLEY_XMPP_PASS="+pass, "PARLEY_XMPP_EJABBERD_PASS="+pass)
	log, err := os.Create(logf)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = log.Close()
	})
	return cmd
}

// getJSON decodes the JSON answer of a GET.
func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query asks Prometheus's HTTP API for an instant vector.
func query(ctx context.Context, base, q string) ([]sample, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []sample `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(ctx, base+"/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

// rulesHealth is every rule's health (and last error) and state, by name.
func rulesHealth(ctx context.Context, base string) (map[string][2]string, error) {
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					State     string `json:"state"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := getJSON(ctx, base+"/api/v1/rules", &r); err != nil {
		return nil, err
	}
	out := map[string][2]string{}
	for _, g := range r.Data.Groups {
		for _, rl := range g.Rules {
			out[rl.Name] = [2]string{rl.Health + " " + rl.LastError, rl.State}
		}
	}
	return out, nil
}

// requireBoth fails (CI) or skips unless both dev servers are up.
func requireBoth(t *testing.T) {
	t.Helper()
	for _, addr := range []string{prosodyAddr, ejabberdAddr} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			continue
		}
		if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
			t.Fatalf("this test needs both dev servers; %s: %v", addr, err)
		}
		t.Skipf("this test needs both dev servers (scripts/devserver.sh start); %s: %v", addr, err)
	}
}

// The dev servers (scripts/devserver.sh).
const prosodyAddr, ejabberdAddr = "127.0.0.1:5222", "127.0.0.1:15222"

// A real Prometheus scrapes a real serve with two servers (Prosody as
// backend_config, ejabberd as servers.ejabberd, reached through a fault
// proxy; a relay from one to the other) and evaluates alerts.yml: each
// server's link-up series is its own, the series of the routes exist before
// any delivery, every rule evaluates without error and none fires on a
// healthy engine; when ejabberd's link is held down, its series leaves online
// while Prosody's stays, and ParleyXMPPLinkDown goes pending for ejabberd
// alone; when the engine stops, ParleyXMPPDown goes pending.
func TestPrometheusScrapesServeAndEvaluatesTheRules(t *testing.T) {
	requireBoth(t)
	s := xmpptest.Env()
	prom := xmpptest.RequireTool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	bin := filepath.Join(dir, "parley-xmpp")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/parley-xmpp")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	proxy, err := chaos.NewProxy(ejabberdAddr)
	require.NoError(t, err)
	defer proxy.Close()

	metricsAddr, promAddr := freePort(t), freePort(t)
	n := time.Now().UnixNano() % 1000000
	serveCfg := filepath.Join(dir, "serve.yaml")
	require.NoError(t, os.WriteFile(serveCfg, []byte(fmt.Sprintf(`backend_config:
  service: "xmpp://%s"
  domain: %q
  muc_service: %q
  username: %q
servers:
  ejabberd:
    backend_config:
      service: "xmpp://%s"
      domain: %q
      muc_service: %q
      username: %q
serve:
  state_dir: %q
  metrics_listen: %q
  routes:
    - name: to-stdout
      topics: [prom-%d]
      sink:
        stdout: {}
    - name: relay
      topics: [prom-%d]
      sink:
        relay: {server: ejabberd, topic: prom-%d-relayed}
`, prosodyAddr, s.Domain, s.MUC, s.Accounts[0][0], proxy.Addr(), s.Domain, s.MUC, s.Accounts[0][0],
		filepath.Join(dir, "state"), metricsAddr, n, n, n)), 0o600))
	rulesPath, err := filepath.Abs("alerts.yml")
	require.NoError(t, err)
	promCfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: parley-xmpp
    static_configs:
      - targets: [%q]
`, rulesPath, metricsAddr)), 0o600))

	engine := start(t, filepath.Join(dir, "serve.log"), bin, "--config", serveCfg, "serve")
	start(t, filepath.Join(dir, "prometheus.log"), prom, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	base := "http://" + promAddr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	logs := func() string {
		a, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
		return "serve:\n" + string(a) + "\nprometheus:\n" + string(b)
	}
	// byServer is the query's value per server label.
	byServer := func(q string) (map[string]string, error) {
		res, err := query(ctx, base, q)
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, r := range res {
			if r.Metric["job"] != "parley-xmpp" || r.Metric["instance"] != metricsAddr {
				return nil, fmt.Errorf("a series of another target: %v", r.Metric)
			}
			v, _ := r.Value[1].(string)
			out[r.Metric["server"]] = v
		}
		return out, nil
	}

	// The link-down rule's expression, without its comparison: 1 while a
	// server's link is up, one series per server.
	linkUp := `max by (job, instance, server) (parley_xmpp_connection_state{state="online"})`
	var last string
	require.Eventually(t, func() bool {
		got, err := byServer(linkUp)
		last = fmt.Sprint(got, err)
		return err == nil && len(got) == 2 && got["default"] == "1" && got["ejabberd"] == "1"
	}, 30*time.Second, 250*time.Millisecond, "each server's link-up series: last %s\n%s", last, logs)

	// The routes' failure and backlog series exist before any delivery, at
	// 0; the build is labelled.
	for q, want := range map[string]int{
		`parley_xmpp_sink_failures_total{route=~"to-stdout|relay"} == 0`: 2,
		`parley_xmpp_route_backlog == 0`:                                 2,
		`parley_xmpp_build_info{version!="", revision!=""} == 1`:         1,
	} {
		res, err := query(ctx, base, q)
		require.NoError(t, err)
		require.Len(t, res, want, "%s: %v", q, res)
	}

	// Every rule evaluated, none failing, none firing on a healthy engine.
	require.Eventually(t, func() bool {
		h, err := rulesHealth(ctx, base)
		last = fmt.Sprint(h, err)
		if err != nil || len(h) == 0 {
			return false
		}
		for _, v := range h {
			if v[0] != "ok " || v[1] != "inactive" {
				return false
			}
		}
		return true
	}, 10*time.Second, 250*time.Millisecond, "rules: %s", last)

	// ejabberd's link held down (every connection cut, redials hang in the
	// login): its series leaves online, Prosody's stays; the link-down rule
	// goes pending for ejabberd alone.
	require.NoError(t, proxy.Blackhole())
	require.NoError(t, proxy.KillAll())
	require.Eventually(t, func() bool {
		got, err := byServer(linkUp)
		last = fmt.Sprint(got, err)
		return err == nil && len(got) == 2 && got["default"] == "1" && got["ejabberd"] == "0"
	}, 20*time.Second, 250*time.Millisecond, "ejabberd's link down, Prosody's up: last %s\n%s", last, logs)
	require.Eventually(t, func() bool {
		res, err := query(ctx, base, `ALERTS{alertname="ParleyXMPPLinkDown"}`)
		last = fmt.Sprint(res, err)
		return err == nil && len(res) == 1 && res[0].Metric["server"] == "ejabberd" && res[0].Metric["alertstate"] == "pending"
	}, 10*time.Second, 250*time.Millisecond, "ParleyXMPPLinkDown pending for ejabberd alone: %s", last)

	// The engine stops: the scrape fails and ParleyXMPPDown goes pending
	// (it fires after its 5 minutes).
	require.NoError(t, engine.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		h, err := rulesHealth(ctx, base)
		last = fmt.Sprint(h, err)
		return err == nil && h["ParleyXMPPDown"][1] == "pending"
	}, 15*time.Second, 250*time.Millisecond, "ParleyXMPPDown pending once serve stopped: %s\n%s", last, logs)
	if strings.Contains(logs(), "panic") {
		t.Errorf("a panic in the logs:\n%s", logs())
	}
}
