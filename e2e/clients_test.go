package e2e

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// openaiClient is the official OpenAI SDK pointed at the emulated Envoy with
// key. It does not retry: a test wants to see each refusal, and a retried
// request would be billed twice by a real provider anyway.
func openaiClient(baseURL, key string, opts ...option.RequestOption) openai.Client {
	all := []option.RequestOption{
		option.WithBaseURL(baseURL + "/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	}
	return openai.NewClient(append(all, opts...)...)
}

// anthropicClient is the official Anthropic SDK pointed at the emulated
// Envoy with key (sent as x-api-key, as the SDK does).
func anthropicClient(baseURL, key string, opts ...anthropicoption.RequestOption) anthropic.Client {
	all := []anthropicoption.RequestOption{
		anthropicoption.WithBaseURL(baseURL + "/"),
		anthropicoption.WithAPIKey(key),
		anthropicoption.WithMaxRetries(0),
	}
	return anthropic.NewClient(append(all, opts...)...)
}

// plan sets the fake LLM's answer for one request (see fakellm.Plan); the
// x-fakellm-* headers pass through Envoy and tollgate untouched.
func plan(kv ...string) []option.RequestOption {
	var opts []option.RequestOption
	for i := 0; i+1 < len(kv); i += 2 {
		opts = append(opts, option.WithHeader("x-fakellm-"+kv[i], kv[i+1]))
	}
	return opts
}

// anthropicPlan is plan for the Anthropic SDK.
func anthropicPlan(kv ...string) []anthropicoption.RequestOption {
	var opts []anthropicoption.RequestOption
	for i := 0; i+1 < len(kv); i += 2 {
		opts = append(opts, anthropicoption.WithHeader("x-fakellm-"+kv[i], kv[i+1]))
	}
	return opts
}

// apiStatus returns the HTTP status of an OpenAI SDK error, failing the
// test when err is not one.
func apiStatus(t *testing.T, err error) (*openai.Error, int) {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an API error from the SDK, got %v", err)
	}
	return apiErr, apiErr.StatusCode
}

// userChat is a one-message chat request.
func userChat(model, prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}
}

// keyTransport adds an API key to every request, so that net/http's
// PostForm can call Higress's in-band admin paths as curl -H would.
type keyTransport struct{ key string }

func (k keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return http.DefaultTransport.RoundTrip(r)
}

// postForm posts a url-encoded form with key, as
// `curl -H 'Authorization: Bearer KEY' URL -d 'a=b&c=d'` does, and returns
// the status and body.
func postForm(t *testing.T, rawURL, key string, form url.Values) (int, string) {
	t.Helper()
	c := &http.Client{Transport: keyTransport{key}}
	resp, err := c.PostForm(rawURL, form)
	if err != nil {
		t.Fatalf("POST %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: cannot read the answer: %v", rawURL, err)
	}
	return resp.StatusCode, string(b)
}

// getWithKey is `curl -H 'Authorization: Bearer KEY' URL`.
func getWithKey(t *testing.T, rawURL, key string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: keyTransport{key}}
	resp, err := c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: cannot read the answer: %v", rawURL, err)
	}
	return resp.StatusCode, string(b)
}
