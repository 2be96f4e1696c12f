package processor

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/quota"
)

// fixture is a Server on a memory store, built from YAML fragments.
type fixture struct {
	mu     sync.Mutex // guards now
	store  *ledger.Memory
	server *Server
	envoy  *envoy
	now    time.Time
}

type fixtureConfig struct {
	Consumers  []consumer.Config     `yaml:"consumers"`
	Tiers      []consumer.TierConfig `yaml:"tiers"`
	Providers  []ProviderConfig      `yaml:"providers"`
	Processing Config                `yaml:"processing"`
	Limits     limiter.Config        `yaml:",inline"`
	Quota      quota.Config          `yaml:"quota"`
}

const baseConsumers = `
consumers:
  - {name: team-a, keys: [sk-a], models: ["gpt-4o*", "gpt-5*", "claude-*", "text-embedding-*"]}
  - {name: team-b, keys: [sk-b]}
  - {name: admin, keys: [sk-admin]}
`

func newFixture(t testing.TB, src string) *fixture {
	t.Helper()
	return newFixtureConsumers(t, baseConsumers+src)
}

// newFixtureConsumers builds a fixture whose config (consumers included)
// is all in src.
func newFixtureConsumers(t testing.TB, src string) *fixture {
	t.Helper()
	var c fixtureConfig
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OPENAI_API_KEY": "sk-provider-secret", "ANTHROPIC_API_KEY": "sk-ant-secret"}
	reg, err := consumer.NewRegistry(consumer.Options{Consumers: c.Consumers, Tiers: c.Tiers, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := limiter.Compile(c.Limits)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quota.Compile(c.Quota)
	if err != nil {
		t.Fatal(err)
	}
	providers, err := ResolveProviders("providers", c.Providers, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(PolicyOptions{Config: c.Processing, Providers: providers, Consumers: reg, Rules: rules, Quota: q.Bind(reg)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
	f.store = ledger.NewMemory(ledger.MemoryOptions{Clock: clock})
	f.server = New(Options{Store: f.store, Clock: clock}, p)
	f.envoy = startEnvoy(t, f.server)
	return f
}

func (f *fixture) totals(t *testing.T, consumer string) ledger.DayTotals {
	t.Helper()
	rows, err := f.store.Totals(context.Background(), ledger.TotalsQuery{Consumer: consumer, From: "2026-11-26", To: "2026-11-26"})
	if err != nil {
		t.Fatal(err)
	}
	var sum ledger.DayTotals
	for _, r := range rows {
		sum.Requests += r.Requests
		sum.Input += r.Input
		sum.Output += r.Output
		sum.CachedInput += r.CachedInput
		sum.Reasoning += r.Reasoning
		sum.Total += r.Total
		sum.Estimated += r.Estimated
	}
	return sum
}

// decodeError reads an OpenAI-style error body.
func decodeError(t *testing.T, body []byte) (msg, typ, code string) {
	t.Helper()
	var v struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("error body is not JSON: %s", body)
	}
	return v.Error.Message, v.Error.Type, v.Error.Code
}

func chatHeaders(key string, extra ...string) []string {
	h := []string{":method", "POST", ":path", "/v1/chat/completions", ":authority", "api.openai.com",
		"content-type", "application/json", "x-request-id", "req-1"}
	if key != "" {
		h = append(h, "authorization", "Bearer "+key)
	}
	return append(h, extra...)
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, "")
	tests := []struct {
		name    string
		headers []string
		status  int
		code    string
	}{
		{"missing key", chatHeaders(""), 401, "invalid_api_key"},
		{"unknown key", chatHeaders("sk-nope"), 401, "invalid_api_key"},
		{"lower-case bearer with unknown key", append(chatHeaders(""), "authorization", "bearer sk-x"), 401, "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := f.envoy.open()
			ir := immediateOf(t, x.send(requestHeaders(false, tt.headers...)))
			if int(ir.GetStatus().GetCode()) != tt.status {
				t.Fatalf("status %d, want %d", ir.GetStatus().GetCode(), tt.status)
			}
			_, _, code := decodeError(t, ir.GetBody())
			if code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
			set, _ := mutationHeaders(ir.GetHeaders())
			if !strings.HasPrefix(set["www-authenticate"], "Bearer") {
				t.Errorf("401 without www-authenticate: %v", set)
			}
		})
	}
	if got := f.totals(t, "team-a").Requests; got != 0 {
		t.Errorf("refused requests were counted: %d", got)
	}
}

func TestKeySourcesAndHeaderHygiene(t *testing.T) {
	f := newFixture(t, `
processing: {key_query_param: key}
providers:
  - {name: openai, path_prefix: /v1/, header: authorization, api_key_env: OPENAI_API_KEY}
`)
	tests := []struct {
		name       string
		headers    []string
		removed    string // the credential header that must not go upstream
		wantPath   string
		wantRemove []string
	}{
		{"bearer", chatHeaders("sk-a"), "", "", nil},
		{"x-api-key", append(chatHeaders(""), "x-api-key", "sk-a"), "x-api-key", "", nil},
		{"api-key", append(chatHeaders(""), "api-key", "sk-a"), "api-key", "", nil},
		{"x-goog-api-key", append(chatHeaders(""), "x-goog-api-key", "sk-a"), "x-goog-api-key", "", nil},
		{"query parameter", []string{":method", "POST", ":path", "/v1/chat/completions?key=sk-a&x=1", ":authority", "h"}, "", "/v1/chat/completions?x=1", nil},
		{"spoofed consumer headers are removed", append(chatHeaders("sk-a"), "x-mse-consumer", "admin", "x-tollgate-consumer", "admin", "x-tollgate-anything", "1"),
			"", "", []string{"x-mse-consumer", "x-tollgate-consumer", "x-tollgate-anything"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := f.envoy.open()
			resp := x.send(requestHeaders(false, tt.headers...))
			if resp.GetImmediateResponse() != nil {
				t.Fatalf("refused: %s", resp.GetImmediateResponse().GetBody())
			}
			set, removed := mutationHeaders(resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
			if set["x-tollgate-consumer"] != "team-a" || set["x-mse-consumer"] != "team-a" {
				t.Errorf("consumer headers = %v", set)
			}
			// The provider key replaces whatever credential came in.
			if set["authorization"] != "Bearer sk-provider-secret" {
				t.Errorf("authorization upstream = %q", set["authorization"])
			}
			if tt.removed != "" && !contains(removed, tt.removed) {
				t.Errorf("client credential %s not removed: removed=%v", tt.removed, removed)
			}
			if tt.wantPath != "" && set[":path"] != tt.wantPath {
				t.Errorf(":path = %q, want %q", set[":path"], tt.wantPath)
			}
			for _, h := range tt.wantRemove {
				if !contains(removed, h) {
					t.Errorf("%s not removed: %v", h, removed)
				}
				// A removed spoofed header must not be re-added with the
				// client's value.
				if h != "x-tollgate-consumer" && h != "x-mse-consumer" {
					if _, ok := set[h]; ok {
						t.Errorf("%s set again", h)
					}
				}
			}
			x.cancel()
		})
	}
}

func TestRequestBodyRefusals(t *testing.T) {
	f := newFixture(t, "")
	tests := []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"malformed JSON", "sk-a", `{"model": "gpt-4o", "messages": [`, 400, "invalid_request"},
		{"wrong type", "sk-a", `{"model": 4, "messages": []}`, 400, "invalid_request"},
		{"model not allowed", "sk-a", `{"model": "o3-pro", "messages": [{"role":"user","content":"hi"}]}`, 403, "model_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := f.envoy.open()
			x.send(requestHeaders(false, chatHeaders(tt.key)...))
			ir := immediateOf(t, x.send(requestBody(tt.body)))
			if int(ir.GetStatus().GetCode()) != tt.status {
				t.Fatalf("status %d, want %d: %s", ir.GetStatus().GetCode(), tt.status, ir.GetBody())
			}
			if _, _, code := decodeError(t, ir.GetBody()); code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
		})
	}
}

// advance moves the fixture's clock.
func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}
