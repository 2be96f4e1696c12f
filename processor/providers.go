package processor

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ProviderConfig is an upstream whose API keys tollgate injects, so that
// consumers never hold them. Providers can also be managed at runtime
// (package accounts); both end up as a [Provider].
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
	// APIKeyEnvs name more environment variables holding keys; all the
	// keys are used in turn.
	APIKeyEnvs []string `yaml:"api_key_envs"`
	// Rest is how long a key the provider answered 401 or 429 for is left
	// out of the rotation; default 60s.
	Rest time.Duration `yaml:"rest"`
	// Fallback, when set, takes the provider's calls while its circuit
	// breaker is open, optionally with another model.
	Fallback *Fallback `yaml:"fallback"`
}

// KeyEnvs returns every environment variable that holds one of the keys.
func (p *ProviderConfig) KeyEnvs() []string {
	var out []string
	if p.APIKeyEnv != "" {
		out = append(out, p.APIKeyEnv)
	}
	return append(out, p.APIKeyEnvs...)
}

// Fallback is where calls go while a provider's circuit breaker is open.
type Fallback struct {
	// Provider names another configured provider.
	Provider string `yaml:"provider"`
	// Model, when set, replaces the request's model on the fallback.
	Model string `yaml:"model"`
}

// Provider is an upstream as the request path uses it: its keys read.
type Provider struct {
	Name, PathPrefix, Host string
	// Header is the lower-case header carrying the key.
	Header string
	// Rest is how long a refused key stays out of the rotation.
	Rest time.Duration
	// Keys are used in turn.
	Keys     []ProviderKey
	Fallback *Fallback
}

// ProviderKey is one API key of a provider.
type ProviderKey struct {
	// ID names the key in logs and the admin API, never the key itself.
	ID string
	// Key is the secret.
	Key string
}

var providerHeaders = map[string]bool{"authorization": true, "x-api-key": true, "api-key": true, "x-goog-api-key": true}

// DefaultRest is how long a refused provider key rests by default.
const DefaultRest = time.Minute

// ValidateProviders checks provider configs, naming the field path of each
// problem. getenv reads the keys' environment variables.
func ValidateProviders(path string, ps []ProviderConfig, getenv func(string) string) error {
	_, err := ResolveProviders(path, ps, getenv)
	return err
}

// ResolveProviders reads the keys of provider configs.
func ResolveProviders(path string, ps []ProviderConfig, getenv func(string) string) ([]Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var errs []error
	out := make([]Provider, 0, len(ps))
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
		if p.Rest < 0 {
			errs = append(errs, fmt.Errorf("%s.rest: must be >= 0", at))
		}
		pr := Provider{Name: p.Name, PathPrefix: p.PathPrefix, Host: p.Host, Header: header, Rest: p.Rest, Fallback: p.Fallback}
		envs := p.KeyEnvs()
		if len(envs) == 0 {
			errs = append(errs, fmt.Errorf("%s.api_key_env: must name the environment variable holding the provider key", at))
		}
		for _, env := range envs {
			key := getenv(env)
			if key == "" {
				errs = append(errs, fmt.Errorf("%s.api_key_env: environment variable %s is empty or unset", at, env))
				continue
			}
			pr.Keys = append(pr.Keys, ProviderKey{ID: "env:" + env, Key: key})
		}
		out = append(out, pr)
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

// provider is a Provider ready for the request path: each key written as
// the header value it is sent as.
type provider struct {
	name, pathPrefix, host, header string
	rest                           time.Duration
	keys                           []providerKey
	fallback                       *Fallback
}

type providerKey struct {
	id, value string
}

func compileProviders(ps []Provider) []provider {
	out := make([]provider, 0, len(ps))
	for _, p := range ps {
		pr := provider{name: p.Name, pathPrefix: p.PathPrefix, host: p.Host, header: p.Header, rest: p.Rest, fallback: p.Fallback}
		if pr.header == "" {
			pr.header = "authorization"
		}
		if pr.rest <= 0 {
			pr.rest = DefaultRest
		}
		for _, k := range p.Keys {
			v := k.Key
			if pr.header == "authorization" {
				v = "Bearer " + v
			}
			pr.keys = append(pr.keys, providerKey{id: k.ID, value: v})
		}
		out = append(out, pr)
	}
	return out
}

// matchProvider returns the provider for a request, the one with the
// longest matching path prefix.
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

// keyRing hands out a provider's keys in turn and rests those the provider
// refused (401, 429). It belongs to the Server, so that rests outlive the
// policy, which is rebuilt on every change of the accounts.
type keyRing struct {
	mu      sync.Mutex
	next    map[string]int       // provider → index of the next key
	resting map[string]time.Time // provider + "\x00" + key id → rest end
}

func newKeyRing() *keyRing {
	return &keyRing{next: map[string]int{}, resting: map[string]time.Time{}}
}

// pick returns the next key of p not resting at now. When every key rests,
// the one whose rest ends first is used: a provider's 429 must not turn
// into a full outage. Nil when p has no key.
func (r *keyRing) pick(p *provider, now time.Time) *providerKey {
	n := len(p.keys)
	if n == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.next[p.name]
	var soonest *providerKey
	var soonestEnd time.Time
	for i := range n {
		k := &p.keys[(start+i)%n]
		end, ok := r.resting[p.name+"\x00"+k.id]
		if !ok || !now.Before(end) {
			if ok {
				delete(r.resting, p.name+"\x00"+k.id)
			}
			r.next[p.name] = (start + i + 1) % n
			return k
		}
		if soonest == nil || end.Before(soonestEnd) {
			soonest, soonestEnd = k, end
		}
	}
	return soonest
}

// rest leaves key id of provider out of the rotation until until.
func (r *keyRing) rest(provider, id string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resting[provider+"\x00"+id] = until
}

// restingUntil returns when key id of provider rests until (zero: not).
func (r *keyRing) restingUntil(provider, id string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resting[provider+"\x00"+id]
}
