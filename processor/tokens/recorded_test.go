package tokens

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"
)

// exchange is one recorded request and response.
type exchange struct {
	Request  string
	Response string
}

func loadCassette(t *testing.T, name string) exchange {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "recorded", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Interactions []struct {
			Request struct {
				Body string `yaml:"body"`
			} `yaml:"request"`
			Response struct {
				Body string `yaml:"body"`
			} `yaml:"response"`
		} `yaml:"interactions"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("cannot parse %s: %v", name, err)
	}
	if len(c.Interactions) != 1 {
		t.Fatalf("%s: %d interactions, want 1", name, len(c.Interactions))
	}
	return exchange{Request: c.Interactions[0].Request.Body, Response: c.Interactions[0].Response.Body}
}

func encodingOf(t *testing.T, model string) *Encoding {
	t.Helper()
	e, ok := ForModel(model)
	if !ok {
		t.Fatalf("no encoding for recorded model %q", model)
	}
	return e
}

// countStrings counts a JSON string or array of strings.
func countStrings(t *testing.T, e *Encoding, v gjson.Result) int {
	t.Helper()
	n := 0
	for _, s := range v.Array() {
		if s.Type != gjson.String {
			t.Fatalf("not a string: %s", s.Raw)
		}
		n += e.Count(s.String())
	}
	return n
}

// TestRecordedUsage checks counts against the usage OpenAI reported for the
// same text.
func TestRecordedUsage(t *testing.T) {
	t.Run("embeddings", func(t *testing.T) {
		for _, name := range []string{"embeddings-basic", "embeddings-dimensions", "embeddings-large-text", "embeddings-max-tokens", "embeddings-whitespace"} {
			t.Run(name, func(t *testing.T) {
				x := loadCassette(t, name)
				e := encodingOf(t, gjson.Get(x.Request, "model").String())
				got := countStrings(t, e, gjson.Get(x.Request, "input"))
				if want := int(gjson.Get(x.Response, "usage.prompt_tokens").Int()); got != want {
					t.Fatalf("input counts %d tokens, provider reported %d", got, want)
				}
			})
		}
	})
	t.Run("completions", func(t *testing.T) {
		for _, name := range []string{"completion-basic", "completion-text-batch"} {
			t.Run(name, func(t *testing.T) {
				x := loadCassette(t, name)
				e := encodingOf(t, gjson.Get(x.Request, "model").String())
				prompt := countStrings(t, e, gjson.Get(x.Request, "prompt"))
				if want := int(gjson.Get(x.Response, "usage.prompt_tokens").Int()); prompt != want {
					t.Errorf("prompt counts %d tokens, provider reported %d", prompt, want)
				}
				completion := countStrings(t, e, gjson.Get(x.Response, "choices.#.text"))
				if want := int(gjson.Get(x.Response, "usage.completion_tokens").Int()); completion != want {
					t.Errorf("completion counts %d tokens, provider reported %d", completion, want)
				}
			})
		}
	})
	t.Run("chat", func(t *testing.T) {
		for _, name := range []string{"chat-basic", "chat-detailed-usage", "chat-json-mode", "chat-text-to-audio"} {
			t.Run(name, func(t *testing.T) {
				x := loadCassette(t, name)
				model := gjson.Get(x.Request, "model").String()
				var msgs []Message
				for _, m := range gjson.Get(x.Request, "messages").Array() {
					msgs = append(msgs, Message{Role: m.Get("role").String(), Name: m.Get("name").String(), Content: m.Get("content").String()})
				}
				got := encodingOf(t, model).CountChat(ChatFormatFor(model), msgs)
				if want := int(gjson.Get(x.Response, "usage.prompt_tokens").Int()); got != want {
					t.Fatalf("%s: messages count %d prompt tokens, provider reported %d", model, got, want)
				}
			})
		}
	})
}

// TestRecordedStream counts a recorded streamed completion that stopped at
// max_tokens, so it holds exactly max_tokens tokens, however its text
// arrives.
func TestRecordedStream(t *testing.T) {
	x := loadCassette(t, "completion-streaming")
	e := encodingOf(t, gjson.Get(x.Request, "model").String())
	want := gjson.Get(x.Request, "max_tokens").Int()
	var text strings.Builder
	for _, event := range strings.Split(x.Response, "\n\n") {
		data, ok := strings.CutPrefix(event, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		if r := gjson.Get(data, "choices.0.finish_reason"); r.Exists() && r.Type != gjson.Null && r.String() != "length" {
			t.Fatalf("stream finished for %q, want length", r.String())
		}
		text.WriteString(gjson.Get(data, "choices.0.text").String())
	}
	full := text.String()
	r := rand.New(rand.NewPCG(5, 5))
	splits := [][]int{nil}
	var oneByte []int
	for i := 1; i < len(full); i++ {
		oneByte = append(oneByte, i)
	}
	splits = append(splits, oneByte)
	for k := 0; k < 200; k++ {
		splits = append(splits, randomCuts(r, len(full)))
	}
	for _, cuts := range splits {
		c := e.NewCounter()
		writeSplit(c, full, cuts)
		if got := c.Count(); got != want {
			t.Fatalf("split at %v: Count() = %d, want %d (max_tokens reached)", cuts, got, want)
		}
	}
}
