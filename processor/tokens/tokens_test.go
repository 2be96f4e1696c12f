package tokens

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unicode"
)

func TestGet(t *testing.T) {
	for _, name := range allEncodings {
		t.Run(name, func(t *testing.T) {
			e := mustGet(t, name)
			if e.Name() != name {
				t.Fatalf("Name() = %q, want %q", e.Name(), name)
			}
			if again := mustGet(t, name); again != e {
				t.Fatal("Get returned a second copy of the encoding")
			}
		})
	}
	_, err := Get("gpt2_base")
	if err == nil || !strings.Contains(err.Error(), "gpt2_base") {
		t.Fatalf("Get(unknown) error = %v, want one naming the encoding", err)
	}
}

func TestForModel(t *testing.T) {
	tests := []struct {
		model string
		want  string // "" when unknown
	}{
		{"gpt-4o", O200kBase},
		{"gpt-4o-mini", O200kBase},
		{"gpt-4o-2024-08-06", O200kBase},
		{"chatgpt-4o-latest", O200kBase},
		{"gpt-4.1", O200kBase},
		{"gpt-4.1-nano-2025-04-14", O200kBase},
		{"gpt-4.5-preview", O200kBase},
		{"gpt-5", O200kBase},
		{"gpt-5-mini", O200kBase},
		{"gpt-5.1", O200kBase},
		{"o1", O200kBase},
		{"o1-mini", O200kBase},
		{"o3-mini-2025-01-31", O200kBase},
		{"o4-mini", O200kBase},
		{"openai/gpt-4o", O200kBase},
		{"azure/openai/gpt-4.1-mini", O200kBase},
		{"GPT-4O", O200kBase},
		{"ft:gpt-4o-mini:acme::abc123", O200kBase},
		{"gpt-4", Cl100kBase},
		{"gpt-4-turbo", Cl100kBase},
		{"gpt-4-0613", Cl100kBase},
		{"gpt-4-32k", Cl100kBase},
		{"gpt-3.5-turbo", Cl100kBase},
		{"gpt-3.5-turbo-0125", Cl100kBase},
		{"gpt-35-turbo", Cl100kBase},
		{"gpt-35-turbo-16k-0613", Cl100kBase},
		{"ft:gpt-3.5-turbo:acme::xyz", Cl100kBase},
		{"text-embedding-3-small", Cl100kBase},
		{"text-embedding-3-large", Cl100kBase},
		{"text-embedding-ada-002", Cl100kBase},
		{"openai/text-embedding-3-small", Cl100kBase},
		{"claude-3-5-sonnet", ""},
		{"o100", ""},
		{"gpt-4x", ""},
		{"gpt-4.7", ""},
		{"llama-3.1-70b", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			e, ok := ForModel(tt.model)
			if tt.want == "" {
				if ok {
					t.Fatalf("ForModel(%q) = %s, want unknown", tt.model, e.Name())
				}
				return
			}
			if !ok {
				t.Fatalf("ForModel(%q) unknown, want %s", tt.model, tt.want)
			}
			if e.Name() != tt.want {
				t.Fatalf("ForModel(%q) = %s, want %s", tt.model, e.Name(), tt.want)
			}
		})
	}
}

// edgeCases exercise each branch of the pre-tokenizers and the BPE.
var edgeCases = []string{
	"", "a", " ", "  ", "\n", "hello world", "Hello World", "HELLO", "HELLOworld", "helloWORLD",
	"it's", "IT'S", "it'S", "It'Ll", "it'x", "'s", "'", "''s", "x's's", " 's", "don't", "'ll'", "'LL", "'re'",
	"a'", "he'd've", "1'st", "ǅemal", "ǅ", "ʰʰ", "ʰa", "Aʰ", "aʰ", "々々", "e\u0301", "\u0301", "\u0301\u0301a", " \u0301a", "\u0301ABC ", "\u0301ABC", "x\u0301ABC.",
	"!\u0301", "A\u0301B", "ÀÉ", "ÀÉé",
	"1", "12", "123", "1234", "1234567", "٣٤٥٦", "Ⅻ", "½¾", "a1b2", "1a", " 1", "  123",
	"!", "!!", " !", "  !", "!\n", "!\r\n\r\n", "!/\n/x", " /", "//", "!\n/", "...\n\n", " ?\n",
	"   x", "  \n  x", "\n\n\nx", "\r\n\r\n  ", "\t\tx", " \t\n", " \u00a0x", "\u3000\u3000中", "a  ", "a \n", "\n ",
	"  \n\n  \n x", "x\n \n", "\v\fa",
	"中文", "中文，测试。", "，中文", " 中文", "ー", "カタカナー", "한국어", "😀", "👍🏽", "👨‍👩‍👧", " 😀😀", "🇺🇸🇯🇵",
	"\xff", "\xff\xfe", "a\xffb", "\xe4\xb8", "\xe4\xb8a", "\xed\xa0\x80", " \xff", "\xffs", "'\xff", "\xef\xbf\xbd",
	"<|endoftext|>", "<|fim_prefix|>x", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	strings.Repeat("中", 200), strings.Repeat(" ", 300), strings.Repeat("ab", 150), strings.Repeat("!", 100) + "\n",
	strings.Repeat("1", 100), strings.Repeat("\r\n", 50), strings.Repeat("a b ", 50),
}

