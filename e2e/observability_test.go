package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/e2e/fakellm"
	"github.com/tollgate-ai/tollgate/internal/promqltest"
	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/quota"
)

// Secrets of the observability scenario beside the harness's keys: a
// fourth consumer's key, a key no consumer has, and the provider keys
// tollgate injects upstream (read from the environment, as in production).
const (
	keyTeamC          = "sk-e2e-team-c"
	keyUnknown        = "sk-e2e-unknown-0123456789abcdef"
	providerKeyOpenAI = "sk-proj-e2e-provider-openai-5f1d2c3b4a"
	providerKeyClaude = "sk-ant-e2e-provider-anthropic-9e8d7c6b"
)

// metricsPage is one scrape of tollgate's /metrics.
type metricsPage struct {
	text string
	fams map[string]*dto.MetricFamily
}

// scrapeMetrics reads and parses /metrics on tollgate's admin port, which
// Prometheus scrapes without the admin token.
func scrapeMetrics(t *testing.T, adminAddr string) metricsPage {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("cannot scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("cannot parse /metrics: %v", err)
	}
	return metricsPage{text: string(b), fams: fams}
}

// sum adds up the counter (or gauge) series of name whose labels include
// where, grouped by the values of the labels by, joined with "|".
func (m metricsPage) sum(name string, where map[string]string, by ...string) map[string]float64 {
	out := map[string]float64{}
	f := m.fams[name]
	if f == nil {
		return out
	}
next:
	for _, s := range f.GetMetric() {
		l := map[string]string{}
		for _, lp := range s.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		for k, v := range where {
			if l[k] != v {
				continue next
			}
		}
		key := make([]string, len(by))
		for i, b := range by {
			key[i] = l[b]
		}
		v := s.GetCounter().GetValue()
		if s.GetGauge() != nil {
			v = s.GetGauge().GetValue()
		}
		out[strings.Join(key, "|")] += v
	}
	return out
}

// names is every sample name the page shows, histograms' _bucket, _sum
// and _count included.
func (m metricsPage) names() map[string]bool {
	out := map[string]bool{}
	for name, f := range m.fams {
		out[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
		}
	}
	return out
}

// observabilityConfig has four consumers — team-a limited to some models,
// team-b, team-c with a 10-token balance, admin with two requests a
// minute — and two providers whose keys tollgate injects.
func observabilityConfig(store string) string {
	return fmt.Sprintf(`server: {drain_timeout: 30s}
log: {format: json, level: debug}
store: %s
consumers:
  - name: team-a
    keys: [%q]
    models: ["gpt-4o*", "gpt-4.1*", "claude-*", "text-embedding-3-*"]
  - name: team-b
    keys: [%q]
  - name: team-c
    keys: [%q]
  - name: admin
    keys: [%q]
admin: {token: %q}
providers:
  - {name: openai, path_prefix: /v1/, api_key_env: E2E_OPENAI_KEY}
  - {name: anthropic, path_prefix: /v1/messages, header: x-api-key, api_key_env: E2E_ANTHROPIC_KEY}
request_ratelimit:
  - rule_name: admin-rpm
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: admin, query_per_minute: 2}]}]
quota:
  default: {tokens: 100000000, period: month}
  consumers:
    team-c: {tokens: 10, period: none}
`, store, keyTeamA, keyTeamB, keyTeamC, keyAdmin, adminToken)
}

// outcomes counts how the calls of a scenario ended for their clients, by
// the decision tollgate must report for them.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) add(decision string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[decision]++
}

func (o *outcomes) get() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, v := range o.n {
		out[k] = v
	}
	return out
}

// usageKey is a consumer and a model, as tollgate counts usage.
type usageKey struct{ consumer, model string }

func (k usageKey) String() string { return k.consumer + "/" + k.model }

// usageRow is usage in the shape the three sides (provider, store,
// metrics) can be compared in.
type usageRow struct {
	Requests, Input, Output, CachedInput, CacheCreation, Reasoning int64
}

