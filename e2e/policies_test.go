package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/e2e/envoyemu"
	"github.com/tollgate-ai/tollgate/e2e/fakellm"
	"github.com/tollgate-ai/tollgate/internal/redistest"
)

// policyConfig is baseConfig with lines added to team-b's consumer entry
// (its own limits, say).
func policyConfig(store, teamB, more string) string {
	return fmt.Sprintf(`server: {drain_timeout: 30s}
log: {format: text, level: info}
store: %s
consumers:
  - name: team-a
    keys: [%q]
    models: ["gpt-4o*", "gpt-4.1*"]
  - name: team-b
    keys: [%q]
%s
  - name: admin
    keys: [%q]
admin: {token: %q}
%s
`, store, keyTeamA, keyTeamB, teamB, keyAdmin, adminToken, more)
}

// startEnvoyRoutes is an emulated Envoy whose route table is routes
// followed by the shipped envoy.yaml's, with clusters for the routes'
// grpc_service overrides.
func startEnvoyRoutes(t *testing.T, name, extProcAddr string, up *upstream, routes []envoyemu.Route, clusters map[string]string) *envoy {
	t.Helper()
	cfg := shippedEnvoyConfig(t)
	return runEnvoy(t, name, envoyemu.Options{
		Filter:             cfg.Filter,
		ExtProcAddr:        extProcAddr,
		Clusters:           clusters,
		Upstream:           up.URL,
		Routes:             append(append([]envoyemu.Route(nil), routes...), cfg.Routes...),
		VirtualHostExtProc: cfg.VirtualHostExtProc,
		AccessLogFormat:    cfg.AccessLogFormat,
	})
}

// llmRoute is a route to the LLM cluster as the shipped "llm" route is,
// for the requests under prefix.
func llmRoute(name, prefix string, extProc *extprocv3.ExtProcPerRoute) envoyemu.Route {
	return envoyemu.Route{Name: name, Prefix: prefix, ExtProc: extProc, Timeout: 900 * time.Second, RequestBodyLimit: 32 << 20}
}

