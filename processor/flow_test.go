package processor

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/processor/tokens"
	"github.com/tollgate-ai/tollgate/processor/usage"
)

// chatStream returns an OpenAI chat stream of the given deltas; with usage
// it ends with the usage-only chunk OpenAI sends for include_usage.
func chatStream(deltas []string, prompt, completion int) (stream []byte, usageEvent string) {
	var b bytes.Buffer
	for _, d := range deltas {
		fmt.Fprintf(&b, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%s}}],\"usage\":null}\n\n", strconv.Quote(d))
	}
	fmt.Fprintf(&b, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n")
	if prompt >= 0 {
		usageEvent = fmt.Sprintf("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", prompt, completion, prompt+completion)
		b.WriteString(usageEvent)
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes(), usageEvent
}

// forwarded applies the body mutation of a response-body answer the way
// Envoy does in STREAMED mode: the chunk is replaced, or goes on as is.
func forwarded(resp *extprocv3.ProcessingResponse, chunk []byte) []byte {
	if m := resp.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
		return m.GetBody()
	}
	return chunk
}

func TestStreamedChatSettlesProviderUsageAndHidesAddedUsageChunk(t *testing.T) {
	deltas := []string{"Hel", "lo", " wor", "ld — ", "é", "😀", "!"}
	stream, usageEvent := chatStream(deltas, 17, 9)
	for _, split := range []int{1, 3, 7, len(stream)} {
		t.Run(fmt.Sprintf("chunks of %d bytes", split), func(t *testing.T) {
			f := newFixture(t, "")
			x := f.envoy.open()
			x.send(requestHeaders(false, chatHeaders("sk-a")...))
			resp := x.send(requestBody(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			mut := resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
			if !gjson.GetBytes(mut, "stream_options.include_usage").Bool() {
				t.Fatalf("include_usage not added: %s", mut)
			}
			set, _ := mutationHeaders(resp.GetRequestBody().GetResponse().GetHeaderMutation())
			if set["content-length"] != strconv.Itoa(len(mut)) {
				t.Errorf("content-length %q for a %d-byte body", set["content-length"], len(mut))
			}
			x.send(responseHeaders(false, ":status", "200", "content-type", "text/event-stream"))
			var out []byte
			var last *extprocv3.ProcessingResponse
			for i := 0; i < len(stream); i += split {
				end := min(i+split, len(stream))
				last = x.send(responseBody(stream[i:end], end == len(stream)))
				out = append(out, forwarded(last, stream[i:end])...)
			}
			want := bytes.Replace(stream, []byte(usageEvent), nil, 1)
			if !bytes.Equal(out, want) {
				t.Fatalf("client got\n%s\nwant\n%s", out, want)
			}
			md := last.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
			if md["consumer"].GetStringValue() != "team-a" || md["total_tokens"].GetNumberValue() != 26 {
				t.Errorf("dynamic metadata = %v", md)
			}
			x.close()
			got := f.totals(t, "team-a")
			if got.Requests != 1 || got.Input != 17 || got.Output != 9 || got.Estimated != 0 {
				t.Fatalf("totals = %+v, want the provider's 17+9", got)
			}
		})
	}
}

func TestClientThatAskedForUsageKeepsIt(t *testing.T) {
	f := newFixture(t, "")
	stream, _ := chatStream([]string{"a", "b"}, 5, 2)
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	resp := x.send(requestBody(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`))
	if resp.GetRequestBody().GetResponse().GetBodyMutation() != nil {
		t.Fatal("the body of a client that asked for usage must not change")
	}
	x.send(responseHeaders(false, ":status", "200", "content-type", "text/event-stream"))
	last := x.send(responseBody(stream, true))
	if got := forwarded(last, stream); !bytes.Equal(got, stream) {
		t.Fatalf("stream changed:\n%s", got)
	}
	x.close()
	if got := f.totals(t, "team-a"); got.Input != 5 || got.Output != 2 {
		t.Fatalf("totals = %+v", got)
	}
}

// TestCancelledStreamChargesWhatWasStreamed: Envoy cancels the gRPC stream
// without end_of_stream when the client disconnects; the streamed part is
// still charged.
func TestCancelledStreamChargesWhatWasStreamed(t *testing.T) {
	f := newFixture(t, "")
	deltas := []string{"The quick brown fox", " jumps over", " the lazy dog", " and keeps running"}
	stream, _ := chatStream(deltas, -1, 0)
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	x.send(requestBody(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Tell me a story about a fox."}]}`))
	x.send(responseHeaders(false, ":status", "200", "content-type", "text/event-stream"))
	// Two full events reach the client, then it goes away.
	cut := bytes.Index(stream, []byte(" the lazy dog"))
	cut = bytes.LastIndex(stream[:cut], []byte("data:"))
	x.send(responseBody(stream[:cut], false))
	x.cancel()

	enc, _ := tokens.Get("o200k_base")
	wantOut := int64(enc.Count("The quick brown fox jumps over"))
	got := waitTotals(t, f, "team-a", func(d totalsView) bool { return d.Requests == 1 })
	if got.Output != wantOut || got.Estimated != 1 || got.Input == 0 {
		t.Fatalf("totals = %+v, want output %d counted from the streamed text, input estimated", got, wantOut)
	}
}

func TestUpstreamErrorChargesNoTokens(t *testing.T) {
	f := newFixture(t, `
token_ratelimit:
  - rule_name: tpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 10000}]}]
`)
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	x.send(requestBody(`{"model":"gpt-4o","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}`))
	x.send(responseHeaders(false, ":status", "429", "content-type", "application/json"))
	x.send(responseBody([]byte(`{"error":{"message":"slow down","type":"requests"}}`), true))
	x.close()
	got := f.totals(t, "team-a")
	if got.Requests != 1 || got.Total != 0 {
		t.Fatalf("totals = %+v, want one request and no tokens", got)
	}
	// The reservation went back to the window: the next response reports
	// the whole window as remaining.
	x = f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	x.send(requestBody(`{"model":"gpt-4o","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`))
	resp := x.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
	set, _ := mutationHeaders(resp.GetResponseHeaders().GetResponse().GetHeaderMutation())
	remaining, _ := strconv.Atoi(set["x-ratelimit-remaining-tokens"])
	if set["x-ratelimit-limit-tokens"] != "10000" || remaining < 10000-50 {
		t.Fatalf("rate headers = %v: the failed call's reservation was not returned", set)
	}
	x.cancel()
}

func TestTokenLimitRefusesWithHeaders(t *testing.T) {
	f := newFixture(t, `
token_ratelimit:
  - rule_name: tpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 1000}]}]
    rejected_msg: "Too many tokens"
request_ratelimit:
  - rule_name: rpm
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: team-a, query_per_minute: 100}]}]
`)
	body := `{"model":"gpt-4o","max_tokens":600,"messages":[{"role":"user","content":"hi"}]}`
	// The first request reserves ~600 of 1000 tokens; remaining goes down.
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	x.send(requestBody(body))
	resp := x.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
	set, _ := mutationHeaders(resp.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if r, _ := strconv.Atoi(set["x-ratelimit-remaining-tokens"]); r > 400 || set["x-ratelimit-limit-tokens"] != "1000" {
		t.Errorf("after a 600-token reservation: %v", set)
	}
	if set["x-ratelimit-limit-requests"] != "100" || set["x-ratelimit-remaining-requests"] != "99" {
		t.Errorf("request headers: %v", set)
	}

	// While it is in flight, a second one does not fit: refused before it
	// reaches the provider.
	y := f.envoy.open()
	y.send(requestHeaders(false, chatHeaders("sk-a")...))
	ir := immediateOf(t, y.send(requestBody(body)))
	if ir.GetStatus().GetCode() != 429 {
		t.Fatalf("status %d", ir.GetStatus().GetCode())
	}
	msg, typ, code := decodeError(t, ir.GetBody())
	if msg != "Too many tokens" || typ != "tokens" || code != "rate_limit_exceeded" {
		t.Errorf("error = %q %q %q", msg, typ, code)
	}
	hs, _ := mutationHeaders(ir.GetHeaders())
	if ra, err := strconv.Atoi(hs["retry-after"]); err != nil || ra < 1 || ra > 61 { // a minute window plus its one-second bucket
		t.Errorf("retry-after = %q", hs["retry-after"])
	}
	for _, h := range []string{"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"} {
		if hs[h] == "" {
			t.Errorf("429 without %s: %v", h, hs)
		}
	}
	x.cancel()
}

func TestQuotaExhaustedIs403(t *testing.T) {
	f := newFixture(t, `
quota:
  consumers: {team-b: {tokens: 50}}
`)
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-b")...))
	x.send(requestBody(`{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	x.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
	x.send(responseBody([]byte(`{"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":20,"total_tokens":50}}`), true))
	x.close()

	y := f.envoy.open()
	y.send(requestHeaders(false, chatHeaders("sk-b")...))
	ir := immediateOf(t, y.send(requestBody(`{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)))
	msg, typ, _ := decodeError(t, ir.GetBody())
	if ir.GetStatus().GetCode() != 403 || typ != "insufficient_quota" || msg != "Request denied by ai quota check, No quota left" {
		t.Fatalf("got %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
}

func TestInBandQuotaAdmin(t *testing.T) {
	f := newFixture(t, `
quota:
  admin_consumer: admin
  consumers: {team-a: {tokens: 0}}
`)
	x := f.envoy.open()
	x.send(requestHeaders(false, ":method", "POST", ":path", "/v1/chat/completions/quota/delta", ":authority", "gw",
		"content-type", "application/x-www-form-urlencoded", "authorization", "Bearer sk-admin"))
	ir := immediateOf(t, x.send(requestBody("consumer=team-a&value=100")))
	if ir.GetStatus().GetCode() != 200 || string(ir.GetBody()) != "delta quota successful" {
		t.Fatalf("delta: %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	x = f.envoy.open()
	ir = immediateOf(t, x.send(requestHeaders(true, ":method", "GET", ":path", "/v1/chat/completions/quota?consumer=team-a", ":authority", "gw",
		"authorization", "Bearer sk-admin")))
	if ir.GetStatus().GetCode() != 200 || string(ir.GetBody()) != `{"consumer":"team-a","quota":100}` {
		t.Fatalf("query: %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	// Another consumer cannot use the admin paths.
	x = f.envoy.open()
	ir = immediateOf(t, x.send(requestHeaders(true, ":method", "GET", ":path", "/v1/chat/completions/quota?consumer=team-a", ":authority", "gw",
		"authorization", "Bearer sk-a")))
	if ir.GetStatus().GetCode() != 403 {
		t.Fatalf("non-admin: %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
}

func TestUnknownPaths(t *testing.T) {
	pass := newFixture(t, "")
	x := pass.envoy.open()
	resp := x.send(requestHeaders(true, ":method", "GET", ":path", "/v1/models", ":authority", "h", "authorization", "Bearer sk-a"))
	if resp.GetImmediateResponse() != nil || resp.GetModeOverride().GetResponseBodyMode().String() != "NONE" {
		t.Fatalf("an authenticated call to another path passes uncounted: %v", resp)
	}
	x.cancel()

	deny := newFixture(t, "processing: {unknown_paths: deny}")
	x = deny.envoy.open()
	ir := immediateOf(t, x.send(requestHeaders(true, ":method", "GET", ":path", "/v1/models", ":authority", "h", "authorization", "Bearer sk-a")))
	if ir.GetStatus().GetCode() != 404 {
		t.Fatalf("deny: %d", ir.GetStatus().GetCode())
	}
}

func TestAnthropicErrorsUseAnthropicShape(t *testing.T) {
	f := newFixture(t, "")
	x := f.envoy.open()
	ir := immediateOf(t, x.send(requestHeaders(false, ":method", "POST", ":path", "/v1/messages", ":authority", "h", "x-api-key", "wrong")))
	if ir.GetStatus().GetCode() != 401 ||
		gjson.GetBytes(ir.GetBody(), "type").String() != "error" ||
		gjson.GetBytes(ir.GetBody(), "error.type").String() != "authentication_error" {
		t.Fatalf("got %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
}

type totalsView = struct {
	Requests, Input, Output, Total, Estimated int64
}

// waitTotals polls the totals until cond holds: a cancelled stream settles
// on the server's side after the client has already moved on.
func waitTotals(t *testing.T, f *fixture, consumer string, cond func(totalsView) bool) totalsView {
	t.Helper()
	var v totalsView
	for range 2000 {
		d := f.totals(t, consumer)
		v = totalsView{d.Requests, d.Input, d.Output, d.Total, d.Estimated}
		if cond(v) {
			return v
		}
		sleepBriefly()
	}
	t.Fatalf("totals never reached the condition: %+v", v)
	return v
}

func sleepBriefly() { time.Sleep(5 * time.Millisecond) }

func TestRequestLargerThanTheLimitSaysSo(t *testing.T) {
	f := newFixture(t, `
token_ratelimit:
  - rule_name: tpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 1000}]}]
`)
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	ir := immediateOf(t, x.send(requestBody(`{"model":"gpt-4o","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`)))
	msg, _, _ := decodeError(t, ir.GetBody())
	hs, _ := mutationHeaders(ir.GetHeaders())
	if ir.GetStatus().GetCode() != 429 || !strings.Contains(msg, "more than the limit of 1000") {
		t.Fatalf("got %d %q", ir.GetStatus().GetCode(), msg)
	}
	if _, ok := hs["retry-after"]; ok {
		t.Errorf("retry-after promises a wait that cannot help: %v", hs)
	}
}

// TestCustomJSONRefusalIsSentAsWritten: Higress sends rejected_msg as the
// body; a JSON message keeps its shape, plain text goes in an OpenAI error.
func TestCustomJSONRefusalIsSentAsWritten(t *testing.T) {
	f := newFixture(t, `
request_ratelimit:
  - rule_name: rpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", query_per_minute: 1}]}]
    rejected_code: 503
    rejected_msg: '{"code":-1,"msg":"busy"}'
`)
	for i := range 2 {
		x := f.envoy.open()
		x.send(requestHeaders(false, chatHeaders("sk-a")...))
		resp := x.send(requestBody(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		if i == 0 {
			if resp.GetImmediateResponse() != nil {
				t.Fatal("first request refused")
			}
			x.cancel()
			continue
		}
		ir := immediateOf(t, resp)
		if ir.GetStatus().GetCode() != 503 || string(ir.GetBody()) != `{"code":-1,"msg":"busy"}` {
			t.Fatalf("got %d %s", ir.GetStatus().GetCode(), ir.GetBody())
		}
	}
}

// TestTierLimitsAndQuota: a consumer's tier brings windows and a quota of
// its own, beside the rules.
func TestTierLimitsAndQuota(t *testing.T) {
	f := newFixtureConsumers(t, `
consumers:
  - {name: t1, keys: [sk-t1], tier: free}
  - {name: t2, keys: [sk-t2]}
tiers:
  - name: free
    limits: {query_per_minute: 1}
    quota: {tokens: 1000, period: day}
`)
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-t1")...))
	resp := x.send(requestBody(`{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	if resp.GetImmediateResponse() != nil {
		t.Fatalf("first request refused: %s", resp.GetImmediateResponse().GetBody())
	}
	x.cancel()
	y := f.envoy.open()
	y.send(requestHeaders(false, chatHeaders("sk-t1")...))
	ir := immediateOf(t, y.send(requestBody(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)))
	msg, _, _ := decodeError(t, ir.GetBody())
	if ir.GetStatus().GetCode() != 429 || !strings.Contains(msg, "requests per minute (this consumer's own limit)") {
		t.Fatalf("got %d %q", ir.GetStatus().GetCode(), msg)
	}
	q := f.server.Policy().Quota
	if b := q.Balance("t1", "", f.now); b == nil || b.Allotment != 1000 {
		t.Fatalf("the tier's quota does not apply: %+v", b)
	}
	if b := q.Balance("t2", "", f.now); b != nil {
		t.Fatalf("a consumer without tier or quota got one: %+v", b)
	}
}

func withRoute(req *extprocv3.ProcessingRequest, route string) *extprocv3.ProcessingRequest {
	s, _ := structpb.NewStruct(map[string]any{"xds.route_name": route})
	req.Attributes = map[string]*structpb.Struct{"envoy.filters.http.ext_proc": s}
	return req
}

// TestRouteScopedQuotas: one consumer holds separate quotas per route; the
// in-band admin endpoints act on the quota of the route they are called
// under.
func TestRouteScopedQuotas(t *testing.T) {
	f := newFixture(t, `
quota:
  admin_consumer: admin
  default: {tokens: 1000}
  routes:
    - name: support
      match: {route: support-chat}
      consumers: {team-a: {tokens: 100}}
`)
	call := func(route string, prompt, completion int) {
		t.Helper()
		x := f.envoy.open()
		x.send(withRoute(requestHeaders(false, chatHeaders("sk-a")...), route))
		resp := x.send(requestBody(`{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
		if ir := resp.GetImmediateResponse(); ir != nil {
			t.Fatalf("refused on %q: %s", route, ir.GetBody())
		}
		x.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
		x.send(responseBody([]byte(fmt.Sprintf(`{"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d}}`, prompt, completion)), true))
		x.close()
	}
	call("support-chat", 30, 10)
	call("general", 300, 100)
	q := f.server.Policy().Quota
	ctx := context.Background()
	if v, _ := f.store.GetBalance(ctx, q.ScopedBalance("support", "team-a", "", f.now)); v != 60 {
		t.Errorf("support balance = %d, want 100-40", v)
	}
	if v, _ := f.store.GetBalance(ctx, q.Balance("team-a", "", f.now)); v != 600 {
		t.Errorf("unscoped balance = %d, want 1000-400", v)
	}
	// Topped up through the gateway under the support route: only that
	// quota moves.
	x := f.envoy.open()
	x.send(withRoute(requestHeaders(false, ":method", "POST", ":path", "/v1/chat/completions/quota/delta", ":authority", "gw",
		"authorization", "Bearer sk-admin"), "support-chat"))
	if ir := immediateOf(t, x.send(requestBody("consumer=team-a&value=40"))); ir.GetStatus().GetCode() != 200 {
		t.Fatalf("delta: %s", ir.GetBody())
	}
	if v, _ := f.store.GetBalance(ctx, q.ScopedBalance("support", "team-a", "", f.now)); v != 100 {
		t.Errorf("support balance after top-up = %d, want 100", v)
	}
	if v, _ := f.store.GetBalance(ctx, q.Balance("team-a", "", f.now)); v != 600 {
		t.Errorf("unscoped balance moved: %d", v)
	}
}

// TestDowngradeInsteadOfRefusal: a request over a downgrading rule goes on
// with the cheaper model, is charged there, and the client is told.
func TestDowngradeInsteadOfRefusal(t *testing.T) {
	f := newFixture(t, `
token_ratelimit:
  - rule_name: gpt-4o-budget
    match: {model: gpt-4o}
    global_threshold: {token_per_minute: 100}
    downgrade: {model: gpt-4o-mini}
  - rule_name: mini-budget
    match: {model: gpt-4o-mini}
    global_threshold: {token_per_minute: 500}
`)
	send := func(maxTokens int) *extprocv3.ProcessingResponse {
		x := f.envoy.open()
		x.send(requestHeaders(false, chatHeaders("sk-a")...))
		return x.send(requestBody(fmt.Sprintf(`{"model":"gpt-4o","max_tokens":%d,"messages":[{"role":"user","content":"hi"}]}`, maxTokens)))
	}
	// 300 tokens do not fit gpt-4o's 100 but fit the mini's 500.
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	resp := x.send(requestBody(`{"model":"gpt-4o","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}`))
	if ir := resp.GetImmediateResponse(); ir != nil {
		t.Fatalf("refused: %s", ir.GetBody())
	}
	body := resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
	if gjson.GetBytes(body, "model").String() != "gpt-4o-mini" {
		t.Fatalf("upstream body %s", body)
	}
	set, _ := mutationHeaders(resp.GetRequestBody().GetResponse().GetHeaderMutation())
	if set["content-length"] != strconv.Itoa(len(body)) {
		t.Errorf("content-length %q for %d bytes", set["content-length"], len(body))
	}
	rh := x.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
	rs, _ := mutationHeaders(rh.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if rs["x-tollgate-downgraded"] != "gpt-4o -> gpt-4o-mini" {
		t.Errorf("response headers %v", rs)
	}
	x.send(responseBody([]byte(`{"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":250}}`), true))
	x.close()
	rows, _ := f.store.Totals(context.Background(), ledger.TotalsQuery{Consumer: "team-a", From: "2026-11-26", To: "2026-11-26"})
	if len(rows) != 1 || rows[0].Model != "gpt-4o-mini" || rows[0].Total != 258 {
		t.Fatalf("charged %+v, want 258 tokens to gpt-4o-mini", rows)
	}
	// The mini's window now holds 258 of 500: another 300 fits neither.
	ir := immediateOf(t, send(300))
	if msg, _, _ := decodeError(t, ir.GetBody()); ir.GetStatus().GetCode() != 429 || !strings.Contains(msg, "gpt-4o-budget") {
		t.Fatalf("got %d %q: want the first refusal", ir.GetStatus().GetCode(), msg)
	}
}

// TestMaxInFlight: a consumer's requests between admission and settle are
// capped; the refusal says it is a concurrency limit; a settled request
// frees its slot.
func TestMaxInFlight(t *testing.T) {
	f := newFixtureConsumers(t, `
consumers:
  - {name: t1, keys: [sk-t1], tier: small}
tiers:
  - {name: small, limits: {max_in_flight: 2}}
`)
	open := func() (*exchange, *extprocv3.ProcessingResponse) {
		x := f.envoy.open()
		x.send(requestHeaders(false, chatHeaders("sk-t1")...))
		return x, x.send(requestBody(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	}
	a, ra := open()
	b, rb := open()
	if ra.GetImmediateResponse() != nil || rb.GetImmediateResponse() != nil {
		t.Fatal("the first two requests must be admitted")
	}
	_, rc := open()
	ir := immediateOf(t, rc)
	msg, _, code := decodeError(t, ir.GetBody())
	if ir.GetStatus().GetCode() != 429 || code != "concurrency_limit_exceeded" || !strings.Contains(msg, "concurrency limit") {
		t.Fatalf("third: %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	// One finishes; a new request gets its slot.
	a.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
	a.send(responseBody([]byte(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`), true))
	a.close()
	if _, rd := open(); rd.GetImmediateResponse() != nil {
		t.Fatalf("after one settled: %s", rd.GetImmediateResponse().GetBody())
	}
	b.cancel()
}

// TestCompressedStreamStillHidesAddedUsage: a provider that gzips the
// stream despite accept-encoding: identity gets it forwarded decoded,
// without content-encoding, minus the usage chunk the client did not ask for.
func TestCompressedStreamStillHidesAddedUsage(t *testing.T) {
	f := newFixture(t, "")
	stream, usageEvent := chatStream([]string{"Hi", " there"}, 9, 2)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(stream)
	_ = zw.Close()
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	x.send(requestBody(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	rh := x.send(responseHeaders(false, ":status", "200", "content-type", "text/event-stream", "content-encoding", "gzip"))
	_, removed := mutationHeaders(rh.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if !contains(removed, "content-encoding") {
		t.Fatalf("content-encoding kept: %v", removed)
	}
	var out []byte
	gz := z.Bytes()
	for i := 0; i < len(gz); i += 7 {
		end := min(i+7, len(gz))
		out = append(out, forwarded(x.send(responseBody(gz[i:end], end == len(gz))), gz[i:end])...)
	}
	x.close()
	if want := bytes.Replace(stream, []byte(usageEvent), nil, 1); !bytes.Equal(out, want) {
		t.Fatalf("client got %q", out)
	}
	if got := f.totals(t, "team-a"); got.Input != 9 || got.Output != 2 {
		t.Fatalf("totals %+v", got)
	}
}

// TestPromptTokenizedOnlyWhenNeeded: a request that no token window or
// quota applies to, answered with the provider's usage, is never
// tokenized; with a token window it is, once.
func TestPromptTokenizedOnlyWhenNeeded(t *testing.T) {
	calls := 0
	defer func(orig func(usage.API, []byte, *tokens.Encoding) int64) { estimatePrompt = orig }(estimatePrompt)
	estimatePrompt = func(api usage.API, body []byte, e *tokens.Encoding) int64 {
		calls++
		return usage.EstimatePrompt(api, body, e)
	}
	requests := `
request_ratelimit:
  - rule_name: rpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", query_per_minute: 100}]}]
`
	tokenWindow := `
token_ratelimit:
  - rule_name: tpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 100000}]}]
`
	stream, _ := chatStream([]string{"Hello", " there"}, 21, 2)
	for _, c := range []struct {
		name, config string
		want         int
	}{
		{"request window only", requests, 0},
		{"token window", tokenWindow, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls = 0
			f := newFixture(t, c.config)
			x := f.envoy.open()
			x.send(requestHeaders(false, chatHeaders("sk-a")...))
			x.send(requestBody(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me a long story about tokens."}]}`))
			x.send(responseHeaders(false, ":status", "200", "content-type", "text/event-stream"))
			x.send(responseBody(stream, true))
			x.close()
			if got := f.totals(t, "team-a"); got.Input != 21 || got.Output != 2 || got.Estimated != 0 {
				t.Fatalf("charged %+v, want the provider's 21 + 2", got)
			}
			if calls != c.want {
				t.Errorf("prompt counted %d times, want %d", calls, c.want)
			}
		})
	}
}
