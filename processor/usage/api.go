package usage

import (
	"net/url"
	"strings"
)

// API is the provider API a request speaks, which decides where its usage is.
type API uint8

// The APIs tollgate reads usage from. OpenAI-compatible providers (Azure
// OpenAI, DeepSeek, Qwen, Gemini's OpenAI endpoint, vLLM, …) speak the OpenAI
// ones.
const (
	APIUnknown API = iota
	APIChatCompletions
	APICompletions
	APIResponses
	APIEmbeddings
	APIAnthropicMessages
)

var apiNames = [...]string{
	APIUnknown:           "unknown",
	APIChatCompletions:   "chat.completions",
	APICompletions:       "completions",
	APIResponses:         "responses",
	APIEmbeddings:        "embeddings",
	APIAnthropicMessages: "anthropic.messages",
}

// String returns a short stable name, fit for a metric label.
func (a API) String() string {
	if int(a) < len(apiNames) {
		return apiNames[a]
	}
	return apiNames[APIUnknown]
}

// Detect tells the API from a request path. Providers mount the OpenAI paths
// under different prefixes (/v1, /openai/deployments/{d}, /compatible-mode/v1,
// /v1beta/openai, none at all), so only the suffix decides; the query is
// ignored.
func Detect(path string) API {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	path = strings.TrimRight(path, "/")
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		return APIChatCompletions
	case strings.HasSuffix(path, "/completions"):
		return APICompletions
	case strings.HasSuffix(path, "/responses"):
		return APIResponses
	case strings.HasSuffix(path, "/embeddings"):
		return APIEmbeddings
	case strings.HasSuffix(path, "/messages"):
		// OpenAI's Assistants API adds messages to a thread at
		// /v1/threads/{id}/messages; that spends no tokens.
		if strings.Contains(path, "/threads/") {
			return APIUnknown
		}
		return APIAnthropicMessages
	}
	return APIUnknown
}

// ModelFromPath returns the model a path names, for the APIs whose body does
// not: Azure OpenAI's /openai/deployments/{deployment}/…, where the
// deployment stands for the model. It returns "" when the path names none.
func ModelFromPath(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	const marker = "/openai/deployments/"
	i := strings.Index(path, marker)
	if i < 0 {
		return ""
	}
	d := path[i+len(marker):]
	if j := strings.IndexByte(d, '/'); j >= 0 {
		d = d[:j]
	}
	if u, err := url.PathUnescape(d); err == nil {
		d = u
	}
	return d
}