func TestCountEdgeCases(t *testing.T) {
	for _, name := range allEncodings {
		e := mustGet(t, name)
		t.Run(name, func(t *testing.T) {
			for _, s := range edgeCases {
				if got, want := e.Count(s), oracleCount(t, name, s); got != want {
					t.Errorf("Count(%q) = %d, want %d", s, got, want)
				}
				if got, want := e.CountBytes([]byte(s)), e.Count(s); got != want {
					t.Errorf("CountBytes(%q) = %d, Count = %d", s, got, want)
				}
			}
		})
	}
}

// TestCountKnown pins a few counts published by OpenAI's tokenizer, so that a
// change of oracle cannot hide a wrong count.
func TestCountKnown(t *testing.T) {
	tests := []struct {
		enc, text string
		want      int
	}{
		{Cl100kBase, "hello world", 2},
		{O200kBase, "hello world", 2},
		{Cl100kBase, "tiktoken is great!", 6},
		{R50kBase, "hello world", 2},
	}
	for _, tt := range tests {
		t.Run(tt.enc+"/"+tt.text, func(t *testing.T) {
			if got := mustGet(t, tt.enc).Count(tt.text); got != tt.want {
				t.Fatalf("Count = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCountCorpus(t *testing.T) {
	paras := corpusParagraphs()
	if n := len(corpusText()); n < 1<<20 {
		t.Fatalf("corpus is %d bytes, want at least 1 MiB", n)
	}
	encs := []string{O200kBase, Cl100kBase}
	if !testing.Short() && !raceEnabled {
		encs = allEncodings
	}
	for _, name := range encs {
		t.Run(name, func(t *testing.T) {
			e := mustGet(t, name)
			total := 0
			for i, p := range paras {
				got, want := e.Count(p), oracleCount(t, name, p)
				if got != want {
					t.Errorf("paragraph %d %q: Count = %d, want %d", i, p, got, want)
				}
				total += got
			}
			whole := corpusText()
			got, want := e.Count(whole), oracleCount(t, name, whole)
			if got != want {
				t.Fatalf("whole corpus: Count = %d, want %d", got, want)
			}
			t.Logf("%s: %d bytes, %d tokens", name, len(whole), got)
			if total < got/2 {
				t.Fatalf("paragraph counts sum to %d, whole corpus %d", total, got)
			}
		})
	}
}

// TestClassTable checks the class table against the Unicode tables for every
// rune.
func TestClassTable(t *testing.T) {
	loadClasses()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if got, want := runeClass(r), classOf(r); got != want {
			t.Fatalf("class of %U = %08b, want %08b", r, got, want)
		}
	}
}

// adversarialAlphabet holds one or more characters of every class the
// pre-tokenizers tell apart, and the letters of the contractions.
var adversarialAlphabet = []string{
	"a", "s", "t", "r", "e", "v", "m", "l", "d", "S", "T", "R", "E", "V", "L", "D", "A", "Z",
	"'", "'", "’", " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\u00a0", "\u3000", "\u2028", "\u0085",
	"0", "7", "٣", "Ⅻ", "½", "!", "/", ".", ",", "-", "_", "(", "#", "\x00", "\x7f",
	"é", "É", "ǅ", "ʰ", "々", "中", "文", "ー", "カ", "\u0301", "\u093e", "\u20dd", "\u200d", "\ufe0f", "😀", "🏽", "𝐌", "𠀀",
	"\xff", "\xe4\xb8", "\xed\xa0\x80", "\xc0",
}

// TestCountAdversarial compares short strings drawn from adversarialAlphabet
// with the reference: every boundary between classes, in every order.
func TestCountAdversarial(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	n := 4000
	if testing.Short() {
		n = 500
	}
	var texts []string
	for i := 0; i < n; i++ {
		var b strings.Builder
		for k := 1 + r.IntN(24); k > 0; k-- {
			b.WriteString(adversarialAlphabet[r.IntN(len(adversarialAlphabet))])
		}
		texts = append(texts, b.String())
	}
	for _, name := range allEncodings {
		e := mustGet(t, name)
		t.Run(name, func(t *testing.T) {
			for _, s := range texts {
				if got, want := e.Count(s), oracleCount(t, name, s); got != want {
					t.Fatalf("Count(%q) = %d, want %d", s, got, want)
				}
			}
		})
	}
}

// TestCountConcurrent shares one Encoding between goroutines, as the
// processor does across requests; pooled merge memory must not leak between
// them.
func TestCountConcurrent(t *testing.T) {
	e := mustGet(t, O200kBase)
	texts := append([]string{strings.Repeat("中", 30_000), strings.Repeat("ab ", 10_000)}, corpusParagraphs()[:50]...)
	want := make([]int, len(texts))
	for i, s := range texts {
		want[i] = e.Count(s)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := range texts {
				i := (k + g) % len(texts)
				if got := e.Count(texts[i]); got != want[i] {
					errs <- fmt.Sprintf("goroutine %d, text %d: Count = %d, want %d", g, i, got, want[i])
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
