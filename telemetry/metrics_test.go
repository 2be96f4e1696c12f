package telemetry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

var testConsumers = []string{"alice", "bob", "carol"}

func consumersFunc(names ...string) func() []string {
	return func() []string { return names }
}

// TestTokenCountersEqualUsage checks what billing relies on: after a set of
// requests, tollgate_tokens_total per consumer, model and type equals the
// sum of the usage the requests were charged, and the GenAI token histogram
// sums agree.
func TestTokenCountersEqualUsage(t *testing.T) {
	tel, _ := newTest(t, Config{Models: []string{"gpt-4o", "gpt-4o-mini", "claude-*"}}, Options{Consumers: consumersFunc(testConsumers...)})
	rng := rand.New(rand.NewPCG(1, 2))
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama-3-70b"}
	type key struct{ consumer, model, typ string }
	want := map[key]float64{}
	wantGenAI := map[string]float64{}
	wantRequests := map[string]float64{}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	reqs := make([]*Request, 500)
	for i := range reqs {
		c := testConsumers[rng.IntN(len(testConsumers))]
		m := models[rng.IntN(len(models))]
		u := usage.Usage{Input: rng.Int64N(5000), Output: rng.Int64N(2000)}
		u.CachedInput = rng.Int64N(u.Input + 1)
		u.Reasoning = rng.Int64N(u.Output + 1)
		u.Estimated = rng.IntN(4) == 0
		d := Allowed
		if rng.IntN(5) == 0 {
			d = RateLimited
			u = usage.Usage{}
		}
		reqs[i] = &Request{ID: fmt.Sprint(i), Consumer: c, Model: m, Provider: "openai", Operation: "chat", Decision: d, Status: 200,
			Usage: u, Start: start, FirstToken: start.Add(200 * time.Millisecond), End: start.Add(2 * time.Second)}
		folded := m
		if m == "llama-3-70b" {
			folded = other
		}
		for typ, v := range map[string]int64{"input": u.Input, "output": u.Output, "cached_input": u.CachedInput, "reasoning": u.Reasoning} {
			want[key{c, folded, typ}] += float64(v)
			if d == Allowed && (u.Input > 0 || u.Output > 0) {
				wantGenAI[typ] += float64(v)
			}
		}
		wantRequests[d.String()]++
	}
	// Concurrently, as streams end in parallel.
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(reqs); i += 4 {
				tel.RequestDone(reqs[i])
			}
		})
	}
	wg.Wait()

	fams := scrape(t, tel)
	got := sumBy(fams, "tollgate_tokens_total", nil, "consumer", "model", "type")
	for k, v := range want {
		if v == 0 {
			continue
		}
		if g := got[k.consumer+"|"+k.model+"|"+k.typ]; g != v {
			t.Errorf("tollgate_tokens_total{consumer=%q,model=%q,type=%q} = %v, want %v", k.consumer, k.model, k.typ, g, v)
		}
	}
	if len(got) != countNonZero(want) {
		t.Errorf("tollgate_tokens_total has %d series, want %d: %v", len(got), countNonZero(want), got)
	}
	gotGenAI := sumBy(fams, "gen_ai_client_token_usage", nil, "gen_ai_token_type")
	for typ, v := range wantGenAI {
		if gotGenAI[typ] != v {
			t.Errorf("gen_ai_client_token_usage_sum{gen_ai_token_type=%q} = %v, want %v", typ, gotGenAI[typ], v)
		}
	}
	gotReq := sumBy(fams, "tollgate_requests_total", nil, "decision")
	for d, v := range wantRequests {
		if gotReq[d] != v {
			t.Errorf("tollgate_requests_total{decision=%q} = %v, want %v", d, gotReq[d], v)
		}
	}
}

func countNonZero[K comparable](m map[K]float64) int {
	n := 0
	for _, v := range m {
		if v != 0 {
			n++
		}
	}
	return n
}

