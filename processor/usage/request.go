package usage

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// ErrBadRequest is wrapped by the errors of [ParseRequest] and
// [AddIncludeUsage]: the client sent a body the provider would refuse, and
// the processor answers it with a 400 without spending anything upstream.
var ErrBadRequest = errors.New("bad request body")

// Request is what the request body says about the call's cost.
type Request struct {
	// Model is the "model" field, "" when absent (Azure OpenAI names the
	// deployment in the path instead: see [ModelFromPath]).
	Model string
	// Stream is true when the client asked for a streamed (SSE) response.
	Stream bool
	// IncludeUsage is stream_options.include_usage: the client expects the
	// usage-only chunk at the end of an OpenAI stream.
	IncludeUsage bool
	// MaxOutput caps the output tokens of one choice: the largest of
	// max_completion_tokens, max_tokens and max_output_tokens present; 0 when
	// none is.
	MaxOutput int64
	// Choices is how many completions the provider generates and bills: n
	// (chat and completions) or best_of when larger (completions); 1 when
	// absent. The output of a call is bounded by MaxOutput × Choices.
	Choices int64
}

// maxChoices bounds n/best_of: OpenAI allows 128, a larger value is refused
// upstream and would only inflate a reservation here.
const maxChoices = 128

// ParseRequest reads a request body of the given API and checks the types of
// the fields tollgate relies on, so that a malformed body is refused before
// it is charged. Fields absent from the body are not required: the provider
// judges those. For [APIUnknown] a body that is not a JSON object is not an
// error (it may be a file upload); nothing is read from it.
func ParseRequest(api API, body []byte) (Request, error) {
	r := Request{Choices: 1}
	s := bytesString(body)
	if !gjson.Valid(s) {
		if api == APIUnknown {
			return r, nil
		}
		return r, fmt.Errorf("%w: not valid JSON", ErrBadRequest)
	}
	root := gjson.Parse(s)
	if !root.IsObject() {
		if api == APIUnknown {
			return r, nil
		}
		return r, fmt.Errorf("%w: not a JSON object", ErrBadRequest)
	}
	var errs []error
	bad := func(field, want string) {
		errs = append(errs, fmt.Errorf("%w: %s must be %s", ErrBadRequest, field, want))
	}
	root.ForEach(func(k, v gjson.Result) bool {
		if v.Type == gjson.Null {
			return true // null means "default" to every provider
		}
		switch k.Str {
		case "model":
			if v.Type != gjson.String {
				bad("model", "a string")
				return true
			}
			// A copy: a view would keep the whole body alive as long as
			// the model is (the stream's life).
			r.Model = strings.Clone(v.Str)
		case "stream":
			if !v.IsBool() {
				bad("stream", "a boolean")
				return true
			}
			r.Stream = v.Bool()
		case "stream_options":
			if !v.IsObject() {
				bad("stream_options", "an object")
				return true
			}
			iu := v.Get("include_usage")
			if iu.Exists() && iu.Type != gjson.Null && !iu.IsBool() {
				bad("stream_options.include_usage", "a boolean")
				return true
			}
			r.IncludeUsage = iu.Bool()
		case "max_tokens", "max_completion_tokens", "max_output_tokens":
			n, ok := nonNegativeInt(v)
			if !ok {
				bad(k.Str, "a non-negative integer")
				return true
			}
			r.MaxOutput = max(r.MaxOutput, n)
		case "n", "best_of":
			if api != APIChatCompletions && api != APICompletions {
				return true
			}
			n, ok := nonNegativeInt(v)
			if !ok || n < 1 || n > maxChoices {
				bad(k.Str, fmt.Sprintf("an integer from 1 to %d", maxChoices))
				return true
			}
			r.Choices = max(r.Choices, n)
		default:
			checkShape(api, k.Str, v, bad)
		}
		return true
	})
	if len(errs) > 0 {
		return Request{Choices: 1}, errors.Join(errs...)
	}
	return r, nil
}

// checkShape checks the type of the fields the prompt estimate walks.
func checkShape(api API, key string, v gjson.Result, bad func(field, want string)) {
	switch {
	case key == "messages" && (api == APIChatCompletions || api == APIAnthropicMessages):
		if !v.IsArray() {
			bad("messages", "an array")
			return
		}
		i := 0
		v.ForEach(func(_, m gjson.Result) bool {
			if !m.IsObject() {
				bad(fmt.Sprintf("messages[%d]", i), "an object")
				return false
			}
			i++
			return true
		})
	case key == "tools" && api != APIEmbeddings && api != APICompletions:
		if !v.IsArray() {
			bad("tools", "an array")
		}
	case key == "prompt" && api == APICompletions, key == "input" && api == APIEmbeddings:
		if !isPromptShape(v) {
			bad(key, "a string, an array of strings, an array of token ids or an array of token id arrays")
		}
	case key == "input" && api == APIResponses:
		if v.Type != gjson.String && !v.IsArray() {
			bad("input", "a string or an array")
		}
	case key == "instructions" && api == APIResponses:
		if v.Type != gjson.String {
			bad("instructions", "a string")
		}
	case key == "system" && api == APIAnthropicMessages:
		if v.Type != gjson.String && !v.IsArray() {
			bad("system", "a string or an array of content blocks")
		}
	}
}

// isPromptShape accepts the four shapes OpenAI takes for a completions prompt
// or an embeddings input.
func isPromptShape(v gjson.Result) bool {
	if v.Type == gjson.String {
		return true
	}
	if !v.IsArray() {
		return false
	}
	ok := true
	v.ForEach(func(_, e gjson.Result) bool {
		switch {
		case e.Type == gjson.String:
		case e.Type == gjson.Number:
			_, ok = nonNegativeInt(e)
		case e.IsArray():
			e.ForEach(func(_, t gjson.Result) bool {
				_, ok = nonNegativeInt(t)
				return ok
			})
		default:
			ok = false
		}
		return ok
	})
	return ok
}

// nonNegativeInt accepts a JSON number with an integral value in [0, 2^53].
func nonNegativeInt(v gjson.Result) (int64, bool) {
	if v.Type != gjson.Number {
		return 0, false
	}
	f := v.Num
	if f < 0 || f > 1<<53 || f != math.Trunc(f) {
		return 0, false
	}
	return int64(f), true
}

// AddIncludeUsage sets stream_options.include_usage to true so that an
// OpenAI-style stream ends with a usage chunk. The rest of the body is kept
// byte for byte. A body that already asks for usage is returned as is.
func AddIncludeUsage(body []byte) ([]byte, error) {
	s := bytesString(body)
	if !gjson.Valid(s) || !gjson.Parse(s).IsObject() {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadRequest)
	}
	so := gjson.Get(s, "stream_options")
	switch {
	case so.IsObject():
		if iu := so.Get("include_usage"); iu.Type == gjson.True {
			return body, nil
		}
	case so.Exists() && so.Type != gjson.Null:
		return nil, fmt.Errorf("%w: stream_options must be an object", ErrBadRequest)
	}
	if so.Type == gjson.Null && so.Exists() {
		// sjson cannot descend into null; replace it with the object.
		out, err := sjson.SetRawBytes(body, "stream_options", []byte(`{"include_usage":true}`))
		if err != nil {
			return nil, fmt.Errorf("cannot set stream_options: %w", err)
		}
		return out, nil
	}
	out, err := sjson.SetBytes(body, "stream_options.include_usage", true)
	if err != nil {
		return nil, fmt.Errorf("cannot set stream_options.include_usage: %w", err)
	}
	return out, nil
}

// bytesString views b as a string without copying. The string must not
// outlive a change to b; gjson results derived from it point into b.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
