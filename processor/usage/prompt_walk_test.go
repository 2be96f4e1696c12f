package usage

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/stacktest"
)

// iterSeeds are arrays and objects with every kind of value, escapes where
// a scanner could take a quote for the end of a string, and whitespace
// wherever JSON allows it.
var iterSeeds = []string{
	`[]`, `{}`, `[ ]`, "{ \n}",
	`[1,-2.5e+3,true,false,null,"s",{},[]]`,
	`{"a":1,"b":"two","c":[3,{"d":4}],"e":{"f":[]},"g":null}`,
	` [ 1 , "x" , [ 2 , 3 ] , { "k" : "v" } ] `,
	"{\n\t\"a\" :\r\n [1,2] ,\"b\":\t{ }\n}",
	`["a\"b","c\\","\\\"",  "\\\\", "]", "}", ",", "\u0022"]`,
	`{"k\"ey":"v\\","\\":"\"","[":"{","dup":1,"dup":2,"n":{"a":{"b":"c"}}}`,
	`[[[[[[1]]]]],{"a":{"b":{"c":{}}}}]`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
}

// walkedForEach and walkedIter are what gjson's ForEach and jsonIter each
// report of v: every key (unescaped) and value: its raw JSON (so that both
// must find the same boundaries), type, text and number.
func walkedForEach(v gjson.Result) []string {
	var out []string
	if !v.IsArray() && !v.IsObject() {
		return out
	}
	obj := v.IsObject()
	v.ForEach(func(k, el gjson.Result) bool {
		key := ""
		if obj {
			key = strconv.Quote(k.Str)
		}
		out = append(out, fmt.Sprintf("%s => %s %s %q %v", key, el.Raw, el.Type, el.Str, el.Num))
		return true
	})
	return out
}

func walkedIter(v gjson.Result) []string {
	var out []string
	var it jsonIter
	for it.start(v.Raw); it.next(); {
		k := ""
		if v.IsObject() {
			k = strconv.Quote(it.key)
		}
		el := parse(it.cur)
		out = append(out, fmt.Sprintf("%s => %s %s %q %v", k, el.Raw, el.Type, el.Str, el.Num))
	}
	return out
}

// plainKey reports whether gjson reads k in a path as the key itself, as
// getRaw does with the keys of request bodies it is given: gjson's path
// syntax gives other characters a meaning, and reads an all-digit key as
// an index into an array.
func plainKey(k string) bool {
	letter := false
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-':
			letter = true
		case '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return letter
}

func checkIter(t *testing.T, doc string) {
	t.Helper()
	if !gjson.Valid(doc) {
		return
	}
	root := gjson.Parse(doc)
	// Every array and object in doc, at every depth, is walked both ways.
	var check func(v gjson.Result)
	check = func(v gjson.Result) {
		want, got := walkedForEach(v), walkedIter(v)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("walking %s:\n got %q\nwant %q", v.Raw, got, want)
		}
		// getRaw finds what gjson.Get finds, one and two keys deep.
		var it jsonIter
		for it.start(v.Raw); it.next(); {
			if !v.IsObject() || !plainKey(it.key) {
				continue
			}
			paths := []string{it.key, it.key + ".absent"}
			var sub jsonIter
			for sub.start(it.cur); sub.next(); {
				if plainKey(sub.key) {
					paths = append(paths, it.key+"."+sub.key)
				}
			}
			for _, p := range paths {
				if got, want := getRaw(v.Raw, p), gjson.Get(v.Raw, p).Raw; got != want {
					t.Fatalf("getRaw(%s, %q) = %q, gjson.Get finds %q", v.Raw, p, got, want)
				}
			}
		}
		for it.start(v.Raw); it.next(); {
			check(parse(it.cur))
		}
	}
	check(root)
}

func TestJSONIter(t *testing.T) {
	for i, doc := range iterSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if !gjson.Valid(doc) {
				t.Fatalf("seed is not valid JSON: %s", doc)
			}
			checkIter(t, doc)
		})
	}
	t.Run("not a list", func(t *testing.T) {
		for _, doc := range []string{`"[1,2]"`, `12`, `null`, ``} {
			var it jsonIter
			if it.start(gjson.Parse(doc).Raw); it.next() {
				t.Errorf("walking %s found an element", doc)
			}
		}
	})
}

// FuzzJSONIter checks that jsonIter walks any valid JSON as gjson's ForEach
// does, at every level.
func FuzzJSONIter(f *testing.F) {
	for _, s := range iterSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		checkIter(t, doc)
	})
}

// TestEstimatePromptStack checks that estimating a prompt stays shallow
// enough to run at the bottom of a gRPC stream's goroutine, about 3 KiB deep
// there, without growing its 8 KiB stack (growth starts past 7.2 KiB).
func TestEstimatePromptStack(t *testing.T) {
	enc := encodingFor(t, "gpt-4o")
	msg := strings.Repeat("Summarize the quarterly report for the board. ", 40)
	tests := []struct {
		name string
		api  API
		body string
	}{
		{"chat", APIChatCompletions, fmt.Sprintf(`{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":%q}]}`, msg)},
		{"chat parts", APIChatCompletions, fmt.Sprintf(`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":%q},{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}}]}]}`, msg)},
		{"chat tool calls", APIChatCompletions, fmt.Sprintf(`{"model":"gpt-4o","messages":[{"role":"user","content":%q},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"q\":\"x\"}"}}]}]}`, msg)},
		{"responses", APIResponses, fmt.Sprintf(`{"model":"gpt-4.1","instructions":"Be brief.","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":%q}]},{"type":"reasoning","summary":[{"type":"summary_text","text":"hmm"}]}]}`, msg)},
		{"anthropic", APIAnthropicMessages, fmt.Sprintf(`{"model":"claude","system":"Be brief.","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":%q}]}]}]}`, msg)},
		{"embeddings", APIEmbeddings, fmt.Sprintf(`{"model":"text-embedding-3-small","input":[%q,[1,2,3]]}`, msg)},
	}
	budget := 2048 // bytes; 1 to 1.5 KiB measured
	if stacktest.Race {
		budget *= 2
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			var n int64
			d := stacktest.Depth(t, func() { n = EstimatePrompt(tt.api, body, enc) })
			if n < 400 {
				t.Fatalf("estimate %d, want the message's 400 tokens and more", n)
			}
			t.Logf("%d bytes of stack", d)
			if d > budget {
				t.Errorf("EstimatePrompt uses %d bytes of stack, want at most %d", d, budget)
			}
		})
	}
}
