package app

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestHashKey(t *testing.T) {
	var out bytes.Buffer
	err := Run(context.Background(), []string{"hash-key"}, Env{Stdin: strings.NewReader("test\n"), Stdout: &out, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" {
		t.Fatalf("hash-key printed %q", got)
	}
	if err := Run(context.Background(), []string{"hash-key"}, Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}); err == nil {
		t.Fatal("an empty key must be an error")
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"check-config", "../../envoy/tollgate.yaml"}, Env{Stdout: &out, Stderr: &errOut}); err != nil {
		t.Fatalf("the bundled example config is invalid: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "ok") {
		t.Fatalf("check-config printed %q", out.String())
	}
}

func TestCheckConfigListsEveryProblem(t *testing.T) {
	bad := `
server: {drain_timeout: -1s, gc_percent: -5}
log: {format: xml}
store: {type: postgres}
consumers:
  - name: team-a
    keys: []
    tier: platinum
  - name: team-a
    keys: ["sha256:nothex"]
processing: {unknown_paths: maybe}
providers:
  - {name: openai, path_prefix: v1, api_key_env: NO_SUCH_VAR_FOR_TOLLGATE}
token_ratelimit:
  - rule_name: r1
    rule_items:
      - limit_by_consumer: ""
        limit_keys: [{key: team-a, token_per_minute: -5}]
quota:
  admin_consumer: nobody
  default: {tokens: 10, period: fortnight}
`
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	err := Run(context.Background(), []string{"check-config", path}, Env{Stdout: io.Discard, Stderr: &errOut, Getenv: func(string) string { return "" }})
	if err == nil {
		t.Fatal("check-config accepted a bad config")
	}
	for _, want := range []string{
		"server.drain_timeout", "server.gc_percent", "log.format", "store.type", "consumers[0].tier", "consumers[1].name",
		"consumers[1].keys[0]", "processing.unknown_paths", "providers[0].path_prefix", "providers[0].api_key_env",
		"token_ratelimit[0].rule_items[0].limit_keys[0]", "quota.admin_consumer", "quota.default.period",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("check-config output misses %s:\n%s", want, errOut.String())
		}
	}
}

func TestUnknownFieldIsAnError(t *testing.T) {
	_, err := ParseConfig(strings.NewReader("consumers: []\nquotta: {}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "quotta") {
		t.Fatalf("a misspelled section must be refused, got %v", err)
	}
}

// TestServeAndDrain runs the whole binary in-process on the example config:
// the gRPC health service answers SERVING, the admin port answers, and a
// cancelled context stops it cleanly.
func TestServeAndDrain(t *testing.T) {
	ctx := context.Background()
	s := startServe(t, "../../envoy/tollgate.yaml", nil)
	a := [2]string{s.grpcAddr, s.adminAddr}

	conn, err := grpc.NewClient(a[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	defer hcancel()
	hr, err := healthpb.NewHealthClient(conn).Check(hctx, &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", hr, err)
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/v1/quota": 401} {
		resp, err := http.Get("http://" + a[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+a[1]+"/v1/quota/team-a", nil)
	req.Header.Set("Authorization", "Bearer admin-demo-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"remaining": 5000000`) {
		t.Errorf("GET /v1/quota/team-a = %d %s", resp.StatusCode, body)
	}

	if err := s.stop(); err != nil {
		t.Fatalf("serve returned %v after cancel", err)
	}
}

// serving is tollgate run in-process by a test, as `tollgate serve` runs.
type serving struct {
	grpcAddr, adminAddr string
	// stop cancels serve's context and returns what Run returned; it may
	// be called more than once (the test's cleanup calls it too).
	stop func() error
}

// startServe runs `tollgate serve --config path` on loopback ports, with
// getenv for the environment (nil: the process's), and returns once it
// listens.
func startServe(t *testing.T, path string, getenv func(string) string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--config", path, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"},
			Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv, Hooks: Hooks{Listening: func(g, a string) { addrs <- [2]string{g, a} }}})
	}()
	s := &serving{stop: sync.OnceValue(func() error { cancel(); return <-done })}
	t.Cleanup(func() { _ = s.stop() })
	select {
	case a := <-addrs:
		s.grpcAddr, s.adminAddr = a[0], a[1]
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	}
	return s
}

// FuzzParseConfig: any input is either a config or a clear error, never a
// panic.
func FuzzParseConfig(f *testing.F) {
	if seed, err := os.ReadFile("../../envoy/tollgate.yaml"); err == nil {
		f.Add(string(seed))
	}
	f.Add("consumers: [{name: a, keys: [k]}]\ntoken_ratelimit: [{rule_name: r, global_threshold: {token_per_minute: 5}}]\n")
	f.Add("quota: {default: {tokens: 1, period: week, timezone: Europe/Paris}}\n")
	f.Add("store: {type: redis, redis: {addrs: ['127.0.0.1:1']}}\n")
	f.Fuzz(func(t *testing.T, src string) {
		c, err := ParseConfig(strings.NewReader(src), func(string) string { return "" })
		if err == nil && c == nil {
			t.Fatal("no config and no error")
		}
	})
}

// TestServeSetsGCPercent: serve applies server.gc_percent (default 50)
// unless the GOGC environment variable is set, which wins.
func TestServeSetsGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	dir := t.TempDir()
	for _, c := range []struct {
		config, gogc string
		want         int
	}{
		{"consumers: []\n", "", 50},
		{"server: {gc_percent: 120}\nconsumers: []\n", "", 120},
		{"server: {gc_percent: 120}\nconsumers: []\n", "100", 100},
	} {
		path := filepath.Join(dir, "tollgate.yaml")
		if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
			t.Fatal(err)
		}
		debug.SetGCPercent(100)
		s := startServe(t, path, func(k string) string {
			if k == "GOGC" {
				return c.gogc
			}
			return ""
		})
		got := debug.SetGCPercent(100)
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%q with GOGC=%q: GC percent %d, want %d", c.config, c.gogc, got, c.want)
		}
	}
}
