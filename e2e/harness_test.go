package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate-ai/tollgate/e2e/envoyemu"
	"github.com/tollgate-ai/tollgate/e2e/fakellm"
	"github.com/tollgate-ai/tollgate/internal/app"
	"github.com/tollgate-ai/tollgate/quota"
)

// The keys and tokens of the test config (see baseConfig).
const (
	keyTeamA   = "sk-e2e-team-a"
	keyTeamB   = "sk-e2e-team-b"
	keyAdmin   = "sk-e2e-admin"
	adminToken = "e2e-admin-token"
)

// logBuffer collects one component's log lines; it is printed only when the
// test fails.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newLog returns a log that is printed, under name, when t fails. It is
// registered before the component it serves, so that it is printed after
// that component stopped (cleanups run last-in first-out) and holds its
// last lines.
func newLog(t *testing.T, name string) *logBuffer {
	l := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("==== %s log ====\n%s", name, l.String())
		}
	})
	return l
}

// baseConfig is a tollgate config with three consumers — team-a (limited to
// some models), team-b and admin — the admin API token, the given store
// section and more sections (limits, quota).
func baseConfig(store, more string) string {
	return fmt.Sprintf(`server: {drain_timeout: 30s}
log: {format: text, level: info}
store: %s
consumers:
  - name: team-a
    keys: [%q]
    models: ["gpt-4o*", "gpt-4.1*", "claude-*", "text-embedding-3-*"]
  - name: team-b
    keys: [%q]
  - name: admin
    keys: [%q]
admin: {token: %q}
%s
`, store, keyTeamA, keyTeamB, keyAdmin, adminToken, more)
}

const memoryStore = "{type: memory}"

// redisStore is the store section for Redis at addrs failing as onError,
// spooling to dir. The read timeout is generous: a command that Redis is
// slow to answer because the machine is busy (200 concurrent requests under
// the race detector) would otherwise count as Redis being down. A killed
// Redis refuses connections at once, whatever the timeouts.
func redisStore(addrs []string, onError, dir string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf("{type: redis, redis: {addrs: [%s], dial_timeout: 1s, read_timeout: 3s}, on_error: %s, spool_dir: %q}",
		strings.Join(q, ", "), onError, dir)
}

// writeConfig writes cfg to a file in dir, checking it parses first so a
// broken test config fails here, with its problems, not at start-up.
func writeConfig(t *testing.T, dir, cfg string) string {
	t.Helper()
	return writeConfigEnv(t, dir, cfg, nil)
}

// tollgate is one tollgate running in-process, as `tollgate serve` does.
type tollgate struct {
	grpcAddr, adminAddr string
	// Stop cancels tollgate's context, waits until it has drained and
	// stopped, and returns what Run returned. It may be called more than
	// once.
	Stop func() error
}

func startTollgate(t *testing.T, name, cfg string) *tollgate {
	t.Helper()
	tg, _ := startTollgateEnv(t, name, cfg, nil)
	return tg
}

// writeConfigEnv is writeConfig for a config that reads environment
// variables (provider keys): it checks the config with env.
func writeConfigEnv(t *testing.T, dir, cfg string, env map[string]string) string {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	if _, err := app.ParseConfig(strings.NewReader(cfg), getenv); err != nil {
		t.Fatalf("test config is invalid: %v\n%s", err, cfg)
	}
	path := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTollgateEnv is startTollgate with environment variables for the
// config to read, returning tollgate's log as well so that a test can read
// what tollgate wrote.
func startTollgateEnv(t *testing.T, name, cfg string, env map[string]string) (*tollgate, *logBuffer) {
	t.Helper()
	log := newLog(t, name)
	path := writeConfigEnv(t, t.TempDir(), cfg, env)
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ grpc, admin string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"serve", "--config", path, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, app.Env{
			Stdout: log, Stderr: log,
			Getenv: func(k string) string { return env[k] },
			Hooks:  app.Hooks{Listening: func(g, a string) { ready <- addrs{g, a} }},
		})
	}()
	tg := &tollgate{}
	select {
	case a := <-ready:
		tg.grpcAddr, tg.adminAddr = a.grpc, a.admin
	case err := <-done:
		cancel()
		t.Fatalf("%s did not start: %v", name, err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("%s did not start within 30s", name)
	}
	tg.Stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := tg.Stop(); err != nil {
			t.Errorf("%s stopped with an error: %v", name, err)
		}
	})
	return tg, log
}

