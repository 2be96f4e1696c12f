package usage

import (
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		path string
		want API
	}{
		{"/v1/chat/completions", APIChatCompletions},
		{"/v1/chat/completions?foo=bar", APIChatCompletions},
		{"/v1/chat/completions/", APIChatCompletions},
		{"/chat/completions", APIChatCompletions},
		{"/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21", APIChatCompletions},
		{"/openai/v1/chat/completions", APIChatCompletions},
		{"/compatible-mode/v1/chat/completions", APIChatCompletions},
		{"/v1beta/openai/chat/completions", APIChatCompletions},
		{"/api/paas/v4/chat/completions", APIChatCompletions},
		{"/v1/completions", APICompletions},
		{"/openai/deployments/davinci/completions?api-version=2024-10-21", APICompletions},
		{"/v1/responses", APIResponses},
		{"/openai/v1/responses?api-version=preview", APIResponses},
		{"/v1/embeddings", APIEmbeddings},
		{"/openai/deployments/emb/embeddings?api-version=2024-10-21", APIEmbeddings},
		{"/v1/messages", APIAnthropicMessages},
		{"/anthropic/v1/messages?beta=true", APIAnthropicMessages},
		{"/v1/messages/count_tokens", APIUnknown},
		{"/v1/threads/thread_abc/messages", APIUnknown},
		{"/v1/responses/resp_123", APIUnknown},
		{"/v1/models", APIUnknown},
		{"/v1/audio/transcriptions", APIUnknown},
		{"", APIUnknown},
		{"/", APIUnknown},
		{"/x?/v1/chat/completions", APIUnknown},
	}
	for _, tt := range tests {
		if got := Detect(tt.path); got != tt.want {
			t.Errorf("Detect(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestAPIString(t *testing.T) {
	seen := map[string]bool{}
	for a := APIUnknown; a <= APIAnthropicMessages; a++ {
		s := a.String()
		if s == "" || seen[s] {
			t.Fatalf("%d: name %q empty or repeated", a, s)
		}
		seen[s] = true
	}
	if API(200).String() != "unknown" {
		t.Fatalf("out of range: %q", API(200).String())
	}
}

func TestModelFromPath(t *testing.T) {
	tests := map[string]string{
		"/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21": "gpt-4o-prod",
		"/openai/deployments/my%20dep/embeddings":                                 "my dep",
		"/openai/deployments/x":                                                   "x",
		"/v1/chat/completions":                                                    "",
		"/openai/v1/chat/completions":                                             "",
	}
	for path, want := range tests {
		if got := ModelFromPath(path); got != want {
			t.Errorf("ModelFromPath(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		api  API
		body string
		want Request
	}{
		{"chat", APIChatCompletions, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
			Request{Model: "gpt-4o", Choices: 1}},
		{"stream with usage", APIChatCompletions, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":100}`,
			Request{Model: "m", Stream: true, IncludeUsage: true, MaxOutput: 100, Choices: 1}},
		{"largest cap wins", APIChatCompletions, `{"max_tokens":50,"max_completion_tokens":70}`,
			Request{MaxOutput: 70, Choices: 1}},
		{"n choices", APIChatCompletions, `{"n":3,"max_tokens":10}`, Request{MaxOutput: 10, Choices: 3}},
		{"best_of", APICompletions, `{"prompt":"x","n":2,"best_of":5}`, Request{Choices: 5}},
		{"nulls are defaults", APIChatCompletions, `{"model":"m","stream":null,"max_tokens":null,"stream_options":null,"n":null}`,
			Request{Model: "m", Choices: 1}},
		{"integral float", APIChatCompletions, `{"max_tokens":1e3}`, Request{MaxOutput: 1000, Choices: 1}},
		{"responses", APIResponses, `{"model":"o3","input":"hi","max_output_tokens":2048,"stream":true}`,
			Request{Model: "o3", Stream: true, MaxOutput: 2048, Choices: 1}},
		{"anthropic", APIAnthropicMessages, `{"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"x"}],"messages":[]}`,
			Request{Model: "claude-sonnet-4-5", MaxOutput: 1024, Choices: 1}},
		{"embeddings tokens", APIEmbeddings, `{"model":"e","input":[[1,2],[3]]}`, Request{Model: "e", Choices: 1}},
		{"n ignored for embeddings", APIEmbeddings, `{"input":"x","n":"whatever"}`, Request{Choices: 1}},
		{"unknown api, not json", APIUnknown, `--boundary\r\nContent-Disposition: form-data`, Request{Choices: 1}},
		{"unknown api, json", APIUnknown, `{"model":"whisper-1"}`, Request{Model: "whisper-1", Choices: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.api, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	tests := []struct {
		name  string
		api   API
		body  string
		field string // named in the error
	}{
		{"invalid json", APIChatCompletions, `{"model":`, "JSON"},
		{"empty", APIChatCompletions, ``, "JSON"},
		{"array", APIChatCompletions, `[1,2]`, "object"},
		{"model number", APIChatCompletions, `{"model":4}`, "model"},
		{"stream string", APIChatCompletions, `{"stream":"true"}`, "stream"},
		{"stream_options array", APIChatCompletions, `{"stream_options":[]}`, "stream_options"},
		{"include_usage string", APIChatCompletions, `{"stream_options":{"include_usage":"yes"}}`, "include_usage"},
		{"negative max_tokens", APIChatCompletions, `{"max_tokens":-1}`, "max_tokens"},
		{"fractional max_tokens", APIChatCompletions, `{"max_completion_tokens":1.5}`, "max_completion_tokens"},
		{"string max_output_tokens", APIResponses, `{"max_output_tokens":"10"}`, "max_output_tokens"},
		{"huge max_tokens", APIChatCompletions, `{"max_tokens":1e300}`, "max_tokens"},
		{"n zero", APIChatCompletions, `{"n":0}`, "n"},
		{"n too large", APIChatCompletions, `{"n":100000}`, "n"},
		{"messages object", APIChatCompletions, `{"messages":{}}`, "messages"},
		{"message not object", APIAnthropicMessages, `{"messages":["hi"]}`, "messages[0]"},
		{"tools object", APIChatCompletions, `{"tools":{}}`, "tools"},
		{"prompt object", APICompletions, `{"prompt":{}}`, "prompt"},
		{"prompt bad token", APICompletions, `{"prompt":[1,-2]}`, "prompt"},
		{"input number", APIEmbeddings, `{"input":5}`, "input"},
		{"input mixed nested", APIEmbeddings, `{"input":[[1,"a"]]}`, "input"},
		{"responses input number", APIResponses, `{"input":5}`, "input"},
		{"instructions array", APIResponses, `{"instructions":[]}`, "instructions"},
		{"system number", APIAnthropicMessages, `{"system":1}`, "system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.api, []byte(tt.body))
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name %q", err, tt.field)
			}
		})
	}
	// Every problem is reported at once.
	_, err := ParseRequest(APIChatCompletions, []byte(`{"model":1,"stream":"x","max_tokens":-3}`))
	for _, f := range []string{"model", "stream", "max_tokens"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Fatalf("error %v does not name %s", err, f)
		}
	}
}

func TestAddIncludeUsage(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"absent", `{"model":"m","stream":true,"messages":[{"role":"user","content":"é \u00e9 \"q\""}]}`},
		{"pretty", "{\n  \"model\": \"m\",\n  \"stream\": true\n}"},
		{"other options", `{"stream":true,"stream_options":{"include_obfuscation":false}}`},
		{"false", `{"stream":true,"stream_options":{"include_usage":false}}`},
		{"null options", `{"stream":true,"stream_options":null}`},
		{"already", `{"stream":true,"stream_options":{"include_usage":true}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := AddIncludeUsage([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !gjson.ValidBytes(out) || gjson.GetBytes(out, "stream_options.include_usage").Type != gjson.True {
				t.Fatalf("result %s", out)
			}
			// Everything else is kept byte for byte.
			orig := gjson.Parse(tt.body)
			orig.ForEach(func(k, v gjson.Result) bool {
				if k.Str != "stream_options" && gjson.GetBytes(out, k.Str).Raw != v.Raw {
					t.Fatalf("%s changed: %s", k.Str, out)
				}
				return true
			})
			if so := orig.Get("stream_options"); so.IsObject() {
				so.ForEach(func(k, v gjson.Result) bool {
					if k.Str != "include_usage" && gjson.GetBytes(out, "stream_options."+k.Str).Raw != v.Raw {
						t.Fatalf("stream_options.%s changed: %s", k.Str, out)
					}
					return true
				})
			}
			r, err := ParseRequest(APIChatCompletions, out)
			if err != nil || !r.IncludeUsage {
				t.Fatalf("parsed back: %+v, %v", r, err)
			}
		})
	}
	body := `{"stream":true}`
	if out, err := AddIncludeUsage([]byte(body)); err != nil || !strings.HasPrefix(string(out), body[:len(body)-1]) {
		t.Fatalf("the original bytes are not kept as a prefix: %s, %v", out, err)
	}
	for _, bad := range []string{`nope`, `[1]`, `{"stream_options":"x"}`} {
		if _, err := AddIncludeUsage([]byte(bad)); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("%s: err = %v", bad, err)
		}
	}
}
