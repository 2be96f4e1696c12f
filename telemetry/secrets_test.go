package telemetry

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

// Sample credentials. providerKey and consumerKey do not look like keys:
// only the lists given in Options can catch them.
var (
	providerKey = "prov-7f3a9c2e1b4d5a6c"
	consumerKey = "team-a-demo-key"
	lookalikes  = []string{
		"sk-proj-Q9x3LmN4pR7sT2vW8yZ1aB5cD6eF0gH3",
		"sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
		"AIzaSyD4-xY9_abcdefghijklmnopqrstuvwx12",
		"gsk_8f7e6d5c4b3a29180716253443526170",
		"Bearer eyJhbGciOiJIUzI1NiJ9abcdefghijklmnop",
		"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1O",
	}
)

// TestSecretsNeverReported feeds requests carrying credentials in every
// field a client controls and checks that none reaches /metrics, the log or
// a span, while the ordinary values around them still do.
func TestSecretsNeverReported(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, logs := newTest(t, Config{Models: []string{"*"}}, Options{
		Consumers:    consumersFunc("alice"),
		Secrets:      func() []string { return []string{providerKey} },
		IsKey:        func(s string) bool { return s == consumerKey },
		SpanExporter: exp,
	})
	secrets := append([]string{providerKey, consumerKey}, lookalikes...)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var placed []string
	for i, s := range secrets {
		reqs := []*Request{
			{Model: s},
			{Model: s + " "},
			{ResponseModel: s, Model: "gpt-4o-mini"},
			{RequestID: s},
		}
		if s != consumerKey {
			// Consumer keys are known only by their hashes: a key can be
			// recognized as a whole value, not inside a longer one.
			reqs = append(reqs,
				&Request{Model: "gpt-4o-" + s},
				&Request{RequestID: "x-" + s},
				&Request{TraceState: "vendor=" + strings.ReplaceAll(s, " ", ""), TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			)
		}
		for _, r := range reqs {
			r.ID = fmt.Sprint("tg-", i)
			r.Consumer = "alice"
			if r.Model == "" {
				r.Model = "gpt-4o-mini"
			}
			r.Provider, r.Operation, r.Status = "openai", "chat", 200
			r.Usage = usage.Usage{Input: 3, Output: 4}
			r.Start, r.FirstToken, r.End = start, start.Add(time.Millisecond), start.Add(time.Second)
			tel.RequestDone(r)
			placed = append(placed, s)
		}
		tel.QuotaRemaining(s, 1)
		tel.StoreCall(s, time.Millisecond, fmt.Errorf("cannot reach %s", s))
	}

	var spans strings.Builder
	for _, s := range exp.GetSpans() {
		fmt.Fprintln(&spans, s.Name, s.SpanContext.TraceState().String(), s.Status.Description)
		for _, kv := range s.Attributes {
			fmt.Fprintln(&spans, kv.Key, kv.Value.Emit())
		}
	}
	outputs := map[string]string{"/metrics": scrapeText(t, tel), "log": logs.String(), "spans": spans.String()}
	for name, out := range outputs {
		// The channel works: the ordinary values are there.
		if !strings.Contains(out, "gpt-4o-mini") {
			t.Fatalf("%s does not show the ordinary model name; the test would prove nothing:\n%.2000s", name, out)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) || strings.Contains(out, strings.TrimPrefix(s, "Bearer ")) {
				t.Errorf("%s contains the secret %q", name, s)
			}
		}
	}
	if !strings.Contains(outputs["log"], redacted) {
		t.Errorf("the log shows no %s placeholder for the %d requests carrying secrets", redacted, len(placed))
	}
}

// TestUsageRecordHidesLookalikes checks usage records, which leave tollgate
// for billing, drop values that look like credentials too.
func TestUsageRecordHidesLookalikes(t *testing.T) {
	for _, s := range lookalikes {
		b, err := UsageRecordJSON(&Request{ID: "tg-1", Consumer: "alice", Model: s, ResponseModel: s, RequestID: s})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), strings.TrimPrefix(s, "Bearer ")) {
			t.Errorf("usage record %s contains %q", b, s)
		}
	}
}

func TestLooksLikeCredential(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"gpt-4o", false},
		{"gpt-4o-mini-2024-07-18", false},
		{"claude-3-5-sonnet-20241022", false},
		{"meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo", false},
		{"accounts/fireworks/models/llama-v3p1-405b-instruct", false},
		{"ft:gpt-4o-mini-2024-07-18:my-org:custom-suffix:9xYzABc1", false},
		{"task-classifier-model-v2-abcdefgh", false},
		{"models/gemini-2.5-pro", false},
		{"text-embedding-3-large", false},
		{"b5e8c2a1-3f4d-4e6a-9b7c-1d2e3f4a5b6c", false}, // a request id
		{"sk-proj-Q9x3LmN4pR7sT2vW8yZ1aB5cD6eF0gH3", true},
		{"model sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx", true},
		{"AIzaSyD4-xY9_abcdefghijklmnopqrstuvwx12", true},
		{"Bearer abcdefghijklmnopqrstuvwxyz", true},
		{"x-Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1O", true},
		{"sk-short", false},
	} {
		t.Run(tc.v, func(t *testing.T) {
			if got := looksLikeCredential(tc.v); got != tc.want {
				t.Errorf("looksLikeCredential(%q) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}
