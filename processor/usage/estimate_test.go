package usage

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func dataURL(t *testing.T, mime string, enc func(*bytes.Buffer, image.Image) error, w, h int) string {
	t.Helper()
	var buf bytes.Buffer
	if err := enc(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestDataImageSize(t *testing.T) {
	pngEnc := func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) }
	gifEnc := func(b *bytes.Buffer, m image.Image) error { return gif.Encode(b, m, nil) }
	jpgEnc := func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) }
	webp := func(chunk string, body []byte) string {
		b := append([]byte("RIFF\x00\x00\x00\x00WEBP"+chunk+"\x00\x00\x00\x00"), body...)
		b = append(b, make([]byte, 16)...)
		return "data:image/webp;base64," + base64.StdEncoding.EncodeToString(b)
	}
	tests := []struct {
		url  string
		w, h int
		ok   bool
	}{
		{dataURL(t, "image/png", pngEnc, 640, 480), 640, 480, true},
		{dataURL(t, "image/gif", gifEnc, 33, 77), 33, 77, true},
		{dataURL(t, "image/jpeg", jpgEnc, 1800, 2400), 1800, 2400, true},
		// VP8X: 24-bit width-1 and height-1 after 4 flag bytes.
		{webp("VP8X", []byte{0, 0, 0, 0, 0xff, 0x03, 0x00, 0xff, 0x01, 0x00}), 1024, 512, true},
		// VP8L: signature byte, then 14-bit width-1 and height-1.
		{webp("VP8L", []byte{0x2f, 99, 0 | 199<<6&0xff, 199 >> 2, 0}), 100, 200, true},
		// VP8: frame tag, start code, then 14-bit width and height.
		{webp("VP8 ", []byte{0, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}), 320, 240, true},
		{"https://example.com/cat.png", 0, 0, false},
		{"data:image/png;base64,!!!!", 0, 0, false},
		{"data:text/plain;base64,aGVsbG8gd29ybGQ=", 0, 0, false},
	}
	for i, tt := range tests {
		w, h, ok := dataImageSize(tt.url)
		if w != tt.w || h != tt.h || ok != tt.ok {
			t.Errorf("%d: size %dx%d %v, want %dx%d %v", i, w, h, ok, tt.w, tt.h, tt.ok)
		}
	}
}

// TestImageTokens checks the formulas against the worked examples of
// OpenAI's vision pricing guide.
func TestImageTokens(t *testing.T) {
	png1024 := dataURL(t, "image/png", func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) }, 1024, 1024)
	png2048x4096 := dataURL(t, "image/png", func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) }, 2048, 4096)
	jpg1800x2400 := dataURL(t, "image/jpeg", func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) }, 1800, 2400)
	tests := []struct {
		model, url, detail string
		want               int64
	}{
		{"gpt-4o", png1024, "high", 765},
		{"gpt-4o", png2048x4096, "high", 1105},
		{"gpt-4o", png2048x4096, "low", 85},
		{"gpt-4o", "https://example.com/x.png", "auto", 765}, // unknown size: 1024×1024
		{"gpt-4.1-mini", png1024, "", 1659},                  // 1024 patches × 1.62
		{"gpt-4.1-mini", jpg1800x2400, "", 2353},             // 1452 patches × 1.62
		{"openai/gpt-5-nano", png1024, "", 2520},             // 1024 × 2.46
	}
	for _, tt := range tests {
		if got := imageTokens(tt.model, tt.url, tt.detail); got != tt.want {
			t.Errorf("%s %.30s %s: %d, want %d", tt.model, tt.url, tt.detail, got, tt.want)
		}
	}
	if p := patches(1800, 2400); p != 1452 {
		t.Errorf("patches(1800, 2400) = %d, want 1452", p)
	}
}

