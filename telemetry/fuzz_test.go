package telemetry

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzLabelValue checks, for any value a client can send as a model name,
// that the label value reported is the value itself, "other" or "none";
// that it is valid UTF-8 and short; and that a value scrubbed for logs is
// never kept as a label either.
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"gpt-4o", "", "claude-3-5-sonnet", "sk-proj-abcdefghijklmnopqrstuvwxyz", "\xff", strings.Repeat("a", 300), "Bearer x", "ft:gpt-4o:org::id"} {
		f.Add(s)
	}
	tel, _ := newTest(f, Config{Models: []string{"*"}, MaxModels: 1000}, Options{Secrets: func() []string { return []string{"secret-provider-key"} }})
	f.Fuzz(func(t *testing.T, v string) {
		got := tel.models.fold(v)
		switch {
		case got == other, got == none && v == "":
		case got == v:
			if !utf8.ValidString(got) || len(got) > maxLabelLen {
				t.Fatalf("kept label %q is not short valid UTF-8", got)
			}
			if tel.secrets.scrub(v) == redacted {
				t.Fatalf("kept label %q that logs would redact", got)
			}
		default:
			t.Fatalf("fold(%q) = %q", v, got)
		}
		if s := tel.secrets.scrub(v); s != v && s != redacted {
			t.Fatalf("scrub(%q) = %q", v, s)
		}
		if strings.Contains(v, "secret-provider-key") && tel.secrets.scrub(v) != redacted {
			t.Fatalf("scrub(%q) kept a known secret", v)
		}
	})
}
