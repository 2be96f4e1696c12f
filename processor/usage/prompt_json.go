package usage

import (
	"strings"

	"github.com/tidwall/gjson"
)

// The estimate reads a request body as raw JSON text with jsonIter and
// getRaw instead of gjson's ForEach and Get, for the stack they take. A
// prompt is estimated on a gRPC stream's goroutine, about 3 KiB deep there;
// past about 7 KiB its 8 KiB stack doubles, and stays doubled for as long
// as the stream is open (only a garbage collection shrinks it). ForEach
// calls back from inside its own frame (700 bytes per level walked, with
// the closure's), Get takes 1.2 KiB, and each gjson.Result a frame holds is
// 80 bytes: with them a chat request with content parts took 5.2 KiB to
// estimate, with these 1.5 KiB.

// jsonIter walks the elements of a JSON array or the members of an object,
// one next at a time, in valid JSON (EstimatePrompt checks the body first).
type jsonIter struct {
	raw string // the whole array or object
	i   int    // where the search for the next element starts
	key string // the current member's key, in an object
	cur string // the current element, as raw JSON
}

// start makes it walk the elements of raw, or nothing when raw is not an
// array or object (a string where a list belongs is not a list of one).
func (it *jsonIter) start(raw string) {
	*it = jsonIter{}
	if raw != "" && (raw[0] == '[' || raw[0] == '{') {
		it.raw, it.i = raw, 1
	}
}

// next moves to the next element (and its key, in an object); it reports
// false at the end.
func (it *jsonIter) next() bool {
	i := skipSeparators(it.raw, it.i)
	if i >= len(it.raw) || it.raw[i] == ']' || it.raw[i] == '}' {
		it.i = len(it.raw)
		return false
	}
	if it.raw[0] == '{' {
		end := valueEnd(it.raw, i)
		it.key = unquote(it.raw[i:end])
		if i = skipSeparators(it.raw, end); i >= len(it.raw) {
			it.i = i
			return false
		}
	}
	end := valueEnd(it.raw, i)
	it.cur, it.i = it.raw[i:end], end
	return true
}

// parse is gjson.Parse for one whole value (or none, ""), without the
// number parsing (1 KiB of stack in strconv) and unescaping that only some
// values need.
func parse(raw string) gjson.Result {
	if raw == "" {
		return gjson.Result{}
	}
	switch raw[0] {
	case '{', '[':
		return gjson.Result{Type: gjson.JSON, Raw: raw}
	case '"':
		if strings.IndexByte(raw, '\\') < 0 {
			return gjson.Result{Type: gjson.String, Raw: raw, Str: raw[1 : len(raw)-1]}
		}
	case 't':
		return gjson.Result{Type: gjson.True, Raw: raw}
	case 'f':
		return gjson.Result{Type: gjson.False, Raw: raw}
	case 'n':
		return gjson.Result{Type: gjson.Null, Raw: raw}
	}
	return gjson.Parse(raw)
}

// strOf returns the text of a JSON string, or "" for any other value.
func strOf(raw string) string {
	if raw == "" || raw[0] != '"' {
		return ""
	}
	return unquote(raw)
}

// unquote returns the text of a JSON string.
func unquote(raw string) string {
	if strings.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	return gjson.Parse(raw).Str
}

// getRaw returns the raw JSON at path in the object raw, keys separated by
// dots (gjson's path syntax without its wildcards, escapes, array indexes
// and modifiers), or "" when there is none.
func getRaw(raw, path string) string {
	for path != "" {
		key := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			key, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		if raw == "" || raw[0] != '{' {
			return ""
		}
		it := jsonIter{raw: raw, i: 1}
		for raw = ""; it.next(); {
			// Of duplicate keys, the first whose value the rest of the
			// path can go into, as gjson.
			if it.key == key && (path == "" || it.cur[0] == '{') {
				raw = it.cur
				break
			}
		}
	}
	return raw
}

// skipSeparators skips whitespace, commas and colons from s[i].
func skipSeparators(s string, i int) int {
	for i < len(s) && (isSpace(s[i]) || s[i] == ',' || s[i] == ':') {
		i++
	}
	return i
}

// valueEnd returns the end of the JSON value starting at s[i].
func valueEnd(s string, i int) int {
	switch s[i] {
	case '"':
		return stringEnd(s, i)
	case '{', '[':
		depth := 0
		for i < len(s) {
			switch s[i] {
			case '"':
				i = stringEnd(s, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(s)
	}
	// A number, true, false or null.
	for i < len(s) && !isSpace(s[i]) && s[i] != ',' && s[i] != ']' && s[i] != '}' {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the JSON string
// starting at s[i].
func stringEnd(s string, i int) int {
	for i++; ; {
		q := strings.IndexByte(s[i:], '"')
		if q < 0 {
			return len(s)
		}
		i += q
		// The quote is escaped when an odd number of backslashes precede it.
		bs := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			bs++
		}
		i++
		if bs%2 == 0 {
			return i
		}
	}
}
