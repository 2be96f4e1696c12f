package usage

import (
	"fmt"
	"strings"
	"testing"
)

// TestEstimatePromptRecorded compares the prompt estimate with the
// prompt_tokens the provider billed for every recorded request, and logs
// the table (run with -v). Text prompts of completions and embeddings, and
// chat messages with text (gpt-5's framing) or an inline image, must be
// exact; tools, schemas and media within a few tokens or logged.
func TestEstimatePromptRecorded(t *testing.T) {
	exact := map[string]bool{
		"chat-basic":                    true,
		"chat-detailed-usage":           true,
		"chat-streaming-detailed-usage": true,
		"chat-json-mode":                true,
		"chat-text-to-audio":            true,
		"chat-image-to-text":            true, // inline PNG, measured
	}
	// Allowed absolute error of the other chat estimates: tools, schemas
	// and media are estimates.
	near := map[string]int64{
		"chat-audio-to-text":        4, // WAV, timed from its header
		"chat-tools":                4,
		"chat-text-to-image-tool":   4,
		"chat-openai-agents-python": 25,  // json_schema response format
		"chat-multimodal":           400, // remote image of unknown size
		"chat-web-search":           8,   // the search model bills no chat framing
	}
	var table []string
	for _, r := range loadRecorded(t) {
		want, _, ok := providerUsage(t, r)
		if !ok {
			continue
		}
		if r.api == APIEmbeddings || r.api == APICompletions {
			exact[r.name] = true
		}
		t.Run(r.name, func(t *testing.T) {
			req, err := ParseRequest(r.api, r.request)
			if err != nil {
				t.Fatal(err)
			}
			enc := encodingFor(t, req.Model)
			got := EstimatePrompt(r.api, r.request, enc)
			diff := got - want.Input
			table = append(table, fmt.Sprintf("%-30s %-12s %8d %8d %+6d %+8.1f%%", r.name, enc.Name(), want.Input, got, diff, pct(got, want.Input)))
			switch {
			case exact[r.name] && diff != 0:
				t.Errorf("estimate %d, provider %d: want exact", got, want.Input)
			case near[r.name] > 0 && (diff > near[r.name] || -diff > near[r.name]):
				t.Errorf("estimate %d, provider %d: off by more than %d", got, want.Input, near[r.name])
			}
		})
	}
	t.Logf("prompt estimate vs provider prompt_tokens:\n%-30s %-12s %8s %8s %6s %9s\n%s",
		"file", "encoding", "provider", "estimate", "diff", "error", strings.Join(table, "\n"))
}
