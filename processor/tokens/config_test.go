package tokens

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings, one per expected problem; none when valid
	}{
		{"empty", Config{}, nil},
		{"valid", Config{DefaultEncoding: Cl100kBase, Models: map[string]string{"deepseek-*": Cl100kBase, "qwen-max": O200kBase}}, nil},
		{"every problem at once", Config{
			DefaultEncoding: "o300k",
			Models:          map[string]string{"*": O200kBase, "llama-*": "llama3", "mistral": ""},
		}, []string{
			`tokens.default_encoding: unknown encoding "o300k"`,
			`tokens.models["*"]: model name is empty`,
			`tokens.models["llama-*"]: unknown encoding "llama3"`,
			`tokens.models["mistral"]: unknown encoding ""`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate("tokens")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate returned no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestResolver(t *testing.T) {
	var cfg Config
	err := yaml.Unmarshal([]byte(`
default_encoding: cl100k_base
models:
  deepseek-*: o200k_base
  deepseek-coder-*: p50k_base
  gpt-4o-legacy: cl100k_base
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cfg.Compile()
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	tests := []struct{ model, want string }{
		{"deepseek-chat", O200kBase},
		{"DeepSeek/DeepSeek-Chat", O200kBase},
		{"deepseek-coder-v2", P50kBase},
		{"gpt-4o-legacy", Cl100kBase},
		{"openai/gpt-4o-legacy", Cl100kBase},
		{"gpt-4o-mini", O200kBase},
		{"gpt-3.5-turbo", Cl100kBase},
		{"claude-sonnet-4", Cl100kBase},
		{"", Cl100kBase},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			if got := r.ForModel(tt.model).Name(); got != tt.want {
				t.Fatalf("ForModel(%q) = %s, want %s", tt.model, got, tt.want)
			}
		})
	}
	var empty Config
	r, err = empty.Compile()
	if err != nil {
		t.Fatalf("Compile(empty): %v", err)
	}
	if got := r.ForModel("mystery-model").Name(); got != O200kBase {
		t.Fatalf("default encoding = %s, want %s", got, O200kBase)
	}
	bad := Config{DefaultEncoding: "nope"}
	if _, err := bad.Compile(); err == nil {
		t.Fatal("Compile accepted an unknown encoding")
	}
}

func TestCountChat(t *testing.T) {
	e := mustGet(t, O200kBase)
	f := ChatFormat{PerMessage: 3, PerName: 1, Reply: 3}
	msgs := []Message{
		{Role: "system", Content: "You are terse."},
		{Role: "user", Name: "ada", Content: "Hello!"},
	}
	want := 3 + (3 + e.Count("system") + e.Count("You are terse.")) +
		(3 + e.Count("user") + e.Count("Hello!") + 1 + e.Count("ada"))
	if got := e.CountChat(f, msgs); got != want {
		t.Fatalf("CountChat = %d, want %d", got, want)
	}
	if got := e.CountChat(f, nil); got != 3 {
		t.Fatalf("CountChat(no messages) = %d, want the reply's 3", got)
	}
	for model, reply := range map[string]int{"gpt-5-nano": 2, "openai/gpt-5": 2, "gpt-4o": 3, "gpt-4.1-mini": 3, "unknown": 3} {
		if got := ChatFormatFor(model).Reply; got != reply {
			t.Errorf("ChatFormatFor(%q).Reply = %d, want %d", model, got, reply)
		}
	}
}
