package alerts

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const exampleYAML = `
alerts:
  webhook: {url: "https://hooks.example/tollgate", headers: {Authorization: "env:HOOK_TOKEN"}, timeout: 5s}
  quota_thresholds: [0.8, 1.0]
  anomaly: {multiple: 3, short: 5m, baseline: 1h, min_tokens: 10000, cooldown: 1h}
  consumers: {team-a: {quota_thresholds: [0.5, 0.9, 1.0], anomaly: {multiple: 5}}, quiet: {quota_thresholds: []}}
  tiers: {free: {quota_thresholds: [1.0]}}
`

func decode(t *testing.T, src string) Config {
	t.Helper()
	var file struct {
		Alerts Config `yaml:"alerts"`
	}
	if err := yaml.Unmarshal([]byte(src), &file); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return file.Alerts
}

func TestExampleConfig(t *testing.T) {
	c := decode(t, exampleYAML)
	if err := c.Validate("alerts"); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Webhook.Timeout != 5*time.Second || c.Anomaly.Short != 5*time.Minute || c.Anomaly.MinTokens != 10000 {
		t.Errorf("decoded %+v", c)
	}
	if q := c.Consumers["quiet"].QuotaThresholds; q == nil || len(q) != 0 {
		t.Errorf("quota_thresholds: [] decoded as %#v; want an empty, non-nil list (off)", q)
	}
	a, err := New(Options{Config: c, Getenv: func(string) string { return "Bearer x" }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer a.Close(t.Context())
	p := a.policy.Load()
	for _, tt := range []struct {
		consumer, tier string
		thresholds     []float64
		multiple       float64
	}{
		{"team-a", "free", []float64{0.5, 0.9, 1.0}, 5},
		{"other", "free", []float64{1.0}, 3},
		{"other", "", []float64{0.8, 1.0}, 3},
		{"quiet", "", []float64{}, 3},
	} {
		r := p.resolve(tt.consumer, tt.tier)
		if !equalFloats(r.thresholds, tt.thresholds) || r.anomaly.multiple != tt.multiple || !r.anomaly.on {
			t.Errorf("%s in %q resolves to %v ×%v, want %v ×%v", tt.consumer, tt.tier, r.thresholds, r.anomaly.multiple, tt.thresholds, tt.multiple)
		}
	}
	if r := p.resolve("x", ""); r.anomaly.bucket != int64(time.Minute) || r.anomaly.warm != 60 {
		t.Errorf("5m/1h anomaly compiles to buckets of %v, warm after %d", time.Duration(r.anomaly.bucket), r.anomaly.warm)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every one must appear; none means valid
	}{
		{"zero config is off", `alerts: {}`, nil},
		{"env url", `alerts: {webhook: {url: "env:HOOK_URL"}, quota_thresholds: [1]}`, nil},
		{"thresholds without webhook", `alerts: {quota_thresholds: [0.8]}`,
			[]string{"alerts.webhook.url: must be set when alerts are configured"}},
		{"bad url", `alerts: {webhook: {url: "ftp://x/secret-path"}}`,
			[]string{"alerts.webhook.url: scheme must be http or https"}},
		{"url without host", `alerts: {webhook: {url: "https:///p"}}`,
			[]string{"alerts.webhook.url: must name a host"}},
		{"empty env", `alerts: {webhook: {url: "env:", headers: {X-A: "env:"}}}`,
			[]string{"alerts.webhook.url: env: needs a variable name", "alerts.webhook.headers.X-A: env: needs a variable name"}},
		{"bad headers", "alerts: {webhook: {url: \"https://h\", headers: {\"Bad Name\": v, X-B: \"a\\r\\nb\"}}}",
			[]string{"alerts.webhook.headers.Bad Name: not a valid header name", "alerts.webhook.headers.X-B: must not contain CR, LF or NUL"}},
		{"retry and timeout", `alerts: {webhook: {url: "https://h", timeout: -1s, retry: {attempts: 50, backoff: 2s, max_backoff: 1s}}}`,
			[]string{"alerts.webhook.timeout: must be >= 0", "alerts.webhook.retry.attempts: must be between 0 and 20", "alerts.webhook.retry.max_backoff: must be >= retry.backoff"}},
		{"thresholds", `alerts: {webhook: {url: "https://h"}, quota_thresholds: [0.8, 0, 1.5, 0.8]}`,
			[]string{"alerts.quota_thresholds[1]: 0 must be > 0 and <= 1", "alerts.quota_thresholds[2]: 1.5 must be > 0 and <= 1", "alerts.quota_thresholds[3]: 0.8 is listed twice"}},
		{"anomaly", `alerts: {webhook: {url: "https://h"}, anomaly: {multiple: 1, min_tokens: -1, cooldown: -1m, short: 2h}}`,
			[]string{"alerts.anomaly.multiple: must be > 1", "alerts.anomaly.min_tokens: must be >= 0", "alerts.anomaly.cooldown: must be >= 0", "alerts.anomaly: baseline: 1h0m0s must be longer than short (2h0m0s)"}},
		{"overrides", `alerts:
  webhook: {url: "https://h"}
  anomaly: {multiple: 3}
  consumers:
    team-a: {quota_thresholds: [2], anomaly: {multiple: 0.5}}
    "bad{name}": {}
    team-b: {anomaly: {short: 30m}}
  tiers:
    free: {quota_thresholds: [-1], anomaly: {baseline: 1m}}
    slow: {anomaly: {short: 1m, baseline: 20m}}`,
			[]string{
				"alerts.consumers.team-a.quota_thresholds[0]: 2 must be > 0 and <= 1",
				"alerts.consumers.team-a.anomaly.multiple: must be > 1",
				`alerts.consumers.bad{name}: name "bad{name}" must be non-empty, without braces`,
				"alerts.tiers.free.quota_thresholds[0]: -1 must be > 0 and <= 1",
				"alerts.tiers.free.anomaly: baseline: 1m0s must be longer than short (5m0s)",
				"alerts.consumers.team-b.anomaly: over tier slow: baseline: 20m0s must be longer than short (30m0s)",
			}},
		{"sizes", `alerts: {webhook: {url: "https://h"}, queue_size: -1, workers: -1, max_consumers: -1, idle_after: -1h}`,
			[]string{"alerts.queue_size: must be >= 0", "alerts.workers: must be >= 0", "alerts.max_consumers: must be >= 0", "alerts.idle_after: must be >= 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := decode(t, tt.yaml)
			err := c.Validate("alerts")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed; want %q", tt.want)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
			if n := len(strings.Split(msg, "\n")); n != len(tt.want) {
				t.Errorf("%d problems reported, want %d:\n%s", n, len(tt.want), msg)
			}
			if strings.Contains(msg, "secret-path") {
				t.Errorf("error repeats the URL: %s", msg)
			}
		})
	}
}

func TestNewReadsEnvironment(t *testing.T) {
	env := map[string]string{"BAD_URL": "gopher://h/tok-1234", "CRLF": "a\r\nb"}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no webhook", Config{}, "alerts.webhook.url: must be set"},
		{"url unset", Config{Webhook: Webhook{URL: "env:HOOK_URL"}}, "alerts.webhook.url: environment variable HOOK_URL is empty"},
		{"url bad", Config{Webhook: Webhook{URL: "env:BAD_URL"}}, "alerts.webhook.url: environment variable BAD_URL: scheme must be http or https"},
		{"header unset", Config{Webhook: Webhook{URL: "https://h", Headers: map[string]string{"Authorization": "env:HOOK_TOKEN"}}},
			"alerts.webhook.headers.Authorization: environment variable HOOK_TOKEN is empty"},
		{"header crlf", Config{Webhook: Webhook{URL: "https://h", Headers: map[string]string{"X-A": "env:CRLF"}}},
			"alerts.webhook.headers.X-A: environment variable CRLF holds CR, LF or NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{Config: tt.cfg, Getenv: func(k string) string { return env[k] }})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "tok-1234") {
				t.Errorf("error repeats a secret: %v", err)
			}
		})
	}
}

func TestUpdateSwapsRules(t *testing.T) {
	h := newHookServer(t)
	a := newAlerts(t, Options{Config: Config{Webhook: Webhook{URL: h.URL}, QuotaThresholds: []float64{1}}})
	half := Observation{Consumer: "c", HasQuota: true, QuotaAllotment: 100, QuotaRemaining: 40, QuotaPeriod: "p"}
	a.Observe(half)
	if err := a.Update(Config{Webhook: Webhook{URL: h.URL}, QuotaThresholds: []float64{0.5, 1}}); err != nil {
		t.Fatal(err)
	}
	a.Observe(half)
	if err := a.Update(Config{Webhook: Webhook{URL: h.URL}, QuotaThresholds: []float64{2}}); err == nil {
		t.Error("Update took an invalid config")
	}
	drain(t, a)
	if got := h.delivered(); len(got) != 1 || got[0].Threshold != 0.5 {
		t.Errorf("after adding 0.5: %+v, want one notification at 0.5", got)
	}
}
