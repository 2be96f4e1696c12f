package telemetry

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // every message expected, in any order
	}{
		{"zero value is valid", Config{}, nil},
		{"full", Config{Models: []string{"gpt-4o", "claude-*"}, MaxModels: 10, MaxConsumers: 10, RequestLog: "debug",
			Buckets: Buckets{Phase: []float64{0.001, 0.01}}}, nil},
		{"every problem at once", Config{
			Models:       []string{"gpt-4o", "", "[a-"},
			MaxModels:    -1,
			MaxConsumers: 1 << 30,
			RequestLog:   "verbose",
			Buckets:      Buckets{Tokens: []float64{1, 1}, Store: []float64{-1}},
		}, []string{
			"telemetry.models[1]: must not be empty",
			`telemetry.models[2]: "[a-" is not a valid glob`,
			"telemetry.max_models: must be between 0 (default) and 100000",
			"telemetry.max_consumers: must be between 0 (default) and 100000",
			`telemetry.request_log: "verbose" is not debug, info or off`,
			"telemetry.buckets.tokens: boundaries must be strictly ascending (1 after 1)",
			"telemetry.buckets.store: boundary -1 must be >= 0",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("telemetry")
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			got := strings.Split(err.Error(), "\n")
			for _, w := range tc.want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(got), len(tc.want), err)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
models: ["gpt-4o*", "claude-*"]
max_models: 20
max_consumers: 50
service_name: gateway
request_log: "off"
buckets:
  time_to_first_token: [0.1, 0.5, 1]
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate("telemetry"); err != nil {
		t.Fatal(err)
	}
	d := c.withDefaults()
	if d.ServiceName != "gateway" || d.MaxModels != 20 || d.MaxConsumers != 50 || d.RequestLog != "off" ||
		!slices.Equal(d.Buckets.TimeToFirstToken, []float64{0.1, 0.5, 1}) || !slices.Equal(d.Buckets.Tokens, defaultTokenBuckets) {
		t.Errorf("decoded config with defaults = %+v", d)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New(context.Background(), Config{RequestLog: "loud"}, Options{Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "telemetry.request_log") {
		t.Fatalf("New with an invalid config: %v", err)
	}
}

// TestRequestLogLevel checks the one line per request follows request_log.
func TestRequestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  string
	}{{"", `"level":"INFO"`}, {"debug", `"level":"DEBUG"`}, {"off", ""}} {
		t.Run(tc.level, func(t *testing.T) {
			tel, logs := newTest(t, Config{RequestLog: tc.level}, Options{})
			tel.RequestDone(&Request{ID: "tg-1", Consumer: "alice", Model: "gpt-4o", Decision: QuotaExhausted})
			out := logs.String()
			if tc.want == "" {
				if out != "" {
					t.Fatalf("request_log off still logged: %s", out)
				}
				return
			}
			for _, w := range []string{tc.want, `"msg":"request done"`, `"id":"tg-1"`, `"consumer":"alice"`, `"model":"gpt-4o"`, `"decision":"quota_exhausted"`, `"input_tokens":0`} {
				if !strings.Contains(out, w) {
					t.Errorf("log line lacks %s: %s", w, out)
				}
			}
		})
	}
}

// TestBucketsReachPastAlertThresholds checks the default boundaries go
// beyond the thresholds the alert rules compare quantiles with: past the
// last finite boundary histogram_quantile returns that boundary, and the
// alert could never fire.
func TestBucketsReachPastAlertThresholds(t *testing.T) {
	defaults := map[string][]float64{
		"tollgate_extproc_phase_duration_seconds":   defaultPhaseBuckets,
		"tollgate_store_duration_seconds":           defaultStoreBuckets,
		"gen_ai_server_request_duration_seconds":    defaultDurationBuckets,
		"gen_ai_server_time_to_first_token_seconds": defaultTTFTBuckets,
	}
	re := regexp.MustCompile(`histogram_quantile\(.*?(\w+)_bucket.*\)\s*>\s*([0-9.]+)`)
	n := 0
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			for _, m := range re.FindAllStringSubmatch(r.Expr, -1) {
				n++
				b, ok := defaults[m[1]]
				if !ok {
					t.Errorf("%s: no default buckets known for %s", r.Alert, m[1])
					continue
				}
				threshold, _ := strconv.ParseFloat(m[2], 64)
				if last := b[len(b)-1]; last <= threshold {
					t.Errorf("%s: last boundary %v of %s is not above the threshold %v", r.Alert, last, m[1], threshold)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no quantile threshold found in the rules")
	}
}
