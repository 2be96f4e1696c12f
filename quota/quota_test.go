package quota

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/processor/usage"
)

func compile(t *testing.T, src string) *Policy {
	t.Helper()
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	p, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPeriodsAndKeys(t *testing.T) {
	p := compile(t, `
default: {tokens: 100}
consumers:
  daily: {tokens: 10, period: day, timezone: Asia/Shanghai}
  weekly: {tokens: 20, period: week}
  monthly: {tokens: 30, period: month, timezone: America/New_York}
  per-model: {tokens: 40, period: month, per_model: true}
`)
	// 2026-11-30 17:30 UTC is 2026-12-01 01:30 in Shanghai and
	// 2026-11-30 12:30 in New York; a Monday.
	now := time.Date(2026, 11, 30, 17, 30, 0, 0, time.UTC)
	tests := []struct {
		consumer, model, key string
		allotment            int64
		resetsAt             time.Time
	}{
		{"daily", "", "chat_quota:{c:daily}:2026-12-01", 10, time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC)},
		{"weekly", "", "chat_quota:{c:weekly}:2026-W49", 20, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)},
		{"monthly", "", "chat_quota:{c:monthly}:2026-11", 30, time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)},
		{"per-model", "gpt-4o", "chat_quota:{c:per-model}:m:gpt-4o:2026-11", 40, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"someone-else", "", "chat_quota:{c:someone-else}", 100, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.consumer, func(t *testing.T) {
			b := p.Balance(tt.consumer, tt.model, now)
			if b == nil {
				t.Fatal("no balance")
			}
			if b.Key != tt.key || b.Allotment != tt.allotment {
				t.Errorf("balance = %s (%d), want %s (%d)", b.Key, b.Allotment, tt.key, tt.allotment)
			}
			info, _ := p.Describe(tt.consumer, now)
			if tt.resetsAt.IsZero() {
				if info.ResetsAt != nil || b.TTL != 0 {
					t.Errorf("period none must not reset or expire: %v %v", info.ResetsAt, b.TTL)
				}
				return
			}
			if !info.ResetsAt.Equal(tt.resetsAt) {
				t.Errorf("resets at %v, want %v", info.ResetsAt.UTC(), tt.resetsAt)
			}
			if want := tt.resetsAt.Sub(now) + retention; b.TTL != want {
				t.Errorf("TTL = %v, want %v", b.TTL, want)
			}
		})
	}
}

func TestNoQuotaWithoutDefault(t *testing.T) {
	p := compile(t, `consumers: {a: {tokens: 1}}`)
	if b := p.Balance("b", "", time.Now()); b != nil {
		t.Fatalf("consumer without entry or default got a balance: %+v", b)
	}
	var nilPolicy *Policy
	if nilPolicy.Enabled() || nilPolicy.Balance("a", "", time.Now()) != nil {
		t.Fatal("a nil policy has no quotas")
	}
}

func TestWeights(t *testing.T) {
	p := compile(t, `
weights: {output: 4, cached_input: 0.1}
default: {tokens: 1}
consumers:
  own: {tokens: 1, weights: {input: 2}}
`)
	u := usage.Usage{Input: 1000, CachedInput: 500, Output: 100, Reasoning: 50}
	// 500 plain input + 500×0.1 cached + 100×4 output (reasoning priced as output).
	if got := p.Balance("x", "", time.Now()).Weights.Cost(u); got != 500+50+400 {
		t.Errorf("default weights cost = %d, want 950", got)
	}
	// An allotment's own weights replace the quota-wide ones entirely.
	if got := p.Balance("own", "", time.Now()).Weights.Cost(u); got != 2*1000+100 {
		t.Errorf("own weights cost = %d, want 2100", got)
	}
}

