package processor

import (
	"errors"
	"fmt"
	"time"

	"github.com/tollgate-ai/tollgate/processor/tokens"
)

// Config is how the request path behaves; the binary's YAML has it under
// `processing:`.
type Config struct {
	// KeyQueryParam, when set, is a query parameter that may carry the API
	// key (as Gemini's ?key= does). It is removed before the request goes on.
	KeyQueryParam string `yaml:"key_query_param"`
	// UnknownPaths is what happens to authenticated requests for paths that
	// are not an LLM API tollgate counts: "pass" (default) lets them through
	// uncounted, "deny" answers 404.
	UnknownPaths string `yaml:"unknown_paths"`
	// DefaultEncoding counts tokens for models whose encoding is not known;
	// default o200k_base.
	DefaultEncoding string `yaml:"default_encoding"`
	// ReserveOutputTokens is reserved for the completion at admission when a
	// request sets no max_tokens (or equivalent); default 1024.
	ReserveOutputTokens int64 `yaml:"reserve_output_tokens"`
	// InFlightLease is how long a request holds its in-flight slot without
	// renewal; a replica that dies gives its slots back after it. Requests
	// renew every third of it. Default 60s.
	InFlightLease time.Duration `yaml:"in_flight_lease"`
	// MaxResponseBuffer caps how much of a non-streamed response body is
	// buffered to read its usage; larger bodies are scanned for their usage
	// without buffering. Default 4 MiB.
	MaxResponseBuffer int `yaml:"max_response_buffer"`
}

// Validate checks c, naming the field path of each problem.
func (c *Config) Validate(path string) error {
	var errs []error
	switch c.UnknownPaths {
	case "", "pass", "deny":
	default:
		errs = append(errs, fmt.Errorf("%s.unknown_paths: %q is not pass or deny", path, c.UnknownPaths))
	}
	if c.DefaultEncoding != "" {
		if _, err := tokens.Get(c.DefaultEncoding); err != nil {
			errs = append(errs, fmt.Errorf("%s.default_encoding: %w", path, err))
		}
	}
	if c.ReserveOutputTokens < 0 {
		errs = append(errs, fmt.Errorf("%s.reserve_output_tokens: must be >= 0", path))
	}
	if c.InFlightLease < 0 || (c.InFlightLease > 0 && c.InFlightLease < time.Second) {
		errs = append(errs, fmt.Errorf("%s.in_flight_lease: must be at least 1s", path))
	}
	if c.MaxResponseBuffer < 0 {
		errs = append(errs, fmt.Errorf("%s.max_response_buffer: must be >= 0", path))
	}
	return errors.Join(errs...)
}
