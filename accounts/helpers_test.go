package accounts

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/limiter"
)

func ptr[T any](v T) *T { return &v }

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// testKeyEnv holds the encryption key in the tests' environments.
const testKeyEnv = "TOLLGATE_ACCOUNTS_KEY"

var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// Sample secrets: none may ever appear in a log line or an API answer
// (beyond the one answer that issues a consumer key).
const (
	configProviderKey = "sk-openai-config-secret-000000"
	configConsumerKey = "sk-config-ci-secret"
)

var testEnv = map[string]string{testKeyEnv: testKey, "OPENAI_KEY": configProviderKey, "CI_KEY": configConsumerKey}

// testBase is the config file of the tests: a tier, a consumer with a key
// and a provider.
func testBase() Base {
	return Base{
		Tiers:     []consumer.TierConfig{{Name: "free", Models: []string{"gpt-4o-mini"}, Limits: limiter.Limits{TokenPerMinute: ptr(int64(1000))}}},
		Consumers: []consumer.Config{{Name: "ci", Tier: "free", Keys: []string{"env:CI_KEY"}}},
		Providers: []ConfigProvider{{Name: "openai", PathPrefix: "/v1/", Header: "authorization", KeyEnvs: []string{"OPENAI_KEY"}}},
		Getenv:    env(testEnv),
	}
}

// logBuffer collects log lines from every goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// storeKind opens a store of one kind for a test.
type storeKind struct {
	name string
	open func(t *testing.T, logs *logBuffer) *Store
}

func newRedisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func openStore(t testing.TB, cfg Config, o Options, subscribe bool) *Store {
	t.Helper()
	if o.Getenv == nil {
		o.Getenv = env(testEnv)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "tollgate:"
	}
	s, err := open(context.Background(), cfg, o, subscribe)
	if err != nil {
		t.Fatalf("cannot open the accounts store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var storeKinds = []storeKind{
	{"memory", func(t *testing.T, logs *logBuffer) *Store {
		return openStore(t, Config{EncryptionKeyEnv: testKeyEnv}, Options{Logger: logs.logger()}, true)
	}},
	{"redis", func(t *testing.T, logs *logBuffer) *Store {
		srv := redistest.Start(t)
		return openStore(t, Config{EncryptionKeyEnv: testKeyEnv}, Options{Client: newRedisClient(t, srv.Addr()), Logger: logs.logger()}, true)
	}},
}

// apiClient calls the admin API in-process and keeps every answer, so a
// test can check that no secret was ever in one.
type apiClient struct {
	t       *testing.T
	h       http.Handler
	answers []string
}

func newAPIClient(t *testing.T, o APIOptions) *apiClient {
	return &apiClient{t: t, h: NewAPI(o)}
}

// do sends body (a string as is, anything else as JSON) and returns the
// status and the answer.
func (c *apiClient) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, path, r)
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	c.answers = append(c.answers, rec.Body.String())
	if rec.Code != http.StatusNoContent && rec.Header().Get("Content-Type") != "application/json" {
		c.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, rec.Header().Get("Content-Type"))
	}
	return rec.Code, rec.Body.Bytes()
}

// want sends a request and fails unless it gets status; it decodes the
// answer into out when out is not nil.
func (c *apiClient) want(status int, method, path string, body, out any) {
	c.t.Helper()
	got, data := c.do(method, path, body)
	if got != status {
		c.t.Fatalf("%s %s: status %d, want %d; answer %s", method, path, got, status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, data)
		}
	}
}

// wantError sends a request that must fail with status and an error
// message containing msg, in the API's error format.
func (c *apiClient) wantError(status int, method, path string, body any, msg string) {
	c.t.Helper()
	got, data := c.do(method, path, body)
	if got != status {
		c.t.Fatalf("%s %s: status %d, want %d; answer %s", method, path, got, status, data)
	}
	var e struct {
		Error map[string]string `json:"error"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		c.t.Fatalf("%s %s: error answer is not JSON: %s", method, path, data)
	}
	if e.Error["type"] != "invalid_request_error" || !strings.Contains(e.Error["message"], msg) {
		c.t.Fatalf("%s %s: error %v, want a message containing %q", method, path, e.Error, msg)
	}
}

// fields returns the sorted field names of a JSON object.
func fields(t *testing.T, data []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not a JSON object: %s", data)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond until it holds or the generous bound passes.
func waitFor(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func newRequest(method, path, body string) *http.Request {
	return httptest.NewRequest(method, path, strings.NewReader(body))
}