// quotaOf reads a consumer's balance from the admin API, in a route scope
// when scope is set.
func quotaOf(t *testing.T, adminAddr, consumer, scope string) int64 {
	t.Helper()
	path := "/v1/quota/" + consumer
	if scope != "" {
		path += "?route=" + url.QueryEscape(scope)
	}
	var st struct {
		Remaining int64 `json:"remaining"`
	}
	if err := adminGet(t, adminAddr, path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Remaining
}

// expectQuotas waits until team-b's unscoped balance and its balance in
// the support scope are the given ones.
func expectQuotas(t *testing.T, adminAddr string, unscoped, support int64) {
	t.Helper()
	eventually(t, "team-b's balances", func() error {
		u, s := quotaOf(t, adminAddr, "team-b", ""), quotaOf(t, adminAddr, "team-b", "support")
		if u != unscoped || s != support {
			return fmt.Errorf("unscoped %d, support %d; want %d and %d", u, s, unscoped, support)
		}
		return nil
	})
}

// TestPoliciesRouteQuotas gives team-b two balances: 1,000 tokens
// unscoped and 300 in the "support" scope, which takes the requests of
// Envoy's route support-chat (/support/…). Calls on each route are charged
// to their own balance; running out on one route leaves the other open;
// Higress's in-band /quota/delta called under the support route tops up
// only the support balance, and /quota under each route reads its own.
func TestPoliciesRouteQuotas(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	cfg := baseConfig(redisStore([]string{rdb.Addr()}, "fail_closed", t.TempDir()), `
quota:
  admin_consumer: admin
  consumers: {team-b: {tokens: 1000, period: none}}
  routes:
    - name: support
      match: {route: support-chat}
      consumers: {team-b: {tokens: 300, period: none}}
`)
	llm := startUpstream(t)
	tg := startTollgate(t, "tollgate", cfg)
	front := startEnvoyRoutes(t, "envoy", tg.grpcAddr, llm, []envoyemu.Route{llmRoute("support-chat", "/support/", nil)}, nil)
	ctx := context.Background()
	general := openaiClient(front.URL, keyTeamB)
	support := openaiClient(front.URL+"/support", keyTeamB)
	p := userChat("gpt-4o", "Help me with my order.")
	p.MaxTokens = openai.Int(50)
	call := func(c openai.Client, usage string) error {
		_, err := c.Chat.Completions.New(ctx, p, plan("usage", usage)...)
		return err
	}

	if err := call(general, "input=10,output=20"); err != nil {
		t.Fatal(err)
	}
	expectQuotas(t, tg.adminAddr, 970, 300)
	if err := call(support, "input=10,output=280"); err != nil {
		t.Fatal(err)
	}
	expectQuotas(t, tg.adminAddr, 970, 10)

	err := call(support, "input=1,output=1")
	if apiErr, code := apiStatus(t, err); code != http.StatusForbidden || apiErr.Code != "insufficient_quota" {
		t.Fatalf("support call with 10 tokens left: got %d %q, want 403 insufficient_quota", code, apiErr.Code)
	}
	if err := call(general, "input=5,output=5"); err != nil {
		t.Fatalf("the general route must stay open when the support balance is spent: %v", err)
	}
	expectQuotas(t, tg.adminAddr, 960, 10)

	supportAdmin := front.URL + "/support/v1/chat/completions/quota"
	if code, body := postForm(t, supportAdmin+"/delta", keyAdmin, url.Values{"consumer": {"team-b"}, "value": {"500"}}); code != http.StatusOK || body != "delta quota successful" {
		t.Fatalf("in-band top-up under the support route: %d %q", code, body)
	}
	expectQuotas(t, tg.adminAddr, 960, 510)
	for _, q := range []struct{ url, want string }{
		{supportAdmin, `{"consumer":"team-b","quota":510}`},
		{front.URL + "/v1/chat/completions/quota", `{"consumer":"team-b","quota":960}`},
	} {
		if code, body := getWithKey(t, q.url+"?consumer=team-b", keyAdmin); code != http.StatusOK || body != q.want {
			t.Errorf("in-band query %s: %d %s, want %s", q.url, code, body, q.want)
		}
	}
	if err := call(support, "input=10,output=10"); err != nil {
		t.Fatalf("after the top-up the support route must pass: %v", err)
	}
	expectQuotas(t, tg.adminAddr, 960, 490)

	routes := map[string]int{}
	for _, r := range front.Records() {
		if r.ResponseCode == http.StatusOK {
			routes[r.RouteName]++
		}
	}
	if routes["support-chat"] != 4 || routes["llm"] != 3 {
		t.Errorf("successful requests per route: %v; want 4 on support-chat (2 calls, 2 admin calls) and 3 on llm", routes)
	}
	s := &stack{llm: llm, tollgate: tg, envoy: front}
	s.checkAgainstUpstream(t, "team-b")
}

// TestPoliciesPerRouteOverride runs Envoy routes with their own
// ExtProcPerRoute (typed_per_filter_config of envoy.filters.http.ext_proc)
// in front of one tollgate with a 5-requests-a-minute limit for team-b:
//
//   - disabled: true (what the shipped envoy.yaml does for its /ready
//     probe): Envoy does not call tollgate at all for the route, so its
//     requests are neither authenticated nor counted nor limited — a route
//     must only be exempted this way when it needs no policy;
//   - overrides.grpc_service: the route is processed by another ext_proc
//     cluster, here a second tollgate sharing the Redis whose config allows
//     team-b one request a minute: a stricter policy for that route alone,
//     as a per-route plugin instance is in Higress.
func TestPoliciesPerRouteOverride(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	limit := func(n int) string {
		return fmt.Sprintf(`
request_ratelimit:
  - rule_name: team-b-rpm
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: team-b, query_per_minute: %d}]}]
`, n)
	}
	llm := startUpstream(t)
	tg := startTollgate(t, "tollgate", baseConfig(redisStore([]string{rdb.Addr()}, "fail_closed", t.TempDir()), limit(5)))
	strict := startTollgate(t, "tollgate (strict)", baseConfig(redisStore([]string{rdb.Addr()}, "fail_closed", t.TempDir()),
		strings.Replace(limit(1), "team-b-rpm", "team-b-strict-rpm", 1)))
	override := func(o *extprocv3.ExtProcOverrides) *extprocv3.ExtProcPerRoute {
		return &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: o}}
	}
	mode := func(req, resp extprocv3.ProcessingMode_BodySendMode) *extprocv3.ExtProcPerRoute {
		return override(&extprocv3.ExtProcOverrides{ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode: extprocv3.ProcessingMode_SEND, RequestBodyMode: req,
			ResponseHeaderMode: extprocv3.ProcessingMode_SEND, ResponseBodyMode: resp}})
	}
	routes := []envoyemu.Route{
		llmRoute("no-req-body", "/a/", mode(extprocv3.ProcessingMode_NONE, extprocv3.ProcessingMode_STREAMED)),
		llmRoute("no-resp-body", "/b/", mode(extprocv3.ProcessingMode_BUFFERED, extprocv3.ProcessingMode_NONE)),
		llmRoute("open", "/open/", &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}}),
		llmRoute("strict", "/strict/", override(&extprocv3.ExtProcOverrides{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "tollgate-strict"}}}})),
	}
	front := startEnvoyRoutes(t, "envoy", tg.grpcAddr, llm, routes, map[string]string{"tollgate-strict": strict.grpcAddr})
	ctx := context.Background()
	call := func(prefix, key string) error {
		c := openaiClient(front.URL+prefix, key)
		_, err := c.Chat.Completions.New(ctx, userChat("gpt-4o", "Which policy applies here?"), plan("usage", "input=7,output=5")...)
		return err
	}

	t.Run("disabled route is not processed", func(t *testing.T) {
		before := len(llm.Requests())
		if err := call("/open", "sk-no-such-key"); err != nil {
			t.Fatalf("a route with ext_proc disabled is not checked by tollgate: %v", err)
		}
		r := llm.Requests()[before]
		if r.Header.Get("x-tollgate-consumer") != "" || r.Header.Get("authorization") != "Bearer sk-no-such-key" {
			t.Errorf("the request went upstream as the client sent it: consumer %q, authorization %q",
				r.Header.Get("x-tollgate-consumer"), r.Header.Get("authorization"))
		}
		// Past team-b's 5 requests a minute, and not counted.
		for i := range 6 {
			if err := call("/open", keyTeamB); err != nil {
				t.Fatalf("call %d on the open route: %v", i, err)
			}
		}
		if rec := lastRecord(t, front, "open"); rec.MessagesSent != 0 {
			t.Errorf("Envoy sent %d ext_proc messages on a disabled route", rec.MessagesSent)
		}
		expectTotals(t, tg.adminAddr, "team-b", totals{})
	})

	t.Run("grpc_service override applies the other instance's policy", func(t *testing.T) {
		if err := call("/strict", keyTeamB); err != nil {
			t.Fatal(err)
		}
		err := call("/strict", keyTeamB)
		apiErr, code := apiStatus(t, err)
		if code != http.StatusTooManyRequests || !strings.Contains(apiErr.RawJSON(), "team-b-strict-rpm") {
			t.Fatalf("second call on the strict route: got %d %s, want 429 from team-b-strict-rpm", code, apiErr.RawJSON())
		}
		for i := range 3 {
			if err := call("", keyTeamB); err != nil {
				t.Fatalf("call %d on the default route, under its 5-a-minute limit: %v", i, err)
			}
		}
		// Both instances share the store: team-b's usage is one total, of
		// the calls on the processed routes only.
		want := llm.totals("team-b")
		if want.Requests != 4 {
			t.Errorf("the provider saw %d processed calls of team-b, want 4", want.Requests)
		}
		expectTotals(t, tg.adminAddr, "team-b", want)
		expectTotals(t, strict.adminAddr, "team-b", want)
	})

	// A route whose processing mode sends no request body (or no response
	// body) would let calls through unadmitted (or unmetered): tollgate
	// asks for the bodies with a mode override, which the shipped filter
	// allows.
	t.Run("routes that send no bodies are still admitted and metered", func(t *testing.T) {
		for _, prefix := range []string{"/a", "/b"} {
			if err := call(prefix, keyTeamB); err != nil {
				t.Fatalf("call on %s: %v", prefix, err)
			}
		}
		want := llm.totals("team-b")
		if want.Requests != 6 {
			t.Errorf("the provider saw %d processed calls of team-b, want 6", want.Requests)
		}
		expectTotals(t, tg.adminAddr, "team-b", want)
	})
}

