package tokens

import "strings"

// modelFamily maps a model-name prefix to its encoding. A prefix matches the
// whole name or a name that continues with one of its separators, so
// "gpt-4o-mini-2024-07-18" is gpt-4o but "o100" is not o1.
type modelFamily struct {
	prefix   string
	encoding string
	// dotted is true when a '.' may follow the prefix ("gpt-5.1"). It is false
	// for gpt-4, whose dotted successors (gpt-4.1, gpt-4.5) moved to o200k_base.
	dotted bool
}

// modelFamilies is searched in order: longer, more specific prefixes first
// (gpt-4o and gpt-4.1 before gpt-4).
var modelFamilies = []modelFamily{
	{"chatgpt-4o", O200kBase, false},
	{"gpt-4o", O200kBase, false},
	{"gpt-4.1", O200kBase, false},
	{"gpt-4.5", O200kBase, false},
	{"gpt-5", O200kBase, true},
	// gpt-oss uses o200k_harmony, which only adds chat special tokens to
	// o200k_base: ordinary text counts the same.
	{"gpt-oss", O200kBase, false},
	{"o1", O200kBase, false},
	{"o3", O200kBase, false},
	{"o4", O200kBase, false},
	{"codex-mini", O200kBase, false},
	{"gpt-4", Cl100kBase, false},
	{"gpt-3.5", Cl100kBase, false},
	{"gpt-35", Cl100kBase, false}, // Azure's name for gpt-3.5-turbo deployments
	{"text-embedding-3", Cl100kBase, false},
	{"text-embedding-ada-002", Cl100kBase, false},
	{"davinci-002", Cl100kBase, false},
	{"babbage-002", Cl100kBase, false},
}

// modelSeparators may follow a family prefix: dated and size suffixes
// ("-2024-08-06", "-mini"), fine-tuning fields (":org::id") and deployment
// tags ("@2024", "_eu").
const modelSeparators = "-:@_"

// ForModel returns the encoding of an OpenAI model, or false when the model is
// unknown (the caller then falls back to a configured default encoding).
//
// Names are matched case-insensitively after removing what routers and
// providers put around OpenAI's own name: a provider path ("openai/",
// "azure/openai/"), a fine-tuning wrapper ("ft:gpt-4o-mini:org::id") and
// dated or deployment suffixes ("gpt-4o-2024-08-06", "gpt-35-turbo-0613").
func ForModel(model string) (*Encoding, bool) {
	name := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimPrefix(name, "ft:")
	for _, f := range modelFamilies {
		rest, ok := strings.CutPrefix(name, f.prefix)
		if !ok {
			continue
		}
		if rest != "" && !strings.ContainsRune(modelSeparators, rune(rest[0])) &&
			(!f.dotted || rest[0] != '.') {
			continue
		}
		e, err := Get(f.encoding)
		if err != nil {
			return nil, false
		}
		return e, true
	}
	return nil, false
}
