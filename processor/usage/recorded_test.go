package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/tidwall/sjson"
)

// providerUsage is the usage a recorded response reports, decoded with
// encoding/json independently of the Meter. ok is false when it has none.
func providerUsage(t *testing.T, r recorded) (u Usage, model string, ok bool) {
	t.Helper()
	type openAIUsage struct {
		PromptTokens     *int64 `json:"prompt_tokens"`
		CompletionTokens int64  `json:"completion_tokens"`
		PromptDetails    struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		CompletionDetails struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	}
	var body struct {
		Model string       `json:"model"`
		Usage *openAIUsage `json:"usage"`
	}
	var found *openAIUsage
	if r.sse() {
		for _, ev := range referenceEvents(r.response) {
			if err := json.Unmarshal([]byte(ev), &body); err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
			if model == "" {
				model = body.Model
			}
			if body.Usage != nil {
				found = body.Usage
			}
			body.Usage = nil
		}
	} else {
		if err := json.Unmarshal(r.response, &body); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		model, found = body.Model, body.Usage
	}
	if found == nil || found.PromptTokens == nil {
		return Usage{}, model, false
	}
	return Usage{
		Input:       *found.PromptTokens,
		Output:      found.CompletionTokens,
		CachedInput: found.PromptDetails.CachedTokens,
		Reasoning:   found.CompletionDetails.ReasoningTokens,
	}, model, true
}

// referenceEvents splits a recorded stream, which uses \n line ends only,
// into its events' data the simple way.
func referenceEvents(body []byte) []string {
	var out []string
	for _, block := range strings.Split(string(body), "\n\n") {
		var data []string
		for _, line := range strings.Split(block, "\n") {
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = append(data, v)
			}
		}
		if d := strings.Join(data, "\n"); d != "" && d != "[DONE]" {
			out = append(out, d)
		}
	}
	return out
}

// TestRecordedUsage checks that every recorded response yields exactly the
// usage its provider reported, however the body is cut and whether or not
// it is compressed.
func TestRecordedUsage(t *testing.T) {
	for _, r := range loadRecorded(t) {
		want, wantModel, ok := providerUsage(t, r)
		if !ok {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			check := func(t *testing.T, how string, enc string, chunks [][]byte) {
				t.Helper()
				m, _ := runMeter(MeterOptions{API: r.api, SSE: r.sse(), Encoding: enc}, chunks)
				got, reported := m.Usage()
				if !reported || got != want {
					t.Fatalf("%s: usage = %+v (reported %v), want %+v", how, got, reported, want)
				}
				if m.ResponseModel() != wantModel {
					t.Fatalf("%s: model = %q, want %q", how, m.ResponseModel(), wantModel)
				}
				if n := m.Malformed(); n != 0 {
					t.Fatalf("%s: %d malformed", how, n)
				}
			}
			check(t, "whole", "", [][]byte{r.response})
			check(t, "one byte at a time", "", splitBytes(r.response))
			rng := rand.New(rand.NewPCG(1, uint64(len(r.response))))
			for i := range 200 {
				check(t, fmt.Sprintf("random split %d", i), "", splitRandom(r.response, rng))
			}
			gz := gzipBytes(t, r.response)
			check(t, "gzip one byte at a time", "gzip", splitBytes(gz))
			for i := range 200 {
				check(t, fmt.Sprintf("gzip random split %d", i), "gzip", splitRandom(gz, rng))
			}
			zl, br := zlibBytes(t, r.response), brotliBytes(t, r.response)
			for i := range 20 {
				check(t, fmt.Sprintf("deflate random split %d", i), "deflate", splitRandom(zl, rng))
				check(t, fmt.Sprintf("br random split %d", i), "br", splitRandom(br, rng))
			}
		})
	}
}

// TestRecordedErrors checks that error responses report no usage and
// count nothing.
func TestRecordedErrors(t *testing.T) {
	for _, r := range loadRecorded(t) {
		if r.code < 400 {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			enc := encodingFor(t, "")
			c := enc.NewCounter()
			m, _ := runMeter(MeterOptions{API: r.api, SSE: r.sse(), Counter: c}, splitBytes(r.response))
			got, reported := m.Usage()
			if reported || got.Output != 0 || !got.Estimated {
				t.Fatalf("usage = %+v (reported %v), want an estimate of 0", got, reported)
			}
		})
	}
}