// expectedUsage is what tollgate must have charged for each consumer and
// model, from the fake provider's ledger: the usage it reported, or, when
// it reported none (omitted, or a stream the client cut), tollgate's own
// count of what was sent; nothing for an error answer.
func (u *upstream) expectedUsage(t *testing.T) map[usageKey]usageRow {
	t.Helper()
	out := map[usageKey]usageRow{}
	for _, r := range u.Requests() {
		k := usageKey{r.Header.Get("x-tollgate-consumer"), gjson.GetBytes(r.Body, "model").String()}
		row, one := out[k], u.expectedFor(t, r)
		row.Requests++
		row.Input += one.Input
		row.Output += one.Output
		row.CachedInput += one.CachedInput
		row.CacheCreation += one.CacheCreation
		row.Reasoning += one.Reasoning
		out[k] = row
	}
	return out
}

// expectedFor is what tollgate must have charged for one request (see
// expectedUsage).
func (u *upstream) expectedFor(t *testing.T, r fakellm.Request) usageRow {
	t.Helper()
	rep, ok := u.Reported(r.ID)
	switch {
	case !ok || rep.Status != http.StatusOK:
		return usageRow{Requests: 1}
	case rep.UsageSent:
		return usageRow{1, rep.Usage.Input, rep.Usage.Output, rep.Usage.CachedInput, rep.Usage.CacheCreation, rep.Usage.Reasoning}
	}
	own := ownCount(t, r, rep)
	return usageRow{Requests: 1, Input: own.Input, Output: own.Output}
}

// committedUsage is what the admin API says one consumer used of one model.
func committedUsage(t *testing.T, adminAddr string, k usageKey) (usageRow, error) {
	now := time.Now().UTC()
	q := url.Values{
		"consumer": {k.consumer}, "model": {k.model},
		"from": {now.AddDate(0, 0, -1).Format(time.DateOnly)},
		"to":   {now.AddDate(0, 0, 1).Format(time.DateOnly)},
	}
	var rep quota.UsageReport
	if err := adminGet(t, adminAddr, "/v1/usage?"+q.Encode(), &rep); err != nil {
		return usageRow{}, err
	}
	c := rep.Total
	return usageRow{c.Requests, c.Input, c.Output, c.CachedInput, c.CacheCreation, c.Reasoning}, nil
}

// metricUsage is tollgate_tokens_total by consumer and model.
func (m metricsPage) metricUsage() map[usageKey]usageRow {
	out := map[usageKey]usageRow{}
	for key, v := range m.sum("tollgate_tokens_total", nil, "consumer", "model", "type") {
		p := strings.SplitN(key, "|", 3)
		k := usageKey{p[0], p[1]}
		row := out[k]
		n := int64(v)
		switch p[2] {
		case "input":
			row.Input += n
		case "output":
			row.Output += n
		case "cached_input":
			row.CachedInput += n
		case "cache_creation":
			row.CacheCreation += n
		case "reasoning":
			row.Reasoning += n
		}
		out[k] = row
	}
	return out
}

// usageEvent is the part of a usage record this suite reads.
type usageEvent struct {
	RequestID      string `json:"request_id"`
	EnvoyRequestID string `json:"envoy_request_id"`
	Consumer       string `json:"consumer"`
	Model          string `json:"model"`
	Status         int    `json:"status"`
	InputTokens    int64  `json:"input_tokens,string"`
	OutputTokens   int64  `json:"output_tokens,string"`
}

// readUsageEvents returns the records of tollgate's usage-event stream on a
// single Redis node, and the raw text of every entry.
func readUsageEvents(t *testing.T, addr string) ([]usageEvent, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	msgs, err := c.XRange(context.Background(), "tollgate:usage-events", "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE tollgate:usage-events: %v", err)
	}
	var raw strings.Builder
	out := make([]usageEvent, 0, len(msgs))
	for _, m := range msgs {
		for k, v := range m.Values {
			fmt.Fprintf(&raw, "%s %s=%v\n", m.ID, k, v)
		}
		s, ok := m.Values["record"].(string)
		if !ok {
			t.Fatalf("usage event %s has no record field: %v", m.ID, m.Values)
		}
		var ev usageEvent
		if err := json.Unmarshal([]byte(s), &ev); err != nil {
			t.Fatalf("usage event %s: %v\n%s", m.ID, err, s)
		}
		out = append(out, ev)
	}
	return out, raw.String()
}