// upstream is the fake LLM provider behind the emulated Envoy.
type upstream struct {
	*fakellm.Server
	URL *url.URL
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	log := newLog(t, "fake LLM")
	llm, err := fakellm.New(fakellm.Options{Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(llm)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{Server: llm, URL: u}
}

// sums adds up what the fake provider reported for the requests that
// tollgate forwarded for consumer (it tells the provider with
// x-tollgate-consumer): the usage of the successful ones and the number of
// requests.
func (u *upstream) sums(consumer string, keep func(fakellm.Request) bool) (total fakellm.Usage, requests int64) {
	for _, r := range u.Requests() {
		if r.Header.Get("x-tollgate-consumer") != consumer || (keep != nil && !keep(r)) {
			continue
		}
		requests++
		rep, ok := u.Reported(r.ID)
		if !ok || rep.Status != http.StatusOK {
			continue
		}
		total.Input += rep.Usage.Input
		total.Output += rep.Usage.Output
		total.CachedInput += rep.Usage.CachedInput
		total.CacheCreation += rep.Usage.CacheCreation
		total.Reasoning += rep.Usage.Reasoning
	}
	return total, requests
}

var (
	envoyConfigOnce sync.Once
	envoyConfig     *envoyemu.Config
	envoyConfigErr  error
)

// shippedEnvoyConfig is the ext_proc filter and routes of the envoy.yaml
// tollgate ships.
func shippedEnvoyConfig(t *testing.T) *envoyemu.Config {
	t.Helper()
	envoyConfigOnce.Do(func() { envoyConfig, envoyConfigErr = envoyemu.LoadConfig("../envoy/envoy.yaml") })
	if envoyConfigErr != nil {
		t.Fatalf("cannot load envoy/envoy.yaml: %v", envoyConfigErr)
	}
	return envoyConfig
}

// envoy is the emulated Envoy in front of one tollgate.
type envoy struct {
	URL string

	mu      sync.Mutex
	records []envoyemu.Record
}

func startEnvoy(t *testing.T, name, extProcAddr string, up *upstream) *envoy {
	t.Helper()
	return startEnvoyWith(t, name, extProcAddr, up, 0)
}

// startEnvoyWith is startEnvoy with the filter's message_timeout replaced
// when messageTimeout is not zero.
func startEnvoyWith(t *testing.T, name, extProcAddr string, up *upstream, messageTimeout time.Duration) *envoy {
	t.Helper()
	cfg := shippedEnvoyConfig(t)
	filter := cfg.Filter
	if messageTimeout != 0 {
		filter = proto.Clone(filter).(*extprocv3.ExternalProcessor)
		filter.MessageTimeout = durationpb.New(messageTimeout)
		filter.MaxMessageTimeout = durationpb.New(messageTimeout)
	}
	return runEnvoy(t, name, envoyemu.Options{
		Filter:          filter,
		ExtProcAddr:     extProcAddr,
		Upstream:        up.URL,
		Routes:          cfg.Routes,
		AccessLogFormat: cfg.AccessLogFormat,
	})
}

// runEnvoy serves an emulated Envoy with options o, logging to a log
// named name and recording each finished request.
func runEnvoy(t *testing.T, name string, o envoyemu.Options) *envoy {
	t.Helper()
	e := &envoy{}
	o.Logger = slog.New(slog.NewTextHandler(newLog(t, name), nil))
	o.OnComplete = func(r envoyemu.Record) {
		e.mu.Lock()
		e.records = append(e.records, r)
		e.mu.Unlock()
	}
	proxy, err := envoyemu.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(func() {
		srv.Close()
		_ = proxy.Close()
	})
	e.URL = srv.URL
	return e
}

// Records returns the access log records of the requests finished so far.
func (e *envoy) Records() []envoyemu.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]envoyemu.Record(nil), e.records...)
}

