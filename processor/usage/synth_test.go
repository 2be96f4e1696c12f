package usage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// synthCase is a hand-written fixture in the provider's documented format.
type synthCase struct {
	file   string
	api    API
	want   Usage
	model  string
	text   string // the completion text, in stream order
	maxOut int64  // request cap, for the length-stop estimate
}

var synthCases = []synthCase{
	{
		file: "anthropic-text.sse", api: APIAnthropicMessages,
		want:  Usage{Input: 25 + 1200 + 3400, Output: 15, CachedInput: 3400, CacheCreation: 1200},
		model: "claude-sonnet-4-5-20250929",
		text:  "Hello! How can I help you today? 😊\nLine two with \"quotes\" and é.",
	},
	{
		file: "anthropic-tool.sse", api: APIAnthropicMessages,
		want:  Usage{Input: 472, Output: 89},
		model: "claude-opus-4-1-20250805",
		text: "The user wants the weather in San Francisco. I should call get_weather." +
			"Okay, let's check the weather for San Francisco, CA:" +
			"get_weather" + `{"location": "San Francisco, CA", "unit": "fahrenheit"}`,
	},
	{
		file: "anthropic-message.json", api: APIAnthropicMessages,
		want:  Usage{Input: 2095 + 1024, Output: 503, CachedInput: 1024},
		model: "claude-3-5-haiku-20241022",
		text:  "I'll look that up." + "get_weather" + `{"location": "San Francisco, CA"}`,
	},
	{
		file: "responses-text.sse", api: APIResponses,
		want:  Usage{Input: 37, Output: 11},
		model: "gpt-4.1-2025-04-14",
		text:  "Hi there! How can I assist you today?",
	},
	{
		file: "responses-reasoning-tool.sse", api: APIResponses,
		want:  Usage{Input: 303, Output: 215, CachedInput: 128, Reasoning: 192},
		model: "o4-mini-2025-04-16",
		text:  "**Checking the weather**\n\nThe user asks about Paris." + "get_weather" + `{"location":"Paris, France"}`,
	},
	{
		file: "responses-incomplete.sse", api: APIResponses,
		want:  Usage{Input: 12, Output: 64, Reasoning: 60},
		model: "gpt-5-mini-2025-08-07",
		text:  "The answer is", maxOut: 64,
	},
	{
		file: "responses-response.json", api: APIResponses,
		want:  Usage{Input: 328, Output: 52},
		model: "gpt-4o-2024-08-06",
		text:  "The image depicts a scenic landscape with a wooden boardwalk or pathway leading through lush, green grass under a blue sky with some clouds.",
	},
	{
		file: "responses-function.json", api: APIResponses,
		want:  Usage{Input: 81, Output: 128, CachedInput: 64, Reasoning: 96},
		model: "o3-2025-04-16",
		text: "Need the weather; call the tool." + "get_weather" + `{"city":"Oslo"}` +
			"shell" + "ls -la" + "I can't share that.",
		maxOut: 128,
	},
	{
		file: "deepseek-reasoner.sse", api: APIChatCompletions,
		want:  Usage{Input: 18, Output: 40, Reasoning: 31},
		model: "deepseek-reasoner",
		text:  "Okay, the user asks 9.11 vs 9.8. Compare decimals: 0.11 < 0.80." + "9.8 is greater than 9.11.",
	},
	{
		file: "deepseek-cache.json", api: APIChatCompletions,
		want:  Usage{Input: 1040, Output: 9, CachedInput: 1024},
		model: "deepseek-chat",
		text:  "Hello! How can I help you today?",
	},
	{
		file: "gemini-tools.sse", api: APIChatCompletions,
		want:  Usage{Input: 77, Output: 19},
		model: "gemini-2.5-flash",
		text:  "get_weather" + `{"location":"Boston, MA"}`,
	},
	{
		file: "qwen-usage-null.sse", api: APIChatCompletions,
		model: "qwen-plus",
		text:  "我是来自阿里云的超大规模语言模型，我叫通义千问。",
	},
}

// findSynth returns the case of a fixture file.
func findSynth(file string) synthCase {
	for _, c := range synthCases {
		if c.file == file {
			return c
		}
	}
	panic("no fixture " + file)
}

func (c synthCase) body(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "synth", c.file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c synthCase) sse() bool { return strings.HasSuffix(c.file, ".sse") }

// stripEvents rewrites every event's JSON with edit and drops the events
// for which it returns nil.
func stripEvents(t *testing.T, body []byte, edit func(string) []byte) []byte {
	t.Helper()
	var out []byte
	for _, block := range bytes.SplitAfter(body, []byte("\n\n")) {
		var kept []byte
		drop := false
		for _, line := range bytes.SplitAfter(block, []byte("\n")) {
			data, ok := bytes.CutPrefix(line, []byte("data: "))
			if !ok || !gjson.ValidBytes(bytes.TrimSpace(data)) {
				kept = append(kept, line...)
				continue
			}
			e := edit(string(bytes.TrimSpace(data)))
			if e == nil {
				drop = true
				break
			}
			kept = append(append(append(kept, "data: "...), e...), '\n')
		}
		if !drop {
			out = append(out, kept...)
		}
	}
	return out
}

