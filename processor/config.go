package processor

import (
	"errors"
	"fmt"
	"os"
	"strings"
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

// ProviderConfig is an upstream whose API key tollgate injects, so that
// consumers never hold it.
type ProviderConfig struct {
	// Name labels the provider in metrics and usage.
	Name string `yaml:"name"`
	// PathPrefix selects the requests that go to this provider; the longest
	// matching prefix wins.
	PathPrefix string `yaml:"path_prefix"`
	// Host, when set, must also match the request's :authority.
	Host string `yaml:"host"`
	// Header carries the key upstream: authorization ("Bearer <key>"),
	// x-api-key, api-key or x-goog-api-key.
	Header string `yaml:"header"`
	// APIKeyEnv names the environment variable holding the key.
	APIKeyEnv string `yaml:"api_key_env"`
	// Fallback, when set, takes the provider's calls while its circuit
	// breaker is open, optionally with another model.
	Fallback *Fallback `yaml:"fallback"`
}

// Fallback is where calls go while a provider's circuit breaker is open.
type Fallback struct {
	// Provider names another configured provider.
	Provider string `yaml:"provider"`
	// Model, when set, replaces the request's model on the fallback.
	Model string `yaml:"model"`
}

var providerHeaders = map[string]bool{"authorization": true, "x-api-key": true, "api-key": true, "x-goog-api-key": true}

// provider is a ProviderConfig with its key read.
type provider struct {
	name, pathPrefix, host, header string
	value                          string // the header value, key included
	fallback                       *Fallback
}

// ValidateProviders checks provider configs, naming the field path of each
// problem. getenv reads the keys' environment variables.
func ValidateProviders(path string, ps []ProviderConfig, getenv func(string) string) error {
	_, err := compileProviders(path, ps, getenv)
	return err
}

func compileProviders(path string, ps []ProviderConfig, getenv func(string) string) ([]provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var errs []error
	out := make([]provider, 0, len(ps))
	names := map[string]bool{}
	for i, p := range ps {
		at := fmt.Sprintf("%s[%d]", path, i)
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: must be set", at))
		} else if names[p.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, p.Name))
		}
		names[p.Name] = true
		if !strings.HasPrefix(p.PathPrefix, "/") {
			errs = append(errs, fmt.Errorf("%s.path_prefix: must start with /", at))
		}
		header := strings.ToLower(p.Header)
		if header == "" {
			header = "authorization"
		}
		if !providerHeaders[header] {
			errs = append(errs, fmt.Errorf("%s.header: %q is not one of authorization, x-api-key, api-key, x-goog-api-key", at, p.Header))
		}
		key := ""
		switch {
		case p.APIKeyEnv == "":
			errs = append(errs, fmt.Errorf("%s.api_key_env: must name the environment variable holding the provider key", at))
		default:
			if key = getenv(p.APIKeyEnv); key == "" {
				errs = append(errs, fmt.Errorf("%s.api_key_env: environment variable %s is empty or unset", at, p.APIKeyEnv))
			}
		}
		value := key
		if header == "authorization" {
			value = "Bearer " + key
		}
		out = append(out, provider{name: p.Name, pathPrefix: p.PathPrefix, host: p.Host, header: header, value: value, fallback: p.Fallback})
	}
	for i, p := range ps {
		if p.Fallback == nil {
			continue
		}
		at := fmt.Sprintf("%s[%d].fallback.provider", path, i)
		switch {
		case p.Fallback.Provider == p.Name:
			errs = append(errs, fmt.Errorf("%s: a provider cannot fall back to itself", at))
		case !names[p.Fallback.Provider]:
			errs = append(errs, fmt.Errorf("%s: no provider named %q", at, p.Fallback.Provider))
		}
	}
	return out, errors.Join(errs...)
}

// match returns the provider for a request, the one with the longest
// matching path prefix.
func matchProvider(ps []provider, path, host string) *provider {
	var best *provider
	for i := range ps {
		p := &ps[i]
		if !strings.HasPrefix(path, p.pathPrefix) || (p.host != "" && p.host != host) {
			continue
		}
		if best == nil || len(p.pathPrefix) > len(best.pathPrefix) {
			best = p
		}
	}
	return best
}

func providerNamed(ps []provider, name string) *provider {
	for i := range ps {
		if ps[i].name == name {
			return &ps[i]
		}
	}
	return nil
}