// TestObservability runs mixed traffic — four consumers, several models and
// APIs, streamed and not, a provider error, a stream the client cuts, an
// answer without usage, refusals of every kind, and a Redis outage whose
// settlements are spooled and replayed — through the whole chain, then
// reads tollgate's /metrics, log and usage-event stream:
//
//   - tollgate_tokens_total per consumer and model equals what the store
//     committed (admin API) and what the provider reported;
//   - tollgate_requests_total by decision equals what the clients saw;
//   - every metric the shipped dashboard and alert rules use is exposed;
//   - no API key, provider key or admin token appears in /metrics, the log
//     or the usage events;
//   - every request that reached the provider appears exactly once in the
//     usage-event stream, the spooled ones included.
func TestObservability(t *testing.T) {
	t.Parallel()
	rdb := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	env := map[string]string{"E2E_OPENAI_KEY": providerKeyOpenAI, "E2E_ANTHROPIC_KEY": providerKeyClaude}
	cfg := observabilityConfig(redisStore([]string{rdb.Addr()}, "fail_closed", t.TempDir()))
	llm := startUpstream(t)
	tg, tgLog := startTollgateEnv(t, "tollgate", cfg, env)
	front := startEnvoy(t, "envoy", tg.grpcAddr, llm)
	ctx := context.Background()
	var seen outcomes
	oa := func(key string) openai.Client { return openaiClient(front.URL, key) }
	// refused expects a refusal with status and records its decision.
	refused := func(what string, err error, status int, decision string) {
		t.Helper()
		if _, code := apiStatus(t, err); code != status {
			t.Errorf("%s: got %d, want %d", what, code, status)
		}
		seen.add(decision)
	}
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		seen.add("allowed")
	}

	// team-a: every counted API, two providers.
	a := oa(keyTeamA)
	_, err := a.Chat.Completions.New(ctx, userChat("gpt-4o", "Hello, gateway."),
		plan("chunks", "7", "usage", "input=120,output=40,cached=64,reasoning=10")...)
	ok("team-a chat", err)
	readChat(t, a, userChat("gpt-4o-mini", "Stream a few words."), plan("chunks", "25", "content", `"word "`)...)
	seen.add("allowed")
	_, err = a.Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-4.1-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Answer with the Responses API.")},
	}, plan("chunks", "6", "usage", "input=50,output=6,cached=20")...)
	ok("team-a responses", err)
	_, err = a.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one text to embed", "and another"}},
	})
	ok("team-a embeddings", err)
	ac := anthropicClient(front.URL, keyTeamA)
	st := ac.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 256,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello from the Anthropic SDK."))},
	}, anthropicPlan("chunks", "30", "split", "5", "usage", "input=90,output=30,cached=40,cache_creation=10")...)
	for st.Next() {
	}
	ok("team-a anthropic stream", st.Err())
	_, err = a.Chat.Completions.New(ctx, userChat("o3-pro", "Not my model."))
	refused("team-a model outside its list", err, http.StatusForbidden, "forbidden")

	// team-b: usage asked by the client, usage omitted by the provider, a
	// provider error, and a stream the client cuts.
	b := oa(keyTeamB)
	withUsage := userChat("gpt-4o", "Stream and tell me the usage.")
	withUsage.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	readChat(t, b, withUsage, plan("chunks", "9", "split", "7", "usage", "input=33,output=9,reasoning=4")...)
	seen.add("allowed")
	_, err = b.Chat.Completions.New(ctx, userChat("gpt-4o", "Count it yourself."), plan("chunks", "12", "fault", "omit-usage")...)
	ok("team-b without usage", err)
	_, err = b.Chat.Completions.New(ctx, userChat("gpt-4.1", "Fail, please."), plan("fault", "status=500")...)
	refused("team-b provider error", err, http.StatusInternalServerError, "allowed")
	// A model name holding a provider key must not carry it into metrics,
	// logs or usage events.
	_, err = b.Chat.Completions.New(ctx, userChat("ft:"+providerKeyOpenAI, "A pasted key."), plan("chunks", "2")...)
	ok("team-b with a key in the model name", err)
	cutStream(t, b, llm)
	seen.add("allowed")

	// Refusals: no key, an unknown key, a rate limit, an empty balance.
	noKey := openaiClient(front.URL, "unused", option.WithHeaderDel("Authorization"))
	_, err = noKey.Chat.Completions.New(ctx, userChat("gpt-4o", "hi"))
	refused("no key", err, http.StatusUnauthorized, "unauthenticated")
	unknown := oa(keyUnknown)
	_, err = unknown.Chat.Completions.New(ctx, userChat("gpt-4o", "hi"))
	refused("unknown key", err, http.StatusUnauthorized, "unauthenticated")
	adm := oa(keyAdmin)
	for i := range 2 {
		_, err = adm.Chat.Completions.New(ctx, userChat("gpt-4o-mini", "ping"), plan("chunks", "2")...)
		ok(fmt.Sprintf("admin call %d", i), err)
	}
	_, err = adm.Chat.Completions.New(ctx, userChat("gpt-4o-mini", "ping"))
	refused("admin over its request rate", err, http.StatusTooManyRequests, "rate_limited")
	small := userChat("gpt-4o-mini", "A long answer, please.")
	small.MaxTokens = openai.Int(100)
	c := oa(keyTeamC)
	_, err = c.Chat.Completions.New(ctx, small)
	refused("team-c over its balance", err, http.StatusForbidden, "quota_exhausted")

	// Redis goes away while a stream is in flight: its settlement waits in
	// the spool; new calls are refused (fail_closed) until Redis is back.
	before := len(llm.Requests())
	inFlight := streamInBackground(b, 20, "spooled")
	llm.waitRequests(t, before+1)
	rdb.Kill()
	if res := <-inFlight; res.err != nil {
		t.Fatalf("a stream admitted before Redis died must finish: %v", res.err)
	}
	seen.add("allowed")
	for range 2 {
		_, err = b.Chat.Completions.New(ctx, userChat("gpt-4o", "Is Redis there?"))
		refused("call while Redis is down", err, http.StatusServiceUnavailable, "store_error")
	}
	rdb.Restart()
	eventually(t, "a call once Redis is back", func() error {
		_, err := b.Chat.Completions.New(ctx, userChat("gpt-4o", "Is Redis back?"), plan("chunks", "3")...)
		if err == nil {
			seen.add("allowed")
			return nil
		}
		if _, code := apiStatus(t, err); code == http.StatusServiceUnavailable {
			seen.add("store_error")
		}
		return err
	})

	want := llm.expectedUsage(t)
	t.Run("tokens per consumer and model", func(t *testing.T) {
		for k, w := range want {
			eventually(t, "committed usage of "+k.String(), func() error {
				got, err := committedUsage(t, tg.adminAddr, k)
				if err != nil {
					return err
				}
				if got != w {
					return fmt.Errorf("store has %+v, the provider's ledger says %+v", got, w)
				}
				return nil
			})
		}
		// In metrics, a model name that holds a credential is counted as
		// "other"; requests are counted by tollgate_requests_total.
		wantLabels := map[usageKey]usageRow{}
		for k, w := range want {
			if strings.Contains(k.model, providerKeyOpenAI) {
				k.model = "other"
			}
			row := wantLabels[k]
			row.Input += w.Input
			row.Output += w.Output
			row.CachedInput += w.CachedInput
			row.CacheCreation += w.CacheCreation
			row.Reasoning += w.Reasoning
			wantLabels[k] = row
		}
		if _, ok := wantLabels[usageKey{"team-b", "other"}]; !ok {
			t.Fatal("the request with a key in its model name is missing")
		}
		var m metricsPage
		eventually(t, "tollgate_tokens_total to match the store", func() error {
			m = scrapeMetrics(t, tg.adminAddr)
			got := m.metricUsage()
			var errs []error
			for k, w := range wantLabels {
				if got[k] != w {
					errs = append(errs, fmt.Errorf("%s: /metrics has %+v, the store %+v", k, got[k], w))
				}
			}
			for k, g := range got {
				if _, ok := wantLabels[k]; !ok && g != (usageRow{}) {
					errs = append(errs, fmt.Errorf("%s: /metrics has %+v, the store nothing", k, g))
				}
			}
			return errors.Join(errs...)
		})
		t.Logf("usage per consumer/model checked: %d pairs", len(want))
		if n := len(want); n < 8 {
			t.Errorf("the traffic covered only %d consumer/model pairs", n)
		}
	})

	t.Run("requests by decision", func(t *testing.T) {
		wantDec := seen.get()
		if got := int(len(llm.Requests())); got != wantDec["allowed"] {
			t.Fatalf("the provider saw %d requests, the clients %d allowed ones", got, wantDec["allowed"])
		}
		eventually(t, "tollgate_requests_total by decision", func() error {
			got := scrapeMetrics(t, tg.adminAddr).sum("tollgate_requests_total", nil, "decision")
			var errs []error
			for d, n := range wantDec {
				if int(got[d]) != n {
					errs = append(errs, fmt.Errorf("decision %s: /metrics has %v, clients saw %d", d, got[d], n))
				}
			}
			for d, n := range got {
				if _, ok := wantDec[d]; !ok && n != 0 {
					errs = append(errs, fmt.Errorf("decision %s: /metrics has %v, clients saw none", d, n))
				}
			}
			return errors.Join(errs...)
		})
		t.Logf("decisions: %v", wantDec)
		m := scrapeMetrics(t, tg.adminAddr)
		if r := m.sum("tollgate_requests_total", map[string]string{"decision": "rate_limited"}, "rule"); r["admin-rpm"] != 1 {
			t.Errorf("the rate-limit refusal is not counted under its rule: %v", r)
		}
		if got := m.sum("tollgate_upstream_responses_total", nil, "provider", "status_class"); got["openai|5xx"] != 1 || got["anthropic|2xx"] != 1 {
			t.Errorf("upstream responses by provider and class: %v", got)
		}
	})

	t.Run("dashboard and alert rules use exposed metrics", func(t *testing.T) {
		exposed := scrapeMetrics(t, tg.adminAddr).names()
		used, recorded := shippedQueries(t)
		var names []string
		for n := range used {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if !exposed[n] && !recorded[n] {
				t.Errorf("%s uses %s, which tollgate's /metrics does not show after the traffic", used[n], n)
			}
		}
		if len(names) < 10 {
			t.Errorf("found only %d metric names in the dashboard and rules: %v", len(names), names)
		}
		t.Logf("%d metric names checked: %s", len(names), strings.Join(names, " "))
	})

	events, rawEvents := readUsageEvents(t, rdb.Addr())
	t.Run("every request once in the usage events", func(t *testing.T) {
		checkEventsOnce(t, events, llm)
	})

	t.Run("no secret in metrics, log or usage events", func(t *testing.T) {
		places := map[string]string{
			"/metrics":     scrapeMetrics(t, tg.adminAddr).text,
			"tollgate log": tgLog.String(),
			"usage events": rawEvents,
		}
		for _, secret := range []string{keyTeamA, keyTeamB, keyTeamC, keyAdmin, keyUnknown, adminToken, providerKeyOpenAI, providerKeyClaude} {
			for where, text := range places {
				if strings.Contains(text, secret) {
					t.Errorf("%s contains the secret %q", where, secret)
				}
			}
		}
		// The provider keys did go upstream: the check above is not vacuous.
		for _, r := range llm.Requests() {
			if r.Header.Get("authorization") != "Bearer "+providerKeyOpenAI && r.Header.Get("x-api-key") != providerKeyClaude {
				t.Errorf("request %s reached the provider without a provider key", r.ID)
			}
		}
		if !strings.Contains(places["tollgate log"], `"consumer":"team-c"`) {
			t.Errorf("the log has no request lines to check")
		}
	})

	// A restart on the same spool directory must not append any record
	// again.
	t.Run("usage events after a restart on the same spool", func(t *testing.T) {
		if err := tg.Stop(); err != nil {
			t.Fatalf("tollgate stopped with %v", err)
		}
		again, _ := startTollgateEnv(t, "tollgate (restarted on the same spool)", cfg, env)
		eventually(t, "the restarted tollgate's spool to be empty", func() error {
			m := scrapeMetrics(t, again.adminAddr)
			if _, ok := m.fams["tollgate_spool_depth"]; !ok {
				return errors.New("no tollgate_spool_depth yet")
			}
			if d := m.sum("tollgate_spool_depth", nil)[""]; d != 0 {
				return fmt.Errorf("spool depth %v", d)
			}
			return nil
		})
		events, _ := readUsageEvents(t, rdb.Addr())
		checkEventsOnce(t, events, llm)
	})
}

