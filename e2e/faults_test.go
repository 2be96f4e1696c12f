package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate-ai/tollgate/e2e/fakellm"
	"github.com/tollgate-ai/tollgate/processor/tokens"
	"github.com/tollgate-ai/tollgate/processor/usage"
)

// ownCount is what tollgate must charge for a request whose usage the
// provider did not report: the prompt as tollgate's estimator counts it and
// the text the provider sent as tollgate's tokenizer counts it.
func ownCount(t *testing.T, req fakellm.Request, rep fakellm.Report) totals {
	t.Helper()
	enc, ok := tokens.ForModel(rep.Model)
	if !ok {
		var err error
		if enc, err = tokens.Get("o200k_base"); err != nil {
			t.Fatal(err)
		}
	}
	return totals{
		Requests:  1,
		Input:     usage.EstimatePrompt(usage.Detect(req.Path), req.Body, enc),
		Output:    int64(enc.Count(rep.Text)),
		Estimated: 1,
	}
}

// onlyRequest returns the one request the fake LLM received and its report.
func (u *upstream) onlyRequest(t *testing.T) (fakellm.Request, fakellm.Report) {
	t.Helper()
	reqs := u.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the fake LLM received %d requests, want 1", len(reqs))
	}
	rep, ok := u.Reported(reqs[0].ID)
	if !ok {
		t.Fatalf("no report for request %s", reqs[0].ID)
	}
	return reqs[0], rep
}

// readChat reads a chat stream to its end and returns the text.
func readChat(t *testing.T, c openai.Client, p openai.ChatCompletionNewParams, opts ...option.RequestOption) string {
	t.Helper()
	st := c.Chat.Completions.NewStreaming(context.Background(), p, opts...)
	var text strings.Builder
	for st.Next() {
		for _, ch := range st.Current().Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream failed: %v", err)
	}
	return text.String()
}