// stack is one whole chain: SDK → emulated Envoy → fake LLM, with tollgate
// answering the emulator's ext_proc streams.
type stack struct {
	llm      *upstream
	tollgate *tollgate
	envoy    *envoy
}

// newStack starts a fake LLM, tollgate with cfg, and an emulated Envoy.
func newStack(t *testing.T, cfg string) *stack {
	t.Helper()
	s := &stack{llm: startUpstream(t)}
	s.tollgate = startTollgate(t, "tollgate", cfg)
	s.envoy = startEnvoy(t, "envoy", s.tollgate.grpcAddr, s.llm)
	return s
}

// adminGet calls tollgate's admin API and decodes its JSON answer into v.
func adminGet(t *testing.T, adminAddr, path string, v any) error {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+adminAddr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot call the admin API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("cannot read the admin API's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// committed is what tollgate's admin API says consumer used, over the days
// around today (so a test running across midnight UTC still adds up).
func committed(t *testing.T, adminAddr, consumer string) (quota.UsageReport, error) {
	t.Helper()
	now := time.Now().UTC()
	q := url.Values{
		"consumer": {consumer},
		"from":     {now.AddDate(0, 0, -1).Format(time.DateOnly)},
		"to":       {now.AddDate(0, 0, 1).Format(time.DateOnly)},
	}
	var rep quota.UsageReport
	err := adminGet(t, adminAddr, "/v1/usage?"+q.Encode(), &rep)
	return rep, err
}

// totals are token totals in the shape both sides can be compared in.
type totals struct {
	Requests, Input, Output, CachedInput, Reasoning, Estimated int64
}

func (x totals) String() string {
	return fmt.Sprintf("requests=%d input=%d output=%d cached=%d reasoning=%d estimated=%d",
		x.Requests, x.Input, x.Output, x.CachedInput, x.Reasoning, x.Estimated)
}

func committedTotals(t *testing.T, adminAddr, consumer string) (totals, error) {
	rep, err := committed(t, adminAddr, consumer)
	if err != nil {
		return totals{}, err
	}
	c := rep.Total
	return totals{Requests: c.Requests, Input: c.Input, Output: c.Output, CachedInput: c.CachedInput, Reasoning: c.Reasoning, Estimated: c.Estimated}, nil
}

func (u *upstream) totals(consumer string) totals { return u.totalsWhere(consumer, nil) }

// totalsWhere is totals over the requests keep accepts.
func (u *upstream) totalsWhere(consumer string, keep func(fakellm.Request) bool) totals {
	sum, n := u.sums(consumer, keep)
	return totals{Requests: n, Input: sum.Input, Output: sum.Output, CachedInput: sum.CachedInput, Reasoning: sum.Reasoning}
}

// settleWait bounds how long a test waits for usage to be committed: a
// stream cut by the client settles when tollgate sees its ext_proc stream
// end, a moment after the client gave up, and a spool replays with a
// back-off of up to 5 s.
const settleWait = 15 * time.Second

// eventually retries check until it returns nil or settleWait has passed,
// and fails the test with its last error.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(settleWait)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectTotals waits until tollgate's committed totals for consumer are
// want.
func expectTotals(t *testing.T, adminAddr, consumer string, want totals) {
	t.Helper()
	eventually(t, "committed usage of "+consumer, func() error {
		got, err := committedTotals(t, adminAddr, consumer)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("tollgate committed %v, want %v", got, want)
		}
		return nil
	})
}

// checkAgainstUpstream waits until what tollgate committed for consumer
// equals what the fake provider reported for it, request for request, and
// that nothing was estimated.
func (s *stack) checkAgainstUpstream(t *testing.T, consumer string) {
	t.Helper()
	expectTotals(t, s.tollgate.adminAddr, consumer, s.llm.totals(consumer))
}
