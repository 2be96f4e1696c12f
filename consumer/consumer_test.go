package consumer

import (
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseSecret(t *testing.T) {
	plain := HashKey("sk-plain")
	tests := []struct {
		name, in string
		want     Hash
		wantErr  string
	}{
		{"plain key is hashed", "sk-plain", plain, ""},
		{"hash form is decoded", plain.String(), plain, ""},
		{"env reference is read and hashed", "env:KEY", plain, ""},
		{"unset env is an error", "env:MISSING", Hash{}, "MISSING is empty or unset"},
		{"short hash is an error", "sha256:abcd", Hash{}, "64 hex digits"},
		{"non-hex hash is an error", "sha256:" + strings.Repeat("zz", 32), Hash{}, "64 hex digits"},
		{"empty is an error", "", Hash{}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.in, env(map[string]string{"KEY": "sk-plain"}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestRegistryAuthenticates(t *testing.T) {
	r, err := NewRegistry([]Config{
		{Name: "team-a", Keys: []string{"sk-a1", HashKey("sk-a2").String()}},
		{Name: "team-b", Keys: []string{"env:B_KEY"}, Models: []string{"gpt-4o*"}},
	}, env(map[string]string{"B_KEY": "sk-b"}))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"sk-a1": "team-a", "sk-a2": "team-a", "sk-b": "team-b"} {
		c, ok := r.Authenticate(key)
		if !ok || c.Name != want {
			t.Errorf("Authenticate(%q) = %v, %v; want %s", key, c, ok, want)
		}
	}
	for _, key := range []string{"", "sk-a", "sk-a1 ", "SK-A1", HashKey("sk-a1").String()} {
		if c, ok := r.Authenticate(key); ok {
			t.Errorf("Authenticate(%q) = %s, want refusal", key, c.Name)
		}
	}
	if got := r.Names(); strings.Join(got, ",") != "team-a,team-b" {
		t.Errorf("Names() = %v", got)
	}
}

func TestAllowsModel(t *testing.T) {
	c := &Consumer{Name: "x", models: []string{"gpt-4o*", "claude-3-?-sonnet"}}
	for model, want := range map[string]bool{
		"gpt-4o": true, "gpt-4o-mini": true, "gpt-4": false, "claude-3-5-sonnet": true,
		"claude-3-opus": false, "": true, "GPT-4O": false,
	} {
		if got := c.AllowsModel(model); got != want {
			t.Errorf("AllowsModel(%q) = %v, want %v", model, got, want)
		}
	}
	if !(&Consumer{}).AllowsModel("anything") {
		t.Error("a consumer without an allow-list must allow every model")
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Validate("consumers", []Config{
		{Name: "", Keys: []string{"k1"}},
		{Name: "a", Keys: nil},
		{Name: "a", Keys: []string{"k1", "env:NOPE"}, Models: []string{"[bad"}},
		{Name: "b{x}", Keys: []string{"k2"}},
	}, env(nil))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"consumers[0].name: must be set",
		"consumers[1].keys: at least one key",
		"consumers[2].name: \"a\" already used by consumers[1]",
		"consumers[2].keys[0]: the same key is already given to",
		"consumers[2].keys[1]: environment variable NOPE",
		"consumers[2].models[0]: bad glob",
		"consumers[3].name: \"b{x}\" must not contain braces",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors miss %q:\n%v", want, err)
		}
	}
}

func TestHashString(t *testing.T) {
	// The well-known SHA-256 of "test".
	const want = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	if got := HashKey("test").String(); got != want {
		t.Fatalf("HashKey(test) = %s, want %s", got, want)
	}
}