// checkEventsOnce checks that every request that reached the provider
// has exactly one usage record, with the usage tollgate charged for it,
// and that no settlement has two.
func checkEventsOnce(t *testing.T, events []usageEvent, llm *upstream) {
	t.Helper()
	byEnvoyID := map[string][]usageEvent{}
	byID := map[string]int{}
	for _, ev := range events {
		byEnvoyID[ev.EnvoyRequestID] = append(byEnvoyID[ev.EnvoyRequestID], ev)
		byID[ev.RequestID]++
	}
	reqs := llm.Requests()
	for _, r := range reqs {
		evs := byEnvoyID[r.ID]
		if len(evs) != 1 {
			t.Errorf("request %s (%s, tag %q) appears %d times in the usage events", r.ID, r.Header.Get("x-tollgate-consumer"), r.Header.Get("x-e2e-tag"), len(evs))
			continue
		}
		want := llm.expectedFor(t, r)
		if ev := evs[0]; ev.Consumer != r.Header.Get("x-tollgate-consumer") || ev.InputTokens != want.Input || ev.OutputTokens != want.Output {
			t.Errorf("request %s: usage record %+v, want %s with input %d, output %d", r.ID, ev, r.Header.Get("x-tollgate-consumer"), want.Input, want.Output)
		}
	}
	for id, n := range byID {
		if n != 1 {
			t.Errorf("settlement %s appears %d times in the usage events", id, n)
		}
	}
	if len(events) != len(reqs) {
		t.Errorf("%d usage events for %d requests that reached the provider", len(events), len(reqs))
	}
}