// lastRecord returns the access record of the last request on route.
func lastRecord(t *testing.T, e *envoy, route string) envoyemu.Record {
	t.Helper()
	var out *envoyemu.Record
	eventually(t, "the access record of route "+route, func() error {
		recs := e.Records()
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].RouteName == route {
				out = &recs[i]
				return nil
			}
		}
		return errors.New("none yet")
	})
	return *out
}

// TestPoliciesInFlightTwoReplicas caps team-b at two requests in flight,
// with a 1 s lease, across two tollgate replicas on one Redis: one runs as
// a process, so that it can be killed. With one slow stream on each, a
// third call on either replica is refused as a concurrency limit, also
// after several leases (the streams renew theirs). When the process is
// killed its stream's slot is not released, but comes back once its lease
// runs out; then the limit still holds.
func TestPoliciesInFlightTwoReplicas(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	cfg := func() string {
		return policyConfig(redisStore([]string{rdb.Addr()}, "fail_closed", t.TempDir()),
			"    limits: {max_in_flight: 2}", "processing: {in_flight_lease: 1s}")
	}
	llm := startUpstream(t)
	grpcA, adminA := freeAddr(t), freeAddr(t)
	procA := startProcess(t, writeConfig(t, t.TempDir(), cfg()), grpcA, adminA, newLog(t, "tollgate A (process)"))
	b := startTollgate(t, "tollgate B", cfg())
	envA := startEnvoy(t, "envoy A", grpcA, llm)
	envB := startEnvoy(t, "envoy B", b.grpcAddr, llm)
	ca, cb := openaiClient(envA.URL, keyTeamB), openaiClient(envB.URL, keyTeamB)
	ctx := context.Background()
	quick := func(c openai.Client) error {
		_, err := c.Chat.Completions.New(ctx, userChat("gpt-4o", "Just one word."), plan("chunks", "1")...)
		return err
	}
	// refusedInFlight checks err is a concurrency refusal.
	refusedInFlight := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: admitted, over max_in_flight 2", what)
		}
		apiErr, code := apiStatus(t, err)
		if code != http.StatusTooManyRequests || apiErr.Code != "concurrency_limit_exceeded" || !strings.Contains(apiErr.Message, "concurrency limit") {
			t.Fatalf("%s: got %d %q %q, want 429 concurrency_limit_exceeded saying it is a concurrency limit", what, code, apiErr.Code, apiErr.Message)
		}
	}

	// Two 8 s streams (200 chunks, 40 ms apart): the one on A is cut by
	// the kill; the one on B holds its slot through the whole scenario.
	onA := streamInBackground(ca, 200, "killed")
	onB := streamInBackground(cb, 200, "survivor")
	llm.waitRequests(t, 2)
	refusedInFlight("third call on A", quick(ca))
	refusedInFlight("third call on B", quick(cb))
	time.Sleep(1500 * time.Millisecond) // longer than a lease: the streams must have renewed theirs
	refusedInFlight("third call on B after a lease", quick(cb))

	procA.signal(t, syscall.SIGKILL)
	killed := time.Now()
	if res := <-onA; res.err == nil {
		t.Error("the stream on the killed replica ended cleanly")
	}
	var tries int
	var firstAt time.Duration
	for {
		err := quick(cb)
		tries++
		since := time.Since(killed)
		if tries == 1 {
			firstAt = since
		}
		if err == nil {
			select {
			case res := <-onB:
				t.Fatalf("admitted %v after the kill only once the surviving stream had ended (%v): the dead replica's slot did not come back",
					since.Round(time.Millisecond), res.err)
			default:
			}
			t.Logf("the killed replica's slot came back %v after the kill (lease 1s), after %d refused tries; first try at %v",
				since.Round(time.Millisecond), tries-1, firstAt.Round(time.Millisecond))
			if tries == 1 && since < 500*time.Millisecond {
				t.Errorf("admitted %v after the kill: the dead replica's slot was not held for its lease", since)
			}
			break
		}
		refusedInFlight("call while the dead replica's slot is leased", err)
		if since > 15*time.Second {
			t.Fatalf("the killed replica's slot did not come back within %v (lease 1s)", since)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The slot came back, and only one: with the survivor still streaming
	// and a new stream, the limit is full again.
	before := len(llm.Requests())
	second := streamInBackground(cb, 30, "second")
	llm.waitRequests(t, before+1)
	refusedInFlight("third call after the slot came back", quick(cb))
	for _, r := range []<-chan streamResult{onB, second} {
		if res := <-r; res.err != nil {
			t.Errorf("stream on the surviving replica: %v", res.err)
		}
	}
	notKilled := func(r fakellm.Request) bool { return r.Header.Get("x-e2e-tag") != "killed" }
	expectTotals(t, b.adminAddr, "team-b", llm.totalsWhere("team-b", notKilled))
}

// TestPoliciesDowngrade degrades instead of refusing, on real Redis.
func TestPoliciesDowngrade(t *testing.T) {
	t.Parallel()
	p := userChat("gpt-4o", "Summarize the quarter.")
	p.MaxTokens = openai.Int(600)
	const reported = "input=10,output=600"
	// callAs makes the call and returns the response's
	// x-tollgate-downgraded header and the model that reached the provider.
	callAs := func(t *testing.T, s *stack, key string) (downgraded, upstreamModel string, err error) {
		t.Helper()
		before := len(s.llm.Requests())
		var resp *http.Response
		c := openaiClient(s.envoy.URL, key)
		_, err = c.Chat.Completions.New(context.Background(), p, append(plan("usage", reported), option.WithResponseInto(&resp))...)
		if reqs := s.llm.Requests(); len(reqs) > before {
			upstreamModel = gjson.GetBytes(reqs[before].Body, "model").String()
		}
		if err == nil {
			downgraded = resp.Header.Get("x-tollgate-downgraded")
		}
		return downgraded, upstreamModel, err
	}
	// usageOf is what the store committed for consumer's model.
	usageOf := func(t *testing.T, s *stack, consumer, model string) usageRow {
		t.Helper()
		var got usageRow
		eventually(t, "usage of "+model, func() error {
			var err error
			got, err = committedUsage(t, s.tollgate.adminAddr, usageKey{consumer, model})
			return err
		})
		return got
	}
	// byModel is what the provider reported per model that reached it.
	byModel := func(s *stack, consumer string) map[string]usageRow {
		out := map[string]usageRow{}
		for k, v := range s.llm.expectedUsage(t) {
			if k.consumer == consumer {
				out[k.model] = v
			}
		}
		return out
	}

	t.Run("rate rule", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.Start(t)
		// gpt-4o has 1,000 tokens a minute and then degrades to
		// gpt-4o-mini, which has 1,500 of its own.
		s := newStack(t, baseConfig(redisStore([]string{rdb.Addr()}, "fail_closed", t.TempDir()), `
token_ratelimit:
  - rule_name: gpt-4o-budget
    match: {model: gpt-4o}
    global_threshold: {token_per_minute: 1000}
    on_exceeded: downgrade
    downgrade: {model: gpt-4o-mini}
  - rule_name: mini-budget
    match: {model: gpt-4o-mini}
    global_threshold: {token_per_minute: 1500}
`))
		for i, want := range []struct{ downgraded, model string }{
			{"", "gpt-4o"},
			{"gpt-4o -> gpt-4o-mini", "gpt-4o-mini"},
			{"gpt-4o -> gpt-4o-mini", "gpt-4o-mini"},
		} {
			d, m, err := callAs(t, s, keyTeamB)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if d != want.downgraded || m != want.model {
				t.Errorf("call %d: x-tollgate-downgraded %q, provider got model %q; want %q and %q", i, d, m, want.downgraded, want.model)
			}
		}
		// Both budgets spent: refused with the first refusal.
		_, m, err := callAs(t, s, keyTeamB)
		apiErr, code := apiStatus(t, err)
		if code != http.StatusTooManyRequests || !strings.Contains(apiErr.RawJSON(), "gpt-4o-budget") || m != "" {
			t.Errorf("with both budgets spent: got %d %s (provider got %q), want 429 naming gpt-4o-budget", code, apiErr.RawJSON(), m)
		}
		up := byModel(s, "team-b")
		for _, model := range []string{"gpt-4o", "gpt-4o-mini"} {
			if got := usageOf(t, s, "team-b", model); got != up[model] {
				t.Errorf("%s: the store has %+v, the provider reported %+v", model, got, up[model])
			}
		}
		if up["gpt-4o"].Requests != 1 || up["gpt-4o-mini"].Requests != 2 {
			t.Errorf("requests per model at the provider: %+v", up)
		}
	})

	t.Run("quota", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.Start(t)
		// team-a has 610 tokens per model, one call's worth; once gpt-4o's
		// are spent it goes on with gpt-4o-mini's.
		s := newStack(t, baseConfig(redisStore([]string{rdb.Addr()}, "fail_closed", t.TempDir()), `
quota:
  consumers: {team-a: {tokens: 610, period: none, per_model: true}}
  on_exceeded: downgrade
  downgrade: {model: gpt-4o-mini}
`))
		for i, want := range []struct{ downgraded, model string }{
			{"", "gpt-4o"},
			{"gpt-4o -> gpt-4o-mini", "gpt-4o-mini"},
		} {
			d, m, err := callAs(t, s, keyTeamA)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if d != want.downgraded || m != want.model {
				t.Errorf("call %d: x-tollgate-downgraded %q, provider got model %q; want %q and %q", i, d, m, want.downgraded, want.model)
			}
		}
		_, m, err := callAs(t, s, keyTeamA)
		if apiErr, code := apiStatus(t, err); code != http.StatusForbidden || apiErr.Code != "insufficient_quota" || m != "" {
			t.Errorf("with both balances spent: got %d %q (provider got %q), want 403 insufficient_quota", code, apiErr.Code, m)
		}
		for _, model := range []string{"gpt-4o", "gpt-4o-mini"} {
			var st struct {
				Remaining int64 `json:"remaining"`
			}
			if err := adminGet(t, s.tollgate.adminAddr, "/v1/quota/team-a?model="+model, &st); err != nil {
				t.Fatal(err)
			}
			if st.Remaining != 0 {
				t.Errorf("team-a's %s balance is %d, want 0", model, st.Remaining)
			}
		}
		up := byModel(s, "team-a")
		if got := usageOf(t, s, "team-a", "gpt-4o-mini"); got != up["gpt-4o-mini"] || got.Requests != 1 {
			t.Errorf("gpt-4o-mini: the store has %+v, the provider reported %+v", got, up["gpt-4o-mini"])
		}
	})
}