// withoutUsage removes every usage a provider put in a body or stream.
func withoutUsage(t *testing.T, c synthCase, body []byte) []byte {
	t.Helper()
	del := func(j string) []byte {
		if r := gjson.Get(j, "choices"); r.IsArray() && len(r.Array()) == 0 && gjson.Get(j, "usage").IsObject() {
			return nil
		}
		for _, p := range []string{"usage", "response.usage", "message.usage"} {
			var err error
			if j, err = sjson.Delete(j, p); err != nil {
				t.Fatal(err)
			}
		}
		return []byte(j)
	}
	if !c.sse() {
		return del(string(body))
	}
	return stripEvents(t, body, del)
}

func TestSynthesizedUsage(t *testing.T) {
	for _, c := range synthCases {
		t.Run(c.file, func(t *testing.T) {
			body := c.body(t)
			enc := encodingFor(t, "gpt-4o")
			counter := enc.NewCounter()
			check := func(how string, o MeterOptions, chunks [][]byte, want Usage, reported bool) {
				t.Helper()
				counter.Reset(enc)
				o.API, o.SSE, o.Counter = c.api, c.sse(), counter
				m, fwd := runMeter(o, chunks)
				if o.Encoding == "" && !bytes.Equal(fwd, body) && !bytes.Equal(fwd, bytes.Join(chunks, nil)) {
					t.Fatalf("%s: forwarded bytes changed", how)
				}
				got, rep := m.Usage()
				if got != want || rep != reported {
					t.Fatalf("%s: usage %+v (reported %v), want %+v (reported %v)", how, got, rep, want, reported)
				}
				if m.ResponseModel() != c.model {
					t.Fatalf("%s: model %q, want %q", how, m.ResponseModel(), c.model)
				}
				if !m.FirstContent() {
					t.Fatalf("%s: no content seen", how)
				}
				if m.Malformed() != 0 {
					t.Fatalf("%s: %d malformed", how, m.Malformed())
				}
			}
			counted := int64(enc.Count(c.text))
			want, reported := c.want, true
			if want == (Usage{}) {
				want, reported = Usage{Output: counted, Estimated: true}, false
			}
			for i, chunks := range splittings(body, 200, 5) {
				check(fmt.Sprintf("splitting %d", i), MeterOptions{}, chunks, want, reported)
			}
			gz := gzipBytes(t, body)
			for i, chunks := range splittings(gz, 50, 6) {
				check(fmt.Sprintf("gzip splitting %d", i), MeterOptions{Encoding: "gzip"}, chunks, want, reported)
			}
			br := brotliBytes(t, body)
			for i, chunks := range splittings(br, 20, 7) {
				check(fmt.Sprintf("br splitting %d", i), MeterOptions{Encoding: "br"}, chunks, want, reported)
			}

			// Without the provider's usage the text is counted, exactly.
			stripped := withoutUsage(t, c, body)
			for i, chunks := range splittings(stripped, 50, 8) {
				check(fmt.Sprintf("stripped splitting %d", i), MeterOptions{}, chunks,
					Usage{Output: counted, Estimated: true}, false)
			}
			if c.maxOut > 0 {
				check("stripped, stopped at max tokens", MeterOptions{MaxOutput: c.maxOut}, [][]byte{stripped},
					Usage{Output: max(counted, c.maxOut), Estimated: true}, false)
			}
		})
	}
}

// TestAnthropicCutStream cuts a stream before its final message_delta: the
// input is the provider's, the output is counted.
func TestAnthropicCutStream(t *testing.T) {
	c := findSynth("anthropic-tool.sse")
	body := c.body(t)
	cut := body[:bytes.Index(body, []byte("event: message_delta"))]
	enc := encodingFor(t, "gpt-4o")
	counted := int64(enc.Count(c.text))
	for i, chunks := range splittings(cut, 50, 9) {
		counter := enc.NewCounter()
		m, _ := runMeter(MeterOptions{API: APIAnthropicMessages, SSE: true, Counter: counter}, chunks)
		got, reported := m.Usage()
		want := Usage{Input: 472, Output: counted, Estimated: true}
		if got != want || !reported {
			t.Fatalf("splitting %d: usage %+v (reported %v), want %+v", i, got, reported, want)
		}
	}
}