// TestCardinalityBounded feeds 10,000 random model and consumer names (as a
// hostile client could send models, and as a bug could pass consumers) and
// checks the number of series stays bounded by the configured lists.
func TestCardinalityBounded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		models   []string
		max      int
		maxModel int // distinct model label values allowed
	}{
		{"configured list", []string{"gpt-4o", "gpt-4o-mini"}, 0, 2 + 1},
		{"glob matching everything, capped", []string{"*"}, 50, 50 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel, _ := newTest(t, Config{Models: tc.models, MaxModels: tc.max}, Options{Consumers: consumersFunc(testConsumers...)})
			rng := rand.New(rand.NewPCG(3, 4))
			before := seriesCount(scrapeText(t, tel))
			const n = 10000
			for i := range n {
				m := randomName(rng)
				if i%7 == 0 {
					m = "gpt-4o"
				}
				c := randomName(rng)
				if i%5 == 0 {
					c = testConsumers[i%len(testConsumers)]
				}
				status := []int{200, 429, 500, 503, 0, 404}[i%6]
				tel.RequestDone(&Request{
					Consumer: c, Model: m, ResponseModel: randomName(rng), Provider: "openai", Operation: "chat",
					Decision: Decision(i % int(numDecisions)), Rule: "rule-a", Status: status,
					Usage: usage.Usage{Input: 10, Output: 5},
				})
				tel.QuotaRemaining(c, int64(i))
				tel.StoreCall(randomName(rng), time.Millisecond, nil)
			}
			text := scrapeText(t, tel)
			fams := scrape(t, tel)
			for _, f := range []string{"tollgate_tokens_total", "tollgate_requests_total", "gen_ai_client_token_usage", "gen_ai_server_request_duration_seconds"} {
				for _, label := range []string{"model", "gen_ai_request_model", "gen_ai_response_model"} {
					if vs := labelValues(fams, f, label); len(vs) > tc.maxModel {
						t.Errorf("%s has %d values of %s, want at most %d", f, len(vs), label, tc.maxModel)
					}
				}
				if vs := labelValues(fams, f, "consumer"); len(vs) > len(testConsumers)+1 {
					t.Errorf("%s has consumers %v, want only %v and other", f, vs, testConsumers)
				}
			}
			if vs := labelValues(fams, "tollgate_quota_remaining", "consumer"); len(vs) > len(testConsumers)+1 {
				t.Errorf("tollgate_quota_remaining has %d consumers", len(vs))
			}
			if vs := labelValues(fams, "tollgate_store_duration_seconds", "op"); len(vs) > maxStoreOps+1 {
				t.Errorf("tollgate_store_duration_seconds has %d ops", len(vs))
			}
			// Whole exposition: a series per random name would be tens of
			// thousands of lines.
			added := seriesCount(text) - before
			if added > 25000 || added >= n {
				t.Errorf("%d random names added %d series", n, added)
			}
			t.Logf("%d requests with random names added %d series", n, added)
		})
	}
}

// seriesCount counts the sample lines of an exposition.
func seriesCount(text string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

func randomName(rng *rand.Rand) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789-."
	b := make([]byte, 6+rng.IntN(20))
	for i := range b {
		b[i] = chars[rng.IntN(len(chars))]
	}
	return string(b)
}

func TestLabelFolding(t *testing.T) {
	tel, _ := newTest(t, Config{Models: []string{"gpt-4o", "claude-*", "models/gemini-?.5-pro"}}, Options{Consumers: consumersFunc("alice")})
	for _, tc := range []struct {
		consumer, model         string
		wantConsumer, wantModel string
	}{
		{"alice", "gpt-4o", "alice", "gpt-4o"},
		{"alice", "gpt-4o-mini", "alice", other},
		{"alice", "claude-opus-4-1", "alice", "claude-opus-4-1"},
		{"alice", "models/gemini-2.5-pro", "alice", "models/gemini-2.5-pro"},
		{"mallory", "gpt-4o", other, "gpt-4o"},
		{"", "", none, none},
		{"alice", "claude-" + strings.Repeat("x", 200), "alice", other},
		{"alice", "claude-\xff\xfe", "alice", other},
		{"alice", "claude-sk-proj-abcdefghijklmnopqrstuvwxyz012345", "alice", other},
	} {
		t.Run(tc.consumer+"/"+tc.model, func(t *testing.T) {
			if got := tel.consumers.fold(tc.consumer); got != tc.wantConsumer {
				t.Errorf("consumer %q folded to %q, want %q", tc.consumer, got, tc.wantConsumer)
			}
			if got := tel.models.fold(tc.model); got != tc.wantModel {
				t.Errorf("model %q folded to %q, want %q", tc.model, got, tc.wantModel)
			}
		})
	}
}

