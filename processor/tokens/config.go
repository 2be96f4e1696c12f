package tokens

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Config chooses the encoding that counts each model's tokens when the
// provider does not report them.
type Config struct {
	// DefaultEncoding counts models that neither Models nor ForModel knows.
	// Empty means o200k_base.
	DefaultEncoding string `yaml:"default_encoding"`
	// Models maps model names to encoding names, before ForModel is asked.
	// Names are matched case-insensitively, with or without a provider path
	// ("deepseek/deepseek-chat" matches "deepseek-chat"); a name ending in
	// "*" matches every model it is a prefix of, the longest prefix first.
	Models map[string]string `yaml:"models"`
}

// Validate returns every problem of c, each naming its field under path.
func (c *Config) Validate(path string) error {
	var errs []error
	field := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	if c.DefaultEncoding != "" && !knownEncoding(c.DefaultEncoding) {
		errs = append(errs, fmt.Errorf("%s: unknown encoding %q (want one of %s)",
			field("default_encoding"), c.DefaultEncoding, encodingList()))
	}
	for _, model := range slices.Sorted(maps.Keys(c.Models)) {
		enc := c.Models[model]
		name := fmt.Sprintf("%s[%q]", field("models"), model)
		if strings.TrimSpace(strings.TrimSuffix(model, "*")) == "" {
			errs = append(errs, fmt.Errorf("%s: model name is empty (use default_encoding for every model)", name))
		}
		if !knownEncoding(enc) {
			errs = append(errs, fmt.Errorf("%s: unknown encoding %q (want one of %s)", name, enc, encodingList()))
		}
	}
	return errors.Join(errs...)
}

func knownEncoding(name string) bool {
	_, ok := splitKinds[name]
	return ok
}

func encodingList() string {
	return strings.Join(slices.Sorted(maps.Keys(splitKinds)), ", ")
}

// Resolver is the compiled form of a Config: it maps any model name to an
// encoding. It is immutable and safe for concurrent use.
type Resolver struct {
	def      *Encoding
	exact    map[string]*Encoding
	prefixes []prefixEncoding // longest first
}

type prefixEncoding struct {
	prefix string
	enc    *Encoding
}

// Compile validates c and loads every encoding it names.
func (c *Config) Compile() (*Resolver, error) {
	if err := c.Validate(""); err != nil {
		return nil, err
	}
	def := c.DefaultEncoding
	if def == "" {
		def = O200kBase
	}
	r := &Resolver{exact: map[string]*Encoding{}}
	var err error
	if r.def, err = Get(def); err != nil {
		return nil, err
	}
	for model, name := range c.Models {
		e, err := Get(name)
		if err != nil {
			return nil, err
		}
		key := strings.ToLower(strings.TrimSpace(model))
		if p, ok := strings.CutSuffix(key, "*"); ok {
			r.prefixes = append(r.prefixes, prefixEncoding{p, e})
		} else {
			r.exact[key] = e
		}
	}
	slices.SortFunc(r.prefixes, func(a, b prefixEncoding) int {
		if d := len(b.prefix) - len(a.prefix); d != 0 {
			return d
		}
		return strings.Compare(a.prefix, b.prefix)
	})
	return r, nil
}

// ForModel returns the encoding for model: a configured one, else the one
// ForModel knows, else the default. It never returns nil.
func (r *Resolver) ForModel(model string) *Encoding {
	full := strings.ToLower(strings.TrimSpace(model))
	bare := full
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		bare = full[i+1:]
	}
	for _, name := range []string{full, bare} {
		if e, ok := r.exact[name]; ok {
			return e
		}
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(full, p.prefix) || strings.HasPrefix(bare, p.prefix) {
			return p.enc
		}
	}
	if e, ok := ForModel(model); ok {
		return e
	}
	return r.def
}
