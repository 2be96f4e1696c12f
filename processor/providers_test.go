package processor

import (
	"testing"
	"time"
)

// TestProviderKeysInTurn: a provider's keys are used in turn; a key the
// provider answers 429 (or 401) for rests, and the others carry the calls
// until its rest ends.
func TestProviderKeysInTurn(t *testing.T) {
	f := newFixture(t, `
providers:
  - name: openai
    path_prefix: /v1/
    api_key_env: OPENAI_API_KEY
    api_key_envs: [ANTHROPIC_API_KEY]
    rest: 30s
`)
	call := func(status string) string {
		x := f.envoy.open()
		hr := x.send(requestHeaders(false, chatHeaders("sk-a")...))
		set, _ := mutationHeaders(hr.GetRequestHeaders().GetResponse().GetHeaderMutation())
		x.send(requestBody(`{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
		x.send(responseHeaders(false, ":status", status, "content-type", "application/json"))
		x.send(responseBody([]byte(`{}`), true))
		x.close()
		return set["authorization"]
	}
	first, second := call("200"), call("200")
	if first == second || call("200") != first {
		t.Fatalf("keys not used in turn: %q %q", first, second)
	}
	// The provider refuses the second key: it rests for 30s.
	if got := call("429"); got != second {
		t.Fatalf("expected the second key, got %q", got)
	}
	for range 3 {
		if got := call("200"); got != first {
			t.Fatalf("a resting key was used: %q", got)
		}
	}
	if f.server.ProviderResting("openai", "env:ANTHROPIC_API_KEY").IsZero() {
		t.Fatal("the refused key is not reported resting")
	}
	f.advance(31 * time.Second)
	seen := map[string]bool{call("200"): true, call("200"): true}
	if !seen[first] || !seen[second] {
		t.Fatalf("after its rest the key is back in turn: %v", seen)
	}
}