func TestValidate(t *testing.T) {
	c := Config{
		AdminPath:      "quota",
		RedisKeyPrefix: "a{b}",
		Default:        &Allotment{Tokens: -1, Period: "year", Timezone: "Mars/Olympus"},
	}
	neg := -1.0
	c.Consumers = map[string]Allotment{"x": {Weights: &Weights{Output: &neg}}}
	err := c.Validate("quota")
	for _, want := range []string{
		"quota.admin_path: must start with /",
		"quota.redis_key_prefix: must not contain braces",
		"quota.default.tokens: must be >= 0",
		`quota.default.period: "year" is not one of`,
		"quota.default.timezone:",
		"quota.consumers.x.weights.output: must be >= 0",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors miss %q:\n%v", want, err)
		}
	}
}

func TestMatchAdmin(t *testing.T) {
	p := compile(t, `admin_consumer: admin`)
	isAPI := func(s string) bool { return s == "/v1/chat/completions" || s == "/v1/messages" }
	for path, want := range map[string]AdminOp{
		"/v1/chat/completions/quota":         Query,
		"/v1/chat/completions/quota/refresh": Refresh,
		"/v1/chat/completions/quota/delta":   Delta,
		"/v1/messages/quota/delta":           Delta,
		"/v1/chat/completions":               NoAdminOp,
		"/quota":                             NoAdminOp,
		"/v1/other/quota":                    NoAdminOp,
		"/v1/chat/completions/quota/other":   NoAdminOp,
	} {
		if got := p.MatchAdmin(path, isAPI); got != want {
			t.Errorf("MatchAdmin(%s) = %v, want %v", path, got, want)
		}
	}
	if compile(t, `{}`).MatchAdmin("/v1/chat/completions/quota", isAPI) != NoAdminOp {
		t.Error("without admin_consumer there are no in-band admin paths")
	}
}

// TestHigressAdminReplies checks the in-band endpoints answer as Higress's
// ai-quota does: same status codes, same bodies, byte for byte.
func TestHigressAdminReplies(t *testing.T) {
	p := compile(t, `
admin_consumer: admin
default: {tokens: 0}
consumers: {}
`)
	store := ledger.NewMemory(ledger.MemoryOptions{})
	ctx := context.Background()
	now := time.Now()
	call := func(op AdminOp, caller, query, form string) Reply {
		q, _ := url.ParseQuery(query)
		return p.HandleAdmin(ctx, store, op, caller, limiter.Request{Path: "/v1/chat/completions/quota"}, q, []byte(form), now)
	}
	steps := []struct {
		name                string
		op                  AdminOp
		caller, query, form string
		want                Reply
	}{
		{"query of an untouched consumer is 0", Query, "admin", "consumer=team-a", "",
			Reply{200, "application/json", `{"consumer":"team-a","quota":0}`}},
		{"refresh sets", Refresh, "admin", "", "consumer=team-a&quota=1000",
			Reply{200, "text/plain", "refresh quota successful"}},
		{"delta adds", Delta, "admin", "", "consumer=team-a&value=100",
			Reply{200, "text/plain", "delta quota successful"}},
		{"negative delta subtracts", Delta, "admin", "", "consumer=team-a&value=-50",
			Reply{200, "text/plain", "delta quota successful"}},
		{"query reads the balance", Query, "admin", "consumer=team-a", "",
			Reply{200, "application/json", `{"consumer":"team-a","quota":1050}`}},
		{"non-admin caller", Query, "team-a", "consumer=team-a", "",
			Reply{403, "text/plain", "Request denied by ai quota check. Unauthorized admin consumer."}},
		{"query without consumer", Query, "admin", "", "",
			Reply{403, "text/plain", "Request denied by ai quota check. consumer can't be empty."}},
		{"refresh with non-integer quota", Refresh, "admin", "", "consumer=team-a&quota=lots",
			Reply{403, "text/plain", "Request denied by ai quota check. consumer can't be empty and quota must be integer."}},
		{"delta without consumer", Delta, "admin", "", "value=1",
			Reply{403, "text/plain", "Request denied by ai quota check. consumer can't be empty and value must be integer."}},
	}
	for _, s := range steps {
		if got := call(s.op, s.caller, s.query, s.form); got != s.want {
			t.Errorf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	if got := call(Query, "admin", "consumer=team-a", "").Status; got != http.StatusOK {
		t.Fatal(got)
	}
}
