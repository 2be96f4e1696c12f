// Package usage reads token usage out of LLM provider request and response
// bodies: OpenAI chat/completions/responses/embeddings, Anthropic messages and
// the OpenAI-compatible APIs of other providers, streamed (SSE) or not.
package usage

// Usage is the token usage of one LLM call, normalized across providers.
//
// Input counts every prompt token the provider processed, including the
// cached and cache-creation ones (OpenAI's prompt_tokens already does;
// Anthropic's input_tokens does not, so its cache_read_input_tokens and
// cache_creation_input_tokens are added). CachedInput and CacheCreation are
// subsets of Input; Reasoning is a subset of Output.
type Usage struct {
	// Input is the number of prompt tokens.
	Input int64 `json:"input"`
	// Output is the number of completion tokens, reasoning included.
	Output int64 `json:"output"`
	// CachedInput is the part of Input read from the provider's prompt cache.
	CachedInput int64 `json:"cached_input,omitempty"`
	// CacheCreation is the part of Input written to the provider's prompt cache.
	CacheCreation int64 `json:"cache_creation,omitempty"`
	// Reasoning is the part of Output spent on reasoning.
	Reasoning int64 `json:"reasoning,omitempty"`
	// Estimated is true when tollgate counted the tokens itself because the
	// provider did not report them (or reported only part of them).
	Estimated bool `json:"estimated,omitempty"`
}

// Total is Input + Output.
func (u Usage) Total() int64 { return u.Input + u.Output }
