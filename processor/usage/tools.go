package usage

import (
	"strings"

	"github.com/tidwall/gjson"
)

// harmonyToolsNote is what OpenAI's reasoning models (the "harmony" chat
// format of gpt-5, the o-series and gpt-oss) add to the system message
// when tools are present, followed by a developer message framing the
// declarations (harmonyToolsFraming, measured on gpt-5-nano).
const harmonyToolsNote = "\n\nKnowledge cutoff: 2024-06\n\nReasoning: medium\n\n" +
	"# Valid channels: analysis, commentary, final. Channel must be included for every message.\n" +
	"Calls to these tools must go to the commentary channel: 'functions'."

const harmonyToolsFraming = 24

// isHarmony tells whether a model speaks OpenAI's harmony chat format.
func isHarmony(model string) bool {
	model = strings.ToLower(model)
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	for _, p := range [...]string{"gpt-5", "gpt-oss", "o1", "o3", "o4", "codex"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// maxSchemaDepth bounds the nesting rendered from a JSON schema; deeper
// levels count as "any".
const maxSchemaDepth = 8

// tools estimates tool definitions. OpenAI shows functions to the model as
// TypeScript declarations in a "functions" namespace, not as the JSON the
// client sent, and bills those; they are rendered that way and counted.
// wrapper is the field holding the function in each element ("function" in
// chat completions, "" for legacy functions and the Responses API). Other
// tools (built-in ones such as web_search) count as their JSON.
func (e *estimator) tools(v gjson.Result, wrapper string, harmony bool) {
	if !v.IsArray() {
		return
	}
	var b []byte
	n := 0
	forEach(v, func(_, t gjson.Result) bool {
		f := t
		if wrapper != "" {
			if w := t.Get(wrapper); w.IsObject() {
				f = w
			}
		}
		name := f.Get("name")
		if name.Type != gjson.String {
			e.raw(t)
			return true
		}
		if n == 0 {
			b = append(b, "# Tools\n\n## functions\n\nnamespace functions {\n\n"...)
		}
		n++
		b = appendComment(b, f.Get("description").String())
		b = append(b, "type "...)
		b = append(b, name.Str...)
		b = append(b, " = ("...)
		if hasKeys(f.Get("parameters.properties")) {
			b = append(b, "_: "...)
			b = appendSchema(b, f.Get("parameters"), 0)
		}
		b = append(b, ") => any;\n\n"...)
		return true
	})
	if n == 0 {
		return
	}
	b = append(b, "} // namespace functions"...)
	if harmony {
		b = append(b, harmonyToolsNote...)
		e.n += harmonyToolsFraming
	}
	e.text(b)
	e.n += toolsOverhead
}

func appendComment(b []byte, text string) []byte {
	if text == "" {
		return b
	}
	for line := range strings.Lines(text) {
		b = append(b, "// "...)
		b = append(b, strings.TrimRight(line, "\n")...)
		b = append(b, '\n')
	}
	return b
}

// appendSchema renders a JSON schema as a TypeScript type.
func appendSchema(b []byte, s gjson.Result, depth int) []byte {
	if depth >= maxSchemaDepth || !s.IsObject() {
		return append(b, "any"...)
	}
	if enum := s.Get("enum"); enum.IsArray() {
		i := 0
		forEach(enum, func(_, v gjson.Result) bool {
			if i > 0 {
				b = append(b, " | "...)
			}
			b = append(b, v.Raw...)
			i++
			return true
		})
		return b
	}
	for _, key := range [...]string{"anyOf", "oneOf"} {
		if alts := s.Get(key); alts.IsArray() {
			i := 0
			forEach(alts, func(_, v gjson.Result) bool {
				if i > 0 {
					b = append(b, " | "...)
				}
				b = appendSchema(b, v, depth+1)
				i++
				return true
			})
			return b
		}
	}
	if ref := s.Get("$ref").Str; ref != "" {
		return append(b, ref[strings.LastIndexByte(ref, '/')+1:]...)
	}
	t := s.Get("type")
	if t.IsArray() {
		i := 0
		forEach(t, func(_, v gjson.Result) bool {
			if i > 0 {
				b = append(b, " | "...)
			}
			b = appendType(b, v.Str, s, depth)
			i++
			return true
		})
		return b
	}
	return appendType(b, t.Str, s, depth)
}

func appendType(b []byte, typ string, s gjson.Result, depth int) []byte {
	switch typ {
	case "string", "boolean", "null":
		return append(b, typ...)
	case "number", "integer":
		return append(b, "number"...)
	case "array":
		b = appendSchema(b, s.Get("items"), depth+1)
		return append(b, "[]"...)
	case "object":
		props := s.Get("properties")
		if !props.IsObject() {
			return append(b, "object"...)
		}
		required := s.Get("required")
		b = append(b, "{\n"...)
		forEach(props, func(k, p gjson.Result) bool {
			b = appendComment(b, p.Get("description").String())
			b = append(b, k.Str...)
			if !isRequired(required, k.Str) {
				b = append(b, '?')
			}
			b = append(b, ": "...)
			b = appendSchema(b, p, depth+1)
			b = append(b, ",\n"...)
			return true
		})
		return append(b, '}')
	}
	return append(b, "any"...)
}

func isRequired(required gjson.Result, name string) bool {
	found := false
	forEach(required, func(_, v gjson.Result) bool {
		found = v.Str == name
		return !found
	})
	return found
}

// hasKeys tells whether v is an object with at least one member.
func hasKeys(v gjson.Result) bool {
	found := false
	if v.IsObject() {
		forEach(v, func(_, _ gjson.Result) bool {
			found = true
			return false
		})
	}
	return found
}