// TestConsumerAddedByReload checks a consumer added to the list later is
// counted under its own name once the list is read again.
func TestConsumerAddedByReload(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	names := []string{"alice"}
	tel, _ := newTest(t, Config{}, Options{Clock: clock.Now, Consumers: func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), names...)
	}})
	if got := tel.consumers.fold("dave"); got != other {
		t.Fatalf("unknown consumer folded to %q", got)
	}
	mu.Lock()
	names = append(names, "dave")
	mu.Unlock()
	clock.Advance(2 * time.Second)
	if got := tel.consumers.fold("dave"); got != "dave" {
		t.Fatalf("consumer added by reload folded to %q, want dave", got)
	}
}

func TestStatusClass(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{{0, "none"}, {101, "1xx"}, {200, "2xx"}, {204, "2xx"}, {302, "3xx"}, {429, "4xx"}, {500, "5xx"}, {599, "5xx"}, {600, "other"}, {-1, "other"}} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			if got := statusClass(tc.status); got != tc.want {
				t.Errorf("statusClass(%d) = %q, want %q", tc.status, got, tc.want)
			}
		})
	}
}

// TestProviderHealth checks upstream responses are counted by provider and
// status class, and only for requests that went upstream.
func TestProviderHealth(t *testing.T) {
	tel, _ := newTest(t, Config{}, Options{})
	for _, s := range []int{200, 200, 200, 500, 503, 429, 0} {
		tel.RequestDone(&Request{Provider: "openai", Operation: "chat", Status: s})
	}
	tel.RequestDone(&Request{Provider: "anthropic", Operation: "chat", Status: 529})
	tel.RequestDone(&Request{Provider: "anthropic", Operation: "chat", Decision: RateLimited, Status: 0})
	got := sumBy(scrape(t, tel), "tollgate_upstream_responses_total", nil, "provider", "status_class")
	want := map[string]float64{"openai|2xx": 3, "openai|5xx": 2, "openai|4xx": 1, "anthropic|5xx": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("upstream responses = %v, want %v", got, want)
	}
}

// TestGenAILatencies checks duration, time to first token and time per
// output token are computed from the request's times.
func TestGenAILatencies(t *testing.T) {
	tel, _ := newTest(t, Config{Models: []string{"gpt-4o"}}, Options{})
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tel.RequestDone(&Request{Model: "gpt-4o", Provider: "openai", Operation: "chat", Status: 200,
		Usage: usage.Usage{Input: 100, Output: 101}, Start: start, FirstToken: start.Add(300 * time.Millisecond), End: start.Add(2300 * time.Millisecond)})
	// An upstream error: duration with error.type, no TTFT.
	tel.RequestDone(&Request{Model: "gpt-4o", Provider: "openai", Operation: "chat", Status: 503,
		Start: start, FirstToken: start.Add(time.Second), End: start.Add(time.Second)})
	fams := scrape(t, tel)
	ok := map[string]string{"gen_ai_request_model": "gpt-4o", "error_type": ""}
	for _, tc := range []struct {
		name  string
		where map[string]string
		count uint64
		sum   float64
	}{
		{"gen_ai_server_request_duration_seconds", ok, 1, 2.3},
		{"gen_ai_server_request_duration_seconds", map[string]string{"error_type": "503"}, 1, 1},
		{"gen_ai_server_time_to_first_token_seconds", nil, 1, 0.3},
		{"gen_ai_server_time_per_output_token_seconds", nil, 1, 0.02},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := histCount(fams, tc.name, tc.where)
			if c != tc.count || math.Abs(s-tc.sum) > 1e-9 {
				t.Errorf("%s%v: count %d sum %v, want %d and %v", tc.name, tc.where, c, s, tc.count, tc.sum)
			}
		})
	}
}