// TestProviderFaults runs each way a provider answer goes wrong through the
// whole chain, each on a fresh stack, and checks what tollgate committed:
// the provider's usage when it reported one, its own count of what was sent
// when it did not, nothing for an error.
func TestProviderFaults(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(memoryStore, "")
	withUsage := func(p openai.ChatCompletionNewParams) openai.ChatCompletionNewParams {
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		return p
	}
	chat := userChat("gpt-4o", "Tell me something about gateways and tokens.")

	for _, tc := range []struct {
		name string
		// call makes the request; stream says whether it streams.
		call func(t *testing.T, c openai.Client)
		// estimated is true when the provider reports no usage, so that
		// tollgate must count.
		estimated bool
	}{
		{"stream with usage null on every chunk", func(t *testing.T, c openai.Client) {
			readChat(t, c, chat, plan("chunks", "40", "content", `"null usage "`, "fault", "null-usage")...)
		}, true},
		{"stream with usage omitted", func(t *testing.T, c openai.Client) {
			readChat(t, c, chat, plan("chunks", "33", "content", `"où est l'usage? "`, "fault", "omit-usage")...)
		}, true},
		{"non-streamed answer with usage omitted", func(t *testing.T, c openai.Client) {
			if _, err := c.Chat.Completions.New(context.Background(), chat, plan("chunks", "12", "fault", "omit-usage")...); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"non-streamed answer with usage null", func(t *testing.T, c openai.Client) {
			if _, err := c.Chat.Completions.New(context.Background(), chat, plan("chunks", "12", "fault", "null-usage")...); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"gzip answer", func(t *testing.T, c openai.Client) {
			resp, err := c.Chat.Completions.New(context.Background(), chat, plan("chunks", "21", "fault", "gzip", "usage", "input=44,output=21")...)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Usage.PromptTokens != 44 {
				t.Errorf("client got usage %+v", resp.Usage)
			}
		}, false},
		{"gzip stream the client asked usage for", func(t *testing.T, c openai.Client) {
			readChat(t, c, withUsage(chat), plan("chunks", "50", "split", "11", "fault", "gzip", "usage", "input=19,output=50")...)
		}, false},
		{"gzip stream although tollgate asked for identity", func(t *testing.T, c openai.Client) {
			readChat(t, c, chat, plan("chunks", "50", "split", "5", "fault", "gzip-always", "usage", "input=19,output=50")...)
		}, false},
		{"upstream 429 charges nothing", func(t *testing.T, c openai.Client) {
			_, err := c.Chat.Completions.New(context.Background(), chat, plan("fault", "status=429")...)
			if _, code := apiStatus(t, err); code != http.StatusTooManyRequests {
				t.Errorf("got %d, want the provider's 429", code)
			}
		}, false},
		{"upstream 500 charges nothing", func(t *testing.T, c openai.Client) {
			st := c.Chat.Completions.NewStreaming(context.Background(), chat, plan("fault", "status=500")...)
			for st.Next() {
			}
			if _, code := apiStatus(t, st.Err()); code != http.StatusInternalServerError {
				t.Errorf("got %d, want the provider's 500", code)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, cfg)
			tc.call(t, openaiClient(s.envoy.URL, keyTeamB))
			req, rep := s.llm.onlyRequest(t)
			if strings.Contains(tc.name, "gzip") && !strings.Contains(rep.Text, "tok") {
				t.Fatalf("the provider did not answer: %+v", rep)
			}
			if strings.Contains(tc.name, "gzip") && !acceptsGzip(req.Header) && !strings.Contains(tc.name, "identity") {
				t.Fatalf("the request reached the provider without accepting gzip (%q): the fault did not apply", req.Header.Get("accept-encoding"))
			}
			want := s.llm.totals("team-b")
			if tc.estimated {
				if rep.UsageSent {
					t.Fatalf("the provider sent usage; the fault did not apply: %+v", rep)
				}
				want = ownCount(t, req, rep)
			}
			expectTotals(t, s.tollgate.adminAddr, "team-b", want)
		})
	}
}

func acceptsGzip(h http.Header) bool {
	return strings.Contains(strings.ToLower(strings.Join(h.Values("Accept-Encoding"), ",")), "gzip")
}

// TestClientCancelsMidStream cancels a slow stream after a few chunks. The
// client goes away; Envoy cancels the ext_proc stream without an
// end_of_stream; tollgate must charge what was streamed up to there — its
// own count of the text the provider had sent — and nothing more. The
// chunks are far enough apart (250 ms) for the cancel to reach the provider
// before it writes another one, which Envoy, its downstream gone, would
// never pass to tollgate.
func TestClientCancelsMidStream(t *testing.T) {
	t.Parallel()
	s := newStack(t, baseConfig(memoryStore, ""))
	c := openaiClient(s.envoy.URL, keyTeamB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const total, readBefore = 200, 10
	st := c.Chat.Completions.NewStreaming(ctx, userChat("gpt-4o-mini", "Count slowly to two hundred."),
		plan("chunks", fmt.Sprint(total), "delay", "250ms", "content", `"step "`)...)
	var got int
	for got < readBefore && st.Next() {
		for _, ch := range st.Current().Choices {
			if ch.Delta.Content != "" {
				got++
			}
		}
	}
	cancel()
	for st.Next() {
	}
	if err := st.Err(); err == nil || !errors.Is(err, context.Canceled) {
		t.Logf("stream ended with %v", err)
	}
	_ = st.Close()
	if got != readBefore {
		t.Fatalf("read %d chunks before cancelling, want %d", got, readBefore)
	}

	// The provider stops once it notices the client is gone; from then on
	// its report is final.
	var req fakellm.Request
	var rep fakellm.Report
	eventually(t, "the provider to stop streaming", func() error {
		var r fakellm.Report
		req, r = s.llm.onlyRequest(t)
		if r.Completed {
			return errors.New("the provider finished the stream: the cancel did not reach it")
		}
		if r.Chunks != rep.Chunks || r.Chunks == 0 {
			rep = r
			time.Sleep(200 * time.Millisecond)
			return errors.New("still streaming")
		}
		return nil
	})
	if rep.Chunks < readBefore || rep.Chunks >= total {
		t.Fatalf("the provider sent %d of %d chunks; the client read %d", rep.Chunks, total, readBefore)
	}
	want := ownCount(t, req, rep)
	expectTotals(t, s.tollgate.adminAddr, "team-b", want)
	t.Logf("client read %d chunks, provider sent %d, tollgate charged %v", readBefore, rep.Chunks, want)
}