// cutStream reads a few chunks of a slow stream, then goes away, and waits
// until the provider has stopped sending, so that its ledger is final.
func cutStream(t *testing.T, c openai.Client, llm *upstream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := len(llm.Requests())
	st := c.Chat.Completions.NewStreaming(ctx, userChat("gpt-4o-mini", "Count slowly."),
		append(plan("chunks", "100", "delay", "200ms", "content", `"step "`), option.WithHeader("x-e2e-tag", "cut"))...)
	for got := 0; got < 3 && st.Next(); {
		for _, ch := range st.Current().Choices {
			if ch.Delta.Content != "" {
				got++
			}
		}
	}
	cancel()
	for st.Next() {
	}
	_ = st.Close()
	llm.waitRequests(t, before+1)
	id := llm.Requests()[before].ID
	var last fakellm.Report
	eventually(t, "the provider to stop the cut stream", func() error {
		rep, _ := llm.Reported(id)
		if rep.Completed {
			return errors.New("the provider finished the stream: the cancel did not reach it")
		}
		if rep.Chunks != last.Chunks || rep.Chunks == 0 {
			last = rep
			time.Sleep(300 * time.Millisecond)
			return errors.New("still streaming")
		}
		return nil
	})
}

// shippedQueries returns the metric names the Grafana dashboard and the
// Prometheus rules query, each with where it is used first, and the names
// the rules record (which Prometheus makes, not tollgate).
func shippedQueries(t *testing.T) (used map[string]string, recorded map[string]bool) {
	t.Helper()
	dash, err := os.ReadFile("../envoy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("../envoy/prometheus-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exprs, recorded, err := promqltest.Queries(dash, rules)
	if err != nil {
		t.Fatal(err)
	}
	used = map[string]string{}
	for _, where := range slices.Sorted(maps.Keys(exprs)) {
		names := promqltest.MetricNames(exprs[where])
		if len(names) == 0 {
			t.Errorf("%s: no metric name found in %q", where, exprs[where])
		}
		for _, n := range names {
			if _, ok := used[n]; !ok {
				used[n] = where
			}
		}
	}
	return used, recorded
}