// breakerCall is how one call ended when a breaker may answer it.
type breakerCall struct {
	// upstream is true when the provider received the call.
	upstream bool
	status   int
	code     string
	// retryAfter is the retry-after header of a refusal, in seconds.
	retryAfter int
	took       time.Duration
}

// TestPoliciesBreaker fails half of a provider's calls: its breaker
// (min_requests 4, error_rate 0.5, cool_down 1s) opens, and calls then
// fail fast with 503 and retry-after without reaching the provider. After
// the cool-down a probe that fails opens it again for a doubled cool-down;
// once the provider recovers, the next probe closes it and calls flow.
// Latencies are reported, not asserted.
func TestPoliciesBreaker(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	env := map[string]string{"E2E_OPENAI_KEY": providerKeyOpenAI}
	cfg := baseConfig(redisStore([]string{rdb.Addr()}, "fail_closed", t.TempDir()), `
providers:
  - {name: openai, path_prefix: /v1/, api_key_env: E2E_OPENAI_KEY}
breaker: {min_requests: 4, error_rate: 0.5, window: 10s, cool_down: 1s, max_cool_down: 4s, half_open_probes: 1}
`)
	llm := startUpstream(t)
	tg, _ := startTollgateEnv(t, "tollgate", cfg, env)
	front := startEnvoy(t, "envoy", tg.grpcAddr, llm)
	c := openaiClient(front.URL, keyTeamB)
	call := func(fail bool) breakerCall {
		var opts []option.RequestOption
		if fail {
			opts = plan("fault", "status=500")
		}
		before := len(llm.Requests())
		start := time.Now()
		_, err := c.Chat.Completions.New(context.Background(), userChat("gpt-4o", "Are you up?"), append(opts, plan("chunks", "2")...)...)
		out := breakerCall{took: time.Since(start), upstream: len(llm.Requests()) > before, status: http.StatusOK}
		if err != nil {
			apiErr, code := apiStatus(t, err)
			out.status, out.code = code, apiErr.Code
			out.retryAfter, _ = strconv.Atoi(apiErr.Response.Header.Get("retry-after"))
		}
		return out
	}
	failingFast := func(r breakerCall) bool {
		return r.status == http.StatusServiceUnavailable && r.code == "provider_unavailable" && !r.upstream
	}
	state := func() string {
		var h struct {
			Providers []struct {
				Name      string  `json:"name"`
				State     string  `json:"state"`
				ErrorRate float64 `json:"error_rate"`
			} `json:"providers"`
		}
		if err := adminGet(t, tg.adminAddr, "/v1/providers/health", &h); err != nil {
			t.Fatal(err)
		}
		for _, p := range h.Providers {
			if p.Name == "openai" {
				return p.State
			}
		}
		return "untracked"
	}

	// Every other call fails until the breaker opens.
	calls := 0
	for ; ; calls++ {
		if calls == 12 {
			t.Fatalf("the breaker did not open after %d calls, half of them failing", calls)
		}
		r := call(calls%2 == 0)
		if failingFast(r) {
			t.Logf("opened after %d calls to the provider, half failing; state %s", calls, state())
			break
		}
		if !r.upstream {
			t.Fatalf("call %d did not reach the provider and was not refused by the breaker: %+v", calls, r)
		}
	}
	if calls < 4 {
		t.Errorf("opened after %d calls, under min_requests 4", calls)
	}
	opened := time.Now()
	var fast []time.Duration
	for i := range 5 {
		r := call(false)
		if !failingFast(r) || r.retryAfter < 1 {
			t.Fatalf("call %d while open: %+v, want 503 provider_unavailable with retry-after, not reaching the provider", i, r)
		}
		fast = append(fast, r.took)
	}
	t.Logf("fail-fast latencies while open: %v", fast)
	if s := state(); s != "open" {
		t.Errorf("providers/health says %s while open", s)
	}

	// After the cool-down, the first call is the probe: it fails, and the
	// breaker opens again.
	probe := waitProbe(t, call, true)
	t.Logf("first probe %v after opening: %+v", time.Since(opened).Round(time.Millisecond), probe)
	if probe.status != http.StatusInternalServerError {
		t.Fatalf("the probe got %+v, want the provider's 500", probe)
	}
	reopened := time.Now()
	if r := call(false); !failingFast(r) {
		t.Fatalf("after a failed probe: %+v, want the breaker open again", r)
	} else {
		t.Logf("re-opened with retry-after %ds (cool-down doubled to 2s)", r.retryAfter)
	}

	// The provider has recovered: the next probe closes the breaker.
	probe = waitProbe(t, call, false)
	t.Logf("second probe %v after re-opening: %+v", time.Since(reopened).Round(time.Millisecond), probe)
	if probe.status != http.StatusOK {
		t.Fatalf("the probe got %+v, want success", probe)
	}
	for i := range 4 {
		if r := call(false); r.status != http.StatusOK || !r.upstream {
			t.Fatalf("call %d after the breaker closed: %+v", i, r)
		}
	}
	if s := state(); s != "closed" {
		t.Errorf("providers/health says %s after recovery", s)
	}
	m := scrapeMetrics(t, tg.adminAddr)
	if n := m.sum("tollgate_requests_total", map[string]string{"decision": "provider_unavailable"}, "provider")["openai"]; n < 6 {
		t.Errorf("tollgate_requests_total{decision=provider_unavailable} is %v, want at least the 6 refusals", n)
	}
	s := &stack{llm: llm, tollgate: tg, envoy: front}
	s.checkAgainstUpstream(t, "team-b")
}

// waitProbe calls until one reaches the provider (the breaker's probe),
// checking that every call before it failed fast, and returns the probe.
func waitProbe(t *testing.T, call func(fail bool) breakerCall, fail bool) breakerCall {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		r := call(fail)
		if r.upstream {
			return r
		}
		if r.status != http.StatusServiceUnavailable || r.code != "provider_unavailable" {
			t.Fatalf("while open: %+v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no probe reached the provider within 15s")
	return breakerCall{}
}
