package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/tollgate-ai/tollgate/e2e/fakellm"
)

// lastReport is what the fake provider sent for its most recent request.
func (u *upstream) lastReport(t *testing.T) fakellm.Report {
	t.Helper()
	reps := u.Reports()
	if len(reps) == 0 {
		t.Fatal("the fake LLM received no request")
	}
	return reps[len(reps)-1]
}

// TestAPIs calls each counted API through the whole chain with the official
// SDKs and checks, after each call, that the client got the provider's
// answer and that tollgate committed exactly the usage the provider
// reported (cumulatively, so a miscount anywhere shows up).
func TestAPIs(t *testing.T) {
	t.Parallel()
	s := newStack(t, baseConfig(memoryStore, ""))
	ctx := context.Background()
	oa := openaiClient(s.envoy.URL, keyTeamA)
	const consumer = "team-a"

	t.Run("chat", func(t *testing.T) {
		resp, err := oa.Chat.Completions.New(ctx, userChat("gpt-4o-mini", "Say hello to the gateway, please."),
			plan("chunks", "7", "content", `"hello "`, "usage", "input=120,output=40,cached=64,reasoning=10")...)
		if err != nil {
			t.Fatal(err)
		}
		rep := s.llm.lastReport(t)
		if got := resp.Choices[0].Message.Content; got != rep.Text || got == "" {
			t.Errorf("client got %q, provider sent %q", got, rep.Text)
		}
		if resp.Usage.PromptTokens != 120 || resp.Usage.CompletionTokens != 40 || resp.Usage.PromptTokensDetails.CachedTokens != 64 {
			t.Errorf("client got usage %+v, want the provider's", resp.Usage)
		}
		s.checkAgainstUpstream(t, consumer)
	})

	t.Run("chat streamed, usage added by tollgate and hidden from the client", func(t *testing.T) {
		st := oa.Chat.Completions.NewStreaming(ctx, userChat("gpt-4o", "Stream me a few words."), plan("chunks", "25", "content", `"word "`)...)
		var text strings.Builder
		for st.Next() {
			c := st.Current()
			if c.JSON.Usage.Valid() && c.Usage.TotalTokens > 0 {
				t.Errorf("the client did not ask for usage but got a usage chunk: %s", c.RawJSON())
			}
			for _, ch := range c.Choices {
				text.WriteString(ch.Delta.Content)
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		rep := s.llm.lastReport(t)
		if !rep.UsageSent {
			t.Error("tollgate did not ask the provider for the stream's usage (stream_options.include_usage)")
		}
		if text.String() != rep.Text || rep.Chunks != 25 {
			t.Errorf("client got %q, provider sent %q in %d chunks", text.String(), rep.Text, rep.Chunks)
		}
		s.checkAgainstUpstream(t, consumer)
	})

	t.Run("chat streamed with include_usage", func(t *testing.T) {
		p := userChat("gpt-4o", "Stream and tell me the usage.")
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		st := oa.Chat.Completions.NewStreaming(ctx, p, plan("chunks", "9", "split", "7", "usage", "input=33,output=9,reasoning=4")...)
		var acc openai.ChatCompletionAccumulator
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.Usage.PromptTokens != 33 || acc.Usage.CompletionTokens != 9 {
			t.Errorf("the client asked for usage and got %+v", acc.Usage)
		}
		s.checkAgainstUpstream(t, consumer)
	})

	t.Run("responses", func(t *testing.T) {
		resp, err := oa.Responses.New(ctx, responses.ResponseNewParams{
			Model: "gpt-4.1-mini",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Answer with the Responses API.")},
		}, plan("chunks", "6", "usage", "input=50,output=6,cached=20")...)
		if err != nil {
			t.Fatal(err)
		}
		if resp.OutputText() != s.llm.lastReport(t).Text || resp.Usage.InputTokens != 50 {
			t.Errorf("client got %q with usage %+v", resp.OutputText(), resp.Usage)
		}
		s.checkAgainstUpstream(t, consumer)
	})

	t.Run("responses streamed", func(t *testing.T) {
		st := oa.Responses.NewStreaming(ctx, responses.ResponseNewParams{
			Model: "gpt-4.1-mini",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Stream with the Responses API.")},
		}, plan("chunks", "15", "split", "3")...)
		var text strings.Builder
		var completed bool
		for st.Next() {
			ev := st.Current()
			switch ev.Type {
			case "response.output_text.delta":
				text.WriteString(ev.Delta)
			case "response.completed":
				completed = true
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		if !completed || text.String() != s.llm.lastReport(t).Text {
			t.Errorf("client got %q (completed %v)", text.String(), completed)
		}
		s.checkAgainstUpstream(t, consumer)
	})

	t.Run("embeddings", func(t *testing.T) {
		resp, err := oa.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "text-embedding-3-small",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"the first text to embed", "and a second one"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 2 || resp.Usage.PromptTokens == 0 {
			t.Errorf("client got %d vectors, usage %+v", len(resp.Data), resp.Usage)
		}
		s.checkAgainstUpstream(t, consumer)
	})

	ac := anthropicClient(s.envoy.URL, keyTeamA)
	msg := anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello from the Anthropic SDK."))},
	}
	t.Run("anthropic messages", func(t *testing.T) {
		m, err := ac.Messages.New(ctx, msg, anthropicPlan("chunks", "8", "usage", "input=70,output=8,cached=30,cache_creation=10")...)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Content) == 0 || m.Content[0].Text != s.llm.lastReport(t).Text {
			t.Errorf("client got %+v", m.Content)
		}
		s.checkAgainstUpstream(t, consumer)
	})

	t.Run("anthropic messages streamed", func(t *testing.T) {
		st := ac.Messages.NewStreaming(ctx, msg, anthropicPlan("chunks", "30", "split", "5", "usage", "input=90,output=30,cached=40")...)
		var text strings.Builder
		var stopped bool
		for st.Next() {
			ev := st.Current()
			switch ev.Type {
			case "content_block_delta":
				text.WriteString(ev.Delta.Text)
			case "message_stop":
				stopped = true
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		if !stopped || text.String() != s.llm.lastReport(t).Text {
			t.Errorf("client got %q (message_stop %v)", text.String(), stopped)
		}
		s.checkAgainstUpstream(t, consumer)
	})

	// Nothing above was estimated: every answer carried its usage.
	got, err := committedTotals(t, s.tollgate.adminAddr, consumer)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("committed %v", got)
	if got.Requests != 8 || got.Estimated != 0 {
		t.Errorf("tollgate committed %v; want 8 requests, none estimated", got)
	}
}