// TestStreamNoise mixes comments, unknown fields, garbage lines, invalid
// JSON and \r line ends into a stream: the usage does not change and each
// invalid event counts as malformed.
func TestStreamNoise(t *testing.T) {
	for _, c := range synthCases {
		if !c.sse() || c.want == (Usage{}) {
			continue
		}
		t.Run(c.file, func(t *testing.T) {
			body := c.body(t)
			var noisy []byte
			blocks := bytes.SplitAfter(body, []byte("\n\n"))
			for i, b := range blocks {
				noisy = append(noisy, ": keep-alive\n"...)
				if i%2 == 0 {
					noisy = append(noisy, "id: 42\nretry: 3000\nnot a field line\n"...)
				}
				noisy = append(noisy, b...)
				if i == 1 {
					noisy = append(noisy, "data: {\"truncated\":\n\ndata: <html>502 Bad Gateway</html>\n\n"...)
				}
			}
			for _, end := range []string{"\n", "\r\n", "\r"} {
				in := bytes.ReplaceAll(noisy, []byte("\n"), []byte(end))
				for i, chunks := range splittings(in, 50, 10) {
					m, _ := runMeter(MeterOptions{API: c.api, SSE: true}, chunks)
					got, reported := m.Usage()
					if got != c.want || !reported {
						t.Fatalf("end %q splitting %d: usage %+v, want %+v", end, i, got, c.want)
					}
					if m.Malformed() != 2 {
						t.Fatalf("end %q splitting %d: malformed %d, want 2", end, i, m.Malformed())
					}
				}
			}
		})
	}
}

// TestCutOpenAIStream ends streams at every event boundary and inside
// events: whatever arrived whole is counted, nothing panics, and usage
// counts only once it arrived.
func TestCutOpenAIStream(t *testing.T) {
	c := findSynth("deepseek-reasoner.sse") // deepseek-reasoner
	body := c.body(t)
	enc := encodingFor(t, "gpt-4o")
	usageAt := bytes.Index(body, []byte(`"choices":[],"usage"`))
	for cut := 0; cut <= len(body); cut++ {
		counter := enc.NewCounter()
		m, _ := runMeter(MeterOptions{API: c.api, SSE: true, Counter: counter}, [][]byte{body[:cut]})
		got, reported := m.Usage()
		// The usage event is complete once its closing brace arrived.
		complete := cut >= bytes.IndexByte(body[usageAt:], '\n')+usageAt
		if complete != reported {
			t.Fatalf("cut %d: reported %v", cut, reported)
		}
		if reported && got != c.want {
			t.Fatalf("cut %d: usage %+v", cut, got)
		}
		if !reported && got.Output > int64(enc.Count(c.text)) {
			t.Fatalf("cut %d: counted %d, more than the whole text", cut, got.Output)
		}
	}
}

// TestHugeEvents puts the usage in events past maxEventSize (a Responses
// API image generation result, a giant tool call, padded Anthropic
// events): the usage is still read, and the stream forwarded untouched.
func TestHugeEvents(t *testing.T) {
	img := strings.Repeat("iVBORw0KGgoAAAANSUhEUgAA", (2<<20)/24)
	tests := []struct {
		name   string
		api    API
		stream string
		want   Usage
		model  string
	}{
		{"responses image", APIResponses,
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Here\"}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"model\":\"gpt-5\",\"output\":[{\"type\":\"image_generation_call\",\"result\":\"" + img + "\"}],\"usage\":{\"input_tokens\":50,\"input_tokens_details\":{\"cached_tokens\":10},\"output_tokens\":1600,\"output_tokens_details\":{\"reasoning_tokens\":100}}}}\n\n",
			Usage{Input: 50, Output: 1600, CachedInput: 10, Reasoning: 100}, "gpt-5"},
		{"chat multi-line data", APIChatCompletions,
			"data: {\"model\":\"m\",\n" + "data: \"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"" + img + "\"}}]}}],\n" +
				"data: \"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n",
			Usage{Input: 7, Output: 9}, "m"},
		{"anthropic", APIAnthropicMessages,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude\",\"pad\":\"" + img + "\",\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"pad\":\"" + img + "\",\"usage\":{\"output_tokens\":30}}\n\n",
			Usage{Input: 7, Output: 30, CachedInput: 2}, "claude"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.stream)
			for i, chunks := range splittings(body, 5, 22) {
				if i == 1 {
					continue // one byte at a time: the small cases cover it
				}
				m, fwd := runMeter(MeterOptions{API: tt.api, SSE: true, DropUsageChunk: true}, chunks)
				got, reported := m.Usage()
				if !reported || got != tt.want || m.ResponseModel() != tt.model {
					t.Fatalf("usage %+v (reported %v) model %q, want %+v %q", got, reported, m.ResponseModel(), tt.want, tt.model)
				}
				if !bytes.Equal(fwd, body) {
					t.Fatal("forwarded bytes changed")
				}
			}
		})
	}
}
