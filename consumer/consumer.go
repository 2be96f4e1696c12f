// Package consumer holds the consumers tollgate authenticates: their names,
// the hashes of their API keys and the models they may call.
//
// Keys are kept only as SHA-256 hashes. A lookup hashes the presented key,
// finds the candidate by hash and confirms it with a constant-time compare,
// so neither the keys nor the time taken reveal anything usable.
package consumer

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
)

// HashPrefix marks a key written in config as its SHA-256 hash.
const HashPrefix = "sha256:"

// EnvPrefix marks a secret written in config as the name of an environment
// variable that holds it.
const EnvPrefix = "env:"

// Hash is the SHA-256 of an API key.
type Hash [sha256.Size]byte

// HashKey returns the hash of a plain key.
func HashKey(key string) Hash { return sha256.Sum256([]byte(key)) }

// String returns the "sha256:<hex>" form used in config.
func (h Hash) String() string { return HashPrefix + hex.EncodeToString(h[:]) }

// ParseSecret turns a secret as written in config into its hash: a
// "sha256:<hex>" hash is decoded, "env:NAME" is read from the environment
// (through getenv) and hashed, anything else is a plain key and is hashed.
// The plain key is not kept.
func ParseSecret(s string, getenv func(string) string) (Hash, error) {
	var h Hash
	switch {
	case strings.HasPrefix(s, HashPrefix):
		b, err := hex.DecodeString(strings.TrimPrefix(s, HashPrefix))
		if err != nil || len(b) != sha256.Size {
			return h, errors.New("sha256 key must be 64 hex digits")
		}
		copy(h[:], b)
		return h, nil
	case strings.HasPrefix(s, EnvPrefix):
		name := strings.TrimPrefix(s, EnvPrefix)
		if getenv == nil {
			getenv = os.Getenv
		}
		v := getenv(name)
		if v == "" {
			return h, fmt.Errorf("environment variable %s is empty or unset", name)
		}
		return HashKey(v), nil
	case s == "":
		return h, errors.New("key is empty")
	default:
		return HashKey(s), nil
	}
}

// Equal compares two hashes in constant time.
func (h Hash) Equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// Config is one consumer as written in the config file.
type Config struct {
	// Name identifies the consumer in limits, quotas, usage and headers.
	Name string `yaml:"name"`
	// Keys are the consumer's API keys: "sha256:<hex>", "env:VAR" or plain
	// (hashed at load, never kept).
	Keys []string `yaml:"keys"`
	// Models, when set, is the allow-list of models (path.Match globs such
	// as "gpt-4o*"); absent means every model.
	Models []string `yaml:"models"`
}

// Consumer is an authenticated caller.
type Consumer struct {
	// Name is the consumer's name.
	Name   string
	models []string
}

// AllowsModel reports whether the consumer may call model. A request that
// names no model is allowed; the provider decides what it means.
func (c *Consumer) AllowsModel(model string) bool {
	if len(c.models) == 0 || model == "" {
		return true
	}
	for _, pattern := range c.models {
		if ok, _ := path.Match(pattern, model); ok {
			return true
		}
	}
	return false
}

// Registry finds consumers by API key. It is immutable and safe for
// concurrent use; a new configuration builds a new Registry.
type Registry struct {
	byHash map[Hash]keyEntry
	byName map[string]*Consumer
	names  []string
}

type keyEntry struct {
	hash     Hash
	consumer *Consumer
}

// Validate checks consumer configs, naming the field path of each problem.
func Validate(field string, cs []Config, getenv func(string) string) error {
	var errs []error
	names := map[string]int{}
	keys := map[Hash]string{}
	for i, c := range cs {
		p := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: must be set", p))
		case strings.ContainsAny(c.Name, "{}\r\n\x00"):
			errs = append(errs, fmt.Errorf("%s.name: %q must not contain braces or control characters", p, c.Name))
		default:
			if j, dup := names[c.Name]; dup {
				errs = append(errs, fmt.Errorf("%s.name: %q already used by %s[%d]", p, c.Name, field, j))
			}
			names[c.Name] = i
		}
		if len(c.Keys) == 0 {
			errs = append(errs, fmt.Errorf("%s.keys: at least one key is required", p))
		}
		for k, key := range c.Keys {
			h, err := ParseSecret(key, getenv)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.keys[%d]: %w", p, k, err))
				continue
			}
			if other, dup := keys[h]; dup {
				errs = append(errs, fmt.Errorf("%s.keys[%d]: the same key is already given to %s", p, k, other))
			}
			keys[h] = c.Name
		}
		for m, pattern := range c.Models {
			if _, err := path.Match(pattern, ""); err != nil || pattern == "" {
				errs = append(errs, fmt.Errorf("%s.models[%d]: bad glob %q", p, m, pattern))
			}
		}
	}
	return errors.Join(errs...)
}

// NewRegistry builds a Registry from validated consumer configs.
func NewRegistry(cs []Config, getenv func(string) string) (*Registry, error) {
	if err := Validate("consumers", cs, getenv); err != nil {
		return nil, err
	}
	r := &Registry{byHash: map[Hash]keyEntry{}, byName: map[string]*Consumer{}}
	for _, c := range cs {
		con := &Consumer{Name: c.Name, models: append([]string(nil), c.Models...)}
		r.byName[c.Name] = con
		r.names = append(r.names, c.Name)
		for _, key := range c.Keys {
			h, _ := ParseSecret(key, getenv) // validated above
			r.byHash[h] = keyEntry{hash: h, consumer: con}
		}
	}
	return r, nil
}

// Authenticate returns the consumer that owns key.
func (r *Registry) Authenticate(key string) (*Consumer, bool) {
	if r == nil || key == "" {
		return nil, false
	}
	// The index is keyed by the SHA-256 of the key, so what a lookup's timing
	// could reveal is about the hash, from which no key can be recovered.
	// The stored hash is still confirmed in constant time.
	h := HashKey(key)
	e, ok := r.byHash[h]
	if !ok || !e.hash.Equal(h) {
		return nil, false
	}
	return e.consumer, true
}

// Lookup returns the consumer named name.
func (r *Registry) Lookup(name string) (*Consumer, bool) {
	if r == nil {
		return nil, false
	}
	c, ok := r.byName[name]
	return c, ok
}

// Names returns the consumers' names in config order.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	return append([]string(nil), r.names...)
}