// TestOperationalMetrics checks the gauges and the store and phase
// histograms after the calls the processor and the ledger make.
func TestOperationalMetrics(t *testing.T) {
	tel, _ := newTest(t, Config{}, Options{Consumers: consumersFunc("alice")})
	tel.Phase(RequestHeaders, 20*time.Microsecond)
	tel.Phase(RequestBody, 2*time.Millisecond)
	tel.Phase(RequestBody, 3*time.Millisecond)
	tel.Phase(Phase(200), time.Second) // unknown: ignored
	tel.QuotaRemaining("alice", 5000)
	tel.QuotaRemaining("alice", 4200)
	tel.StoreCall("reserve", time.Millisecond, nil)
	tel.StoreCall("reserve", 5*time.Millisecond, context.DeadlineExceeded)
	tel.StoreCall("settle", time.Millisecond, fmt.Errorf("cannot settle: %w", errors.New("connection refused")))
	depth := 7
	tel.SetSpoolDepth(func() int { return depth })
	fams := scrape(t, tel)

	if c, s := histCount(fams, "tollgate_extproc_phase_duration_seconds", map[string]string{"phase": "request_body"}); c != 2 || math.Abs(s-0.005) > 1e-12 {
		t.Errorf("request_body phase: count %d sum %v, want 2 and 0.005", c, s)
	}
	if c, _ := histCount(fams, "tollgate_extproc_phase_duration_seconds", nil); c != 3 {
		t.Errorf("phase samples = %d, want 3 (an unknown phase is ignored)", c)
	}
	if got := sumBy(fams, "tollgate_quota_remaining", nil, "consumer"); got["alice"] != 4200 {
		t.Errorf("quota remaining = %v, want alice 4200 (the last value)", got)
	}
	if got := sumBy(fams, "tollgate_store_errors_total", nil, "op", "outcome"); fmt.Sprint(got) != fmt.Sprint(map[string]float64{"reserve|timeout": 1, "settle|error": 1}) {
		t.Errorf("store errors = %v", got)
	}
	if c, _ := histCount(fams, "tollgate_store_duration_seconds", map[string]string{"op": "reserve"}); c != 2 {
		t.Errorf("reserve latency samples = %d, want 2", c)
	}
	if got := sumBy(fams, "tollgate_spool_depth", nil); got[""] != 7 {
		t.Errorf("spool depth = %v, want 7", got)
	}
	depth = 9
	if got := sumBy(scrape(t, tel), "tollgate_spool_depth", nil); got[""] != 9 {
		t.Errorf("spool depth after change = %v, want 9 (read at each scrape)", got)
	}
}

// TestNilTelemetry checks a nil *Telemetry can be used everywhere.
func TestNilTelemetry(t *testing.T) {
	var tel *Telemetry
	tel.RequestDone(&Request{Consumer: "alice"})
	tel.Phase(RequestBody, time.Millisecond)
	tel.QuotaRemaining("alice", 1)
	tel.StoreCall("reserve", time.Millisecond, errors.New("x"))
	tel.SetSpoolDepth(func() int { return 1 })
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tel.MetricsHandler() == nil {
		t.Fatal("nil MetricsHandler")
	}
}

func TestOperation(t *testing.T) {
	for _, tc := range []struct {
		api  usage.API
		want string
	}{
		{usage.APIChatCompletions, "chat"}, {usage.APIAnthropicMessages, "chat"}, {usage.APICompletions, "text_completion"},
		{usage.APIEmbeddings, "embeddings"}, {usage.APIResponses, "responses"}, {usage.APIUnknown, ""},
	} {
		t.Run(tc.api.String(), func(t *testing.T) {
			if got := Operation(tc.api); got != tc.want {
				t.Errorf("Operation(%v) = %q, want %q", tc.api, got, tc.want)
			}
		})
	}
}

// TestConsumersWithoutList checks that without a consumer list names are
// kept up to max_consumers.
func TestConsumersWithoutList(t *testing.T) {
	tel, _ := newTest(t, Config{MaxConsumers: 2}, Options{})
	for _, tc := range []struct{ in, want string }{{"alice", "alice"}, {"bob", "bob"}, {"carol", other}, {"alice", "alice"}} {
		if got := tel.consumers.fold(tc.in); got != tc.want {
			t.Errorf("fold(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
