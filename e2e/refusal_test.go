package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// refusalConfig gives team-b a 3,000-token minute window and team-a a
// hand-topped balance of 60 tokens; admin may top balances up in-band.
const refusalConfig = `
token_ratelimit:
  - rule_name: team-b-tpm
    rule_items:
      - limit_by_consumer: ""
        limit_keys: [{key: team-b, token_per_minute: 3000}]
quota:
  admin_consumer: admin
  consumers:
    team-a: {tokens: 60, period: none}
`

// TestRefusals checks what a client sees when tollgate says no — through
// the SDKs, as their users would — and that refused calls never reach the
// provider nor cost anything.
func TestRefusals(t *testing.T) {
	t.Parallel()
	s := newStack(t, baseConfig(memoryStore, refusalConfig))
	ctx := context.Background()

	t.Run("bad key is 401", func(t *testing.T) {
		c := openaiClient(s.envoy.URL, "sk-not-a-key")
		_, err := c.Chat.Completions.New(ctx, userChat("gpt-4o", "hi"))
		if apiErr, code := apiStatus(t, err); code != http.StatusUnauthorized || apiErr.Type != "invalid_request_error" {
			t.Errorf("got %d %q, want 401 invalid_request_error", code, apiErr.Type)
		}
	})
	t.Run("missing key is 401", func(t *testing.T) {
		c := openaiClient(s.envoy.URL, "unused", option.WithHeaderDel("Authorization"))
		_, err := c.Chat.Completions.New(ctx, userChat("gpt-4o", "hi"))
		if apiErr, code := apiStatus(t, err); code != http.StatusUnauthorized || !strings.Contains(apiErr.Message, "Missing API key") {
			t.Errorf("got %d %q, want 401 naming the missing key", code, apiErr.Message)
		}
	})
	t.Run("bad key is 401 for the Anthropic SDK", func(t *testing.T) {
		c := anthropicClient(s.envoy.URL, "sk-ant-not-a-key")
		_, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-sonnet-4-5", MaxTokens: 10,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %v, want a 401 from the Anthropic SDK", err)
		}
	})
	t.Run("model not allowed is 403", func(t *testing.T) {
		c := openaiClient(s.envoy.URL, keyTeamA)
		_, err := c.Chat.Completions.New(ctx, userChat("o3-pro", "hi"))
		if apiErr, code := apiStatus(t, err); code != http.StatusForbidden || apiErr.Code != "model_not_allowed" {
			t.Errorf("got %d %q, want 403 model_not_allowed", code, apiErr.Code)
		}
	})
	if n := len(s.llm.Requests()); n != 0 {
		t.Fatalf("%d refused requests reached the provider", n)
	}

	t.Run("over the token limit is 429 with retry-after", func(t *testing.T) {
		oa := openaiClient(s.envoy.URL, keyTeamB)
		p := userChat("gpt-4o", "Write a long essay.")
		p.MaxTokens = openai.Int(2000)
		var first *http.Response
		if _, err := oa.Chat.Completions.New(ctx, p, append(plan("usage", "input=12,output=2000"), option.WithResponseInto(&first))...); err != nil {
			t.Fatalf("the first call fits the window and must pass: %v", err)
		}
		if first.Header.Get("x-ratelimit-limit-tokens") != "3000" {
			t.Errorf("an admitted call must carry x-ratelimit-limit-tokens 3000, got %q", first.Header.Get("x-ratelimit-limit-tokens"))
		}
		remaining, _ := strconv.Atoi(first.Header.Get("x-ratelimit-remaining-tokens"))
		if remaining <= 0 || remaining > 1000 {
			t.Errorf("x-ratelimit-remaining-tokens is %q after reserving about 2,000 of 3,000 tokens", first.Header.Get("x-ratelimit-remaining-tokens"))
		}

		_, err := oa.Chat.Completions.New(ctx, p)
		apiErr, code := apiStatus(t, err)
		if code != http.StatusTooManyRequests {
			t.Fatalf("got %d, want 429", code)
		}
		ra, err := strconv.Atoi(apiErr.Response.Header.Get("retry-after"))
		if err != nil || ra < 1 || ra > 61 {
			t.Errorf("retry-after is %q, want whole seconds within the minute window", apiErr.Response.Header.Get("retry-after"))
		}
		if apiErr.Response.Header.Get("x-ratelimit-limit-tokens") != "3000" {
			t.Errorf("the 429 must carry x-ratelimit-limit-tokens, got %v", apiErr.Response.Header)
		}
		if !strings.Contains(apiErr.Message+apiErr.RawJSON(), "team-b-tpm") {
			t.Errorf("the error should name the rule: %s", apiErr.RawJSON())
		}
		s.checkAgainstUpstream(t, "team-b")
	})

	t.Run("quota exhausted is 403, topped up in-band, then allowed", func(t *testing.T) {
		oa := openaiClient(s.envoy.URL, keyTeamA)
		p := userChat("gpt-4o-mini", "hi")
		p.MaxTokens = openai.Int(20)
		// The reservation (prompt + 20) fits the 60 tokens; the provider then
		// reports 80, which leaves the balance at -20.
		if _, err := oa.Chat.Completions.New(ctx, p, plan("usage", "input=30,output=50")...); err != nil {
			t.Fatalf("the first call fits the balance: %v", err)
		}
		quotaURL := s.envoy.URL + "/v1/chat/completions/quota"
		expectQuota := func(want string) {
			t.Helper()
			eventually(t, "in-band quota query", func() error {
				code, body := getWithKey(t, quotaURL+"?consumer=team-a", keyAdmin)
				if code != http.StatusOK || body != want {
					return errors.New("got " + strconv.Itoa(code) + " " + body + ", want " + want)
				}
				return nil
			})
		}
		expectQuota(`{"consumer":"team-a","quota":-20}`)

		_, err := oa.Chat.Completions.New(ctx, p)
		apiErr, code := apiStatus(t, err)
		if code != http.StatusForbidden || apiErr.Message != "Request denied by ai quota check, No quota left" {
			t.Fatalf("got %d %q, want 403 with Higress's message", code, apiErr.Message)
		}

		if code, body := postForm(t, quotaURL+"/delta", keyTeamA, url.Values{"consumer": {"team-a"}, "value": {"1000000"}}); code != http.StatusForbidden {
			t.Errorf("a consumer that is not the admin topped itself up: %d %s", code, body)
		}
		code, body := postForm(t, quotaURL+"/delta", keyAdmin, url.Values{"consumer": {"team-a"}, "value": {"100"}})
		if code != http.StatusOK || body != "delta quota successful" {
			t.Fatalf("top-up: %d %q", code, body)
		}
		expectQuota(`{"consumer":"team-a","quota":80}`)

		if _, err := oa.Chat.Completions.New(ctx, p, plan("usage", "input=10,output=5")...); err != nil {
			t.Fatalf("after the top-up the call must pass: %v", err)
		}
		expectQuota(`{"consumer":"team-a","quota":65}`)
		s.checkAgainstUpstream(t, "team-a")
	})
}