// TestEstimatePromptShapes checks what each API's estimate is made of,
// piece by piece.
func TestEstimatePromptShapes(t *testing.T) {
	enc := encodingFor(t, "gpt-4o")
	c := func(s string) int64 { return int64(enc.Count(s)) }
	png16 := dataURL(t, "image/png", func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) }, 16, 16)
	tests := []struct {
		name string
		api  API
		body string
		want int64
	}{
		{"chat name and tool calls", APIChatCompletions,
			`{"model":"gpt-4o","messages":[{"role":"user","name":"bob","content":"Hi"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},` +
				`{"role":"tool","tool_call_id":"c1","content":"42"}]}`,
			3 + c("user") + c("bob") + 1 + c("Hi") +
				3 + c("assistant") + c("f") + c(`{"a":1}`) +
				3 + c("tool") + c("c1") + c("42") + 3},
		{"chat parts", APIChatCompletions,
			`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What?"},{"type":"image_url","image_url":{"url":"` + png16 + `","detail":"low"}},{"type":"file","file":{"file_id":"f"}}]}]}`,
			3 + c("user") + c("What?") + 85 + fileTokens + 3},
		{"responses string", APIResponses, `{"model":"gpt-4.1","instructions":"Be brief.","input":"Hello there"}`,
			c("Be brief.") + 3 + c("Hello there") + 3},
		{"responses items", APIResponses,
			`{"model":"gpt-4.1","input":[{"role":"user","content":[{"type":"input_text","text":"Hi"},{"type":"input_image","image_url":"` + png16 + `","detail":"high"}]},` +
				`{"type":"function_call","call_id":"x","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"x","output":"42"},` +
				`{"type":"reasoning","summary":[{"type":"summary_text","text":"Thinking"}]}]}`,
			3 + c("user") + c("Hi") + (85 + 170) + 3 + c("f") + c("{}") + 3 + c("42") + 3 + c("Thinking") + 3},
		{"anthropic", APIAnthropicMessages,
			`{"model":"claude","system":[{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":"Hi"},` +
				`{"role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"Hello"},{"type":"tool_use","id":"t","name":"f","input":{"a": 1}}]},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"42"}]},{"type":"image","source":{"type":"url","url":"u"}},{"type":"document","source":{}}]}],` +
				`"tools":[{"name":"f","description":"d","input_schema":{"type": "object"}}]}`,
			c("Be brief.") + 3 + c("user") + c("Hi") +
				3 + c("assistant") + c("hmm") + c("Hello") + c("f") + c(`{"a":1}`) +
				3 + c("user") + c("42") + anthropicImage + fileTokens + 3 +
				c("f") + c("d") + c(`{"type":"object"}`)},
		{"embeddings nested tokens", APIEmbeddings, `{"input":[[1,2,3],[4,5]]}`, 5},
		{"completions array with suffix", APICompletions, `{"prompt":["a b","c"],"suffix":"d"}`, c("a b") + c("c") + c("d")},
		{"unknown", APIUnknown, `{"prompt":"x"}`, 0},
		{"not json", APIChatCompletions, `nope`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EstimatePrompt(tt.api, []byte(tt.body), enc); got != tt.want {
				t.Fatalf("estimate %d, want %d", got, tt.want)
			}
		})
	}
	// Without an encoding, 4 bytes a token.
	if got := EstimatePrompt(APIEmbeddings, []byte(`{"input":"12345678"}`), nil); got != 2 {
		t.Fatalf("no encoding: %d, want 2", got)
	}
}

func TestToolsRendering(t *testing.T) {
	tools := gjson.Parse(`[{"type":"function","function":{"name":"get_weather","description":"Get the weather.\nIn a city.",
		"parameters":{"type":"object","required":["city"],"properties":{
			"city":{"type":"string","description":"City name"},
			"unit":{"type":"string","enum":["c","f"]},
			"days":{"type":["integer","null"]},
			"tags":{"type":"array","items":{"type":"string"}},
			"where":{"type":"object","properties":{"lat":{"type":"number"}}},
			"alt":{"anyOf":[{"type":"boolean"},{"$ref":"#/$defs/Place"}]}}}}},
		{"type":"function","function":{"name":"ping"}},
		{"type":"web_search"}]`)
	var e estimator
	e.tools(tools, "function", false)
	want := "# Tools\n\n## functions\n\nnamespace functions {\n\n" +
		"// Get the weather.\n// In a city.\ntype get_weather = (_: {\n" +
		"// City name\ncity: string,\n" +
		"unit?: \"c\" | \"f\",\n" +
		"days?: number | null,\n" +
		"tags?: string[],\n" +
		"where?: {\nlat?: number,\n},\n" +
		"alt?: boolean | Place,\n" +
		"}) => any;\n\n" +
		"type ping = () => any;\n\n" +
		"} // namespace functions"
	// With no encoding the estimate is bytes/4: compare the lengths.
	wantN := int64(len(`{"type":"web_search"}`)+3)/4 + int64(len(want)+3)/4 + toolsOverhead
	if e.n != wantN {
		t.Fatalf("estimate %d, want %d for:\n%s", e.n, wantN, want)
	}
}

func TestAppendUnescaped(t *testing.T) {
	for _, s := range []string{
		"plain", "quote \" backslash \\ slash /", "\b\f\n\r\t", "é 世界 😀", "\u2028\u2029", "<&>", "\x00\x1f",
	} {
		raw, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(appendUnescaped(nil, string(raw[1:len(raw)-1]))); got != s {
			t.Errorf("%q: got %q", raw, got)
		}
	}
	for raw, want := range map[string]string{
		`\ud83d\ude00`: "😀",
		`\uD83D\uDE00`: "😀",
		`\ud83d`:       "\ufffd",
		`\ud83dx`:      "\ufffdx",
		`\ude00\ud83d`: "\ufffd\ufffd",
		`\u12`:         `\u12`,
		`\q`:           `\q`,
		`end\`:         `end\`,
	} {
		if got := string(appendUnescaped(nil, raw)); got != want {
			t.Errorf("%s: got %q, want %q", raw, got, want)
		}
	}
	if !strings.Contains(string(appendUnescaped([]byte("keep:"), "x")), "keep:x") {
		t.Error("dst not kept")
	}
}
