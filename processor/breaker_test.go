package processor

import (
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/breaker"
)

// TestCircuitBreaker: a provider failing half its calls trips the breaker,
// calls then fail fast with 503 and a retry-after (or go to the fallback),
// and a successful half-open probe after the cool-down closes it.
func TestCircuitBreaker(t *testing.T) {
	for _, withFallback := range []bool{false, true} {
		name := "fail fast"
		extra := ""
		if withFallback {
			name = "fallback"
			extra = "    fallback: {provider: backup, model: gpt-4o-mini}\n"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, `
providers:
  - name: primary
    path_prefix: /v1/
    api_key_env: OPENAI_API_KEY
`+extra+`  - name: backup
    path_prefix: /backup/
    api_key_env: ANTHROPIC_API_KEY
`)
			f.server.o.Breakers = breaker.New(breaker.Config{ErrorRate: 0.5, MinRequests: 10,
				Window: breaker.Duration(time.Minute), CoolDown: breaker.Duration(30 * time.Second)},
				breaker.Options{Clock: f.server.o.Clock})
			call := func(status string) (*extprocv3.ProcessingResponse, *exchange) {
				x := f.envoy.open()
				resp := x.send(requestHeaders(false, chatHeaders("sk-a")...))
				if resp.GetImmediateResponse() != nil {
					return resp, x
				}
				resp = x.send(requestBody(`{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
				rh := x.send(responseHeaders(false, ":status", status, "content-type", "application/json"))
				x.send(responseBody([]byte(`{}`), true))
				x.close()
				_ = rh
				return resp, x
			}
			for i := range 10 { // 50% of calls fail
				status := "200"
				if i%2 == 0 {
					status = "500"
				}
				call(status)
			}
			resp, _ := call("200")
			if withFallback {
				body := resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
				if resp.GetImmediateResponse() != nil || gjson.GetBytes(body, "model").String() != "gpt-4o-mini" {
					t.Fatalf("the open breaker did not send the call to the fallback: %v", resp)
				}
			} else {
				ir := immediateOf(t, resp)
				hs, _ := mutationHeaders(ir.GetHeaders())
				msg, _, code := decodeError(t, ir.GetBody())
				if ir.GetStatus().GetCode() != 503 || code != "provider_unavailable" || hs["retry-after"] != "30" || !strings.Contains(msg, "primary") {
					t.Fatalf("open breaker: %d %v %s", ir.GetStatus().GetCode(), hs, ir.GetBody())
				}
			}
			// After the cool-down one probe goes to the primary; it
			// succeeds and the breaker closes.
			f.advance(31 * time.Second)
			x := f.envoy.open()
			hr := x.send(requestHeaders(false, chatHeaders("sk-a")...))
			set, _ := mutationHeaders(hr.GetRequestHeaders().GetResponse().GetHeaderMutation())
			if set["x-tollgate-provider"] != "primary" {
				t.Fatalf("probe went to %q", set["x-tollgate-provider"])
			}
			x.send(requestBody(`{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
			x.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
			x.send(responseBody([]byte(`{}`), true))
			x.close()
			if st := f.server.o.Breakers.State("primary"); st != breaker.Closed {
				t.Fatalf("breaker after a good probe: %v", st)
			}
		})
	}
}