// referenceText returns the completion text of a response, in the order a
// Meter counts it, extracted with encoding/json.
func referenceText(t *testing.T, r recorded) string {
	t.Helper()
	type call struct {
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	type message struct {
		Content          *string `json:"content"`
		ReasoningContent string  `json:"reasoning_content"`
		Refusal          *string `json:"refusal"`
		ToolCalls        []call  `json:"tool_calls"`
		Audio            *struct {
			Transcript string `json:"transcript"`
		} `json:"audio"`
	}
	var body struct {
		Choices []struct {
			Delta   message `json:"delta"`
			Message message `json:"message"`
			Text    string  `json:"text"`
		} `json:"choices"`
	}
	var sb strings.Builder
	add := func(m message) {
		if m.Content != nil {
			sb.WriteString(*m.Content)
		}
		sb.WriteString(m.ReasoningContent)
		if m.Refusal != nil {
			sb.WriteString(*m.Refusal)
		}
		for _, c := range m.ToolCalls {
			sb.WriteString(c.Function.Name)
			sb.WriteString(c.Function.Arguments)
		}
		if m.Audio != nil {
			sb.WriteString(m.Audio.Transcript)
		}
	}
	docs := []string{string(r.response)}
	if r.sse() {
		docs = referenceEvents(r.response)
	}
	for _, d := range docs {
		body.Choices = nil
		if err := json.Unmarshal([]byte(d), &body); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		for _, c := range body.Choices {
			add(c.Delta)
			add(c.Message)
			sb.WriteString(c.Text)
		}
	}
	return sb.String()
}

// stripUsage removes what a provider reported: the usage-only event of a
// stream, or the usage field of a body.
func stripUsage(t *testing.T, r recorded) []byte {
	t.Helper()
	if !r.sse() {
		out, err := sjson.DeleteBytes(r.response, "usage")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var out []byte
	for _, block := range bytes.SplitAfter(r.response, []byte("\n\n")) {
		if bytes.Contains(block, []byte(`"choices":[]`)) && bytes.Contains(block, []byte(`"usage":{`)) {
			continue
		}
		out = append(out, block...)
	}
	return out
}

// TestRecordedCounting strips the usage from every successful recorded
// response and checks that the Meter counts exactly the tokens of the
// completion text, then logs how far that count is from what the provider
// billed (run with -v to see the table).
func TestRecordedCounting(t *testing.T) {
	var table []string
	for _, r := range loadRecorded(t) {
		if r.code != 200 || r.api == APIEmbeddings {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			want, _, reported := providerUsage(t, r)
			req, err := ParseRequest(r.api, r.request)
			if err != nil {
				t.Fatal(err)
			}
			enc := encodingFor(t, req.Model)
			text := referenceText(t, r)
			wantCount := int64(enc.Count(text))
			body := stripUsage(t, r)
			rng := rand.New(rand.NewPCG(2, uint64(len(body))))
			splits := [][][]byte{{body}, splitBytes(body)}
			for range 20 {
				splits = append(splits, splitRandom(body, rng))
			}
			c := enc.NewCounter()
			for i, chunks := range splits {
				c.Reset(enc)
				m, _ := runMeter(MeterOptions{API: r.api, SSE: r.sse(), Counter: c}, chunks)
				got, rep := m.Usage()
				if rep || !got.Estimated || got.Output != wantCount {
					t.Fatalf("split %d: usage = %+v (reported %v), want an estimate of %d", i, got, rep, wantCount)
				}
				if m.FirstContent() != (text != "") {
					t.Fatalf("split %d: FirstContent = %v with text %q", i, m.FirstContent(), text)
				}
			}
			// With the request's cap, a choice stopped for length counts as
			// the cap: the only way to see reasoning tokens that are never
			// streamed.
			c.Reset(enc)
			m, _ := runMeter(MeterOptions{API: r.api, SSE: r.sse(), Counter: c, MaxOutput: req.MaxOutput}, [][]byte{body})
			est, _ := m.Usage()
			wantEst := max(wantCount, int64(len(lengthStop.FindAll(body, -1)))*req.MaxOutput)
			if est.Output != wantEst {
				t.Fatalf("estimate with MaxOutput %d = %d, want %d", req.MaxOutput, est.Output, wantEst)
			}
			if reported {
				table = append(table, fmt.Sprintf("%-30s %8d %8d %8d %+8.1f%% %8d %+8.1f%%", r.name,
					want.Output, want.Reasoning, wantCount, pct(wantCount, want.Output), est.Output, pct(est.Output, want.Output)))
			} else {
				table = append(table, fmt.Sprintf("%-30s %8s %8s %8d %9s %8d", r.name, "n/a", "n/a", wantCount, "", est.Output))
			}
		})
	}
	t.Logf("completion tokens without usage vs the provider's (reasoning is never streamed; "+
		"estimate = counted text, or max_tokens for a choice that stopped for length):\n"+
		"%-30s %8s %8s %8s %9s %8s %9s\n%s",
		"file", "provider", "reason.", "counted", "error", "estimate", "error", strings.Join(table, "\n"))
}

var lengthStop = regexp.MustCompile(`"finish_reason":\s*"length"`)

func pct(got, want int64) float64 {
	if want == 0 {
		return 0
	}
	return 100 * float64(got-want) / float64(want)
}
