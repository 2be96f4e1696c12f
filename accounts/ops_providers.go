package accounts

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"
)

// ProviderInput creates or replaces a runtime provider. Keys are the
// provider's API keys in the clear; on replace, nil keeps the stored keys
// and an empty list removes them.
type ProviderInput struct {
	Name        string    `json:"name"`
	PathPrefix  string    `json:"path_prefix"`
	Host        string    `json:"host"`
	Header      string    `json:"header"`
	RestSeconds int64     `json:"rest_seconds"`
	Keys        *[]string `json:"keys"`
	// Source is ignored, so that an answer can be sent back.
	Source Source `json:"source,omitempty"`
}

func validateProvider(in *ProviderInput) error {
	var errs []error
	if err := validateProviderFields(in.Name, in.PathPrefix, in.Host, in.Header, in.RestSeconds); err != nil {
		errs = append(errs, err)
	}
	if in.Keys != nil {
		if len(*in.Keys) > maxProviderKeys {
			errs = append(errs, fmt.Errorf("keys: at most %d", maxProviderKeys))
		}
		for i, k := range *in.Keys {
			if err := validateProviderKey(k); err != nil {
				errs = append(errs, fmt.Errorf("keys[%d]: %w", i, err))
			}
			for j := range i {
				if sameSecret((*in.Keys)[j], k) {
					errs = append(errs, fmt.Errorf("keys[%d]: same key as keys[%d]", i, j))
				}
			}
		}
	}
	return invalid(errs)
}

func sameSecret(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// sealer returns what seals provider keys, or why it cannot.
func (s *Store) sealer() (*sealer, error) {
	if s.seal == nil {
		return nil, fail(ErrNoEncryptionKey, "provider keys are stored encrypted and no encryption key is configured: set accounts.encryption_key_env to an environment variable holding 32 random bytes (base64 or hex)")
	}
	return s.seal, nil
}

// Providers returns every provider, the config file's first.
func (s *Store) Providers(ctx context.Context, base Base) ([]ProviderInfo, error) {
	m, err := s.view(ctx, base)
	if err != nil {
		return nil, err
	}
	out := make([]ProviderInfo, len(m.providers))
	for i := range m.providers {
		out[i] = m.providers[i].info()
	}
	return out, nil
}

// Provider returns the provider named name.
func (s *Store) Provider(ctx context.Context, base Base, name string) (ProviderInfo, error) {
	m, err := s.view(ctx, base)
	if err != nil {
		return ProviderInfo{}, err
	}
	i, ok := m.providerAt[name]
	if !ok {
		return ProviderInfo{}, fail(ErrNotFound, "no provider named %q", name)
	}
	return m.providers[i].info(), nil
}

func (m *merged) runtimeProvider(name string) (*mergedProvider, error) {
	i, ok := m.providerAt[name]
	switch {
	case !ok:
		return nil, fail(ErrNotFound, "no provider named %q", name)
	case m.providers[i].Source == SourceConfig:
		return nil, fail(ErrConfigOwned, "provider %q is declared in the config file; change it there", name)
	}
	return &m.providers[i], nil
}

// routeTaken names the provider other than self that already serves the
// path prefix on host.
func (m *merged) routeTaken(self, host, pathPrefix string) (string, bool) {
	for _, p := range m.providers {
		if p.Name != self && p.Host == host && p.PathPrefix == pathPrefix {
			return p.Name, true
		}
	}
	return "", false
}

// sealKeys stores plain as the keys of provider rec, keeping the id and
// creation time of a key already stored with the same value.
func (s *Store) sealKeys(rec *ProviderRecord, old []ProviderKeyRecord, plain []string, now time.Time) ([]op, error) {
	seal, err := s.sealer()
	if err != nil {
		return nil, err
	}
	var ops []op
	kept := map[string]bool{}
	for i, p := range plain {
		var k ProviderKeyRecord
		for _, o := range old {
			if v, err := seal.open(o.Provider, o.ID, o.Sealed); err == nil && sameSecret(v, p) {
				k = o
				kept[o.ID] = true
			}
		}
		if k.ID == "" {
			if k.ID, err = newID("pk_"); err != nil {
				return nil, err
			}
			k.Provider, k.Hint, k.CreatedAt = rec.Name, hint(p), now.UTC()
			if k.Sealed, err = seal.seal(rec.Name, k.ID, p); err != nil {
				return nil, err
			}
		} else if k.Seq == i {
			rec.Keys = append(rec.Keys, k)
			continue
		}
		k.Seq = i
		o, err := setOp(hProviderKeys, providerKeyField(rec.Name, k.ID), k)
		if err != nil {
			return nil, err
		}
		ops = append(ops, o)
		rec.Keys = append(rec.Keys, k)
	}
	for _, o := range old {
		if !kept[o.ID] {
			ops = append(ops, delOp(hProviderKeys, providerKeyField(o.Provider, o.ID)))
		}
	}
	return ops, nil
}

func providerInfoOf(rec *ProviderRecord) ProviderInfo {
	p := mergedProvider{Provider: Provider{Name: rec.Name, PathPrefix: rec.PathPrefix, Host: rec.Host, Header: headerOrDefault(rec.Header),
		Rest: time.Duration(rec.RestSeconds) * time.Second, Source: SourceRuntime}}
	if p.Rest <= 0 {
		p.Rest = DefaultRest
	}
	for _, k := range rec.Keys {
		p.Keys = append(p.Keys, ProviderKey{ID: k.ID, Hint: k.Hint, CreatedAt: k.CreatedAt})
	}
	return p.info()
}

// CreateProvider creates a runtime provider with its keys.
func (s *Store) CreateProvider(ctx context.Context, base Base, in ProviderInput) (ProviderInfo, error) {
	if err := validateProvider(&in); err != nil {
		return ProviderInfo{}, err
	}
	var out ProviderInfo
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		if _, ok := m.providerAt[in.Name]; ok {
			return nil, fail(ErrExists, "provider %q already exists", in.Name)
		}
		if other, taken := m.routeTaken(in.Name, in.Host, in.PathPrefix); taken {
			return nil, fail(ErrExists, "provider %q already serves path_prefix %q", other, in.PathPrefix)
		}
		rec := ProviderRecord{Name: in.Name, PathPrefix: in.PathPrefix, Host: in.Host, Header: headerOrDefault(in.Header),
			RestSeconds: in.RestSeconds, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
		var ops []op
		if in.Keys != nil && len(*in.Keys) > 0 {
			var err error
			if ops, err = s.sealKeys(&rec, nil, *in.Keys, now); err != nil {
				return nil, err
			}
		}
		// Keys left by an earlier provider of this name are dropped.
		for _, f := range m.staleProviderKeys[in.Name] {
			ops = append(ops, delOp(hProviderKeys, f))
		}
		out = providerInfoOf(&rec)
		o, err := setOp(hProviders, rec.Name, rec)
		return append(ops, o), err
	})
	return out, err
}

// ReplaceProvider replaces a runtime provider; see [ProviderInput] for
// its keys.
func (s *Store) ReplaceProvider(ctx context.Context, base Base, name string, in ProviderInput) (ProviderInfo, error) {
	if in.Name == "" {
		in.Name = name
	}
	if in.Name != name {
		return ProviderInfo{}, fail(ErrInvalid, "name: %q does not match the provider %q of the path; providers cannot be renamed", in.Name, name)
	}
	if err := validateProvider(&in); err != nil {
		return ProviderInfo{}, err
	}
	var out ProviderInfo
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		p, err := m.runtimeProvider(name)
		if err != nil {
			return nil, err
		}
		if other, taken := m.routeTaken(name, in.Host, in.PathPrefix); taken {
			return nil, fail(ErrExists, "provider %q already serves path_prefix %q", other, in.PathPrefix)
		}
		rec := ProviderRecord{Name: name, PathPrefix: in.PathPrefix, Host: in.Host, Header: headerOrDefault(in.Header),
			RestSeconds: in.RestSeconds, CreatedAt: p.rec.CreatedAt, UpdatedAt: now.UTC()}
		var ops []op
		if in.Keys == nil {
			rec.Keys = p.rec.Keys
		} else if ops, err = s.sealKeys(&rec, p.rec.Keys, *in.Keys, now); err != nil {
			return nil, err
		}
		out = providerInfoOf(&rec)
		o, err := setOp(hProviders, name, rec)
		return append(ops, o), err
	})
	return out, err
}

// DeleteProvider deletes a runtime provider and its keys.
func (s *Store) DeleteProvider(ctx context.Context, base Base, name string) error {
	return s.update(ctx, base, func(m *merged, _ time.Time) ([]op, error) {
		if _, err := m.runtimeProvider(name); err != nil {
			return nil, err
		}
		ops := []op{delOp(hProviders, name)}
		for _, f := range m.staleProviderKeys[name] {
			ops = append(ops, delOp(hProviderKeys, f))
		}
		return ops, nil
	})
}

// AddProviderKey adds a key to a runtime provider.
func (s *Store) AddProviderKey(ctx context.Context, base Base, name, key string) (ProviderKeyInfo, error) {
	if err := validateProviderKey(key); err != nil {
		return ProviderKeyInfo{}, fail(ErrInvalid, "key: %v", err)
	}
	var out ProviderKeyInfo
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		p, err := m.runtimeProvider(name)
		if err != nil {
			return nil, err
		}
		if len(p.rec.Keys) >= maxProviderKeys {
			return nil, fail(ErrConflict, "provider %q has %d keys already, the most it can have", name, maxProviderKeys)
		}
		seal, err := s.sealer()
		if err != nil {
			return nil, err
		}
		for _, o := range p.rec.Keys {
			if v, err := seal.open(o.Provider, o.ID, o.Sealed); err == nil && sameSecret(v, key) {
				return nil, fail(ErrExists, "provider %q already has this key (%s)", name, o.ID)
			}
		}
		k := ProviderKeyRecord{Provider: name, Hint: hint(key), CreatedAt: now.UTC()}
		for _, o := range p.rec.Keys {
			k.Seq = max(k.Seq, o.Seq+1)
		}
		if k.ID, err = newID("pk_"); err != nil {
			return nil, err
		}
		if k.Sealed, err = seal.seal(name, k.ID, key); err != nil {
			return nil, err
		}
		out = ProviderKeyInfo{ID: k.ID, Prefix: k.Hint, CreatedAt: k.CreatedAt}
		o, err := setOp(hProviderKeys, providerKeyField(name, k.ID), k)
		return []op{o}, err
	})
	return out, err
}

// DeleteProviderKey deletes one key of a runtime provider.
func (s *Store) DeleteProviderKey(ctx context.Context, base Base, name, id string) error {
	return s.update(ctx, base, func(m *merged, _ time.Time) ([]op, error) {
		p, err := m.runtimeProvider(name)
		if err != nil {
			return nil, err
		}
		for _, k := range p.rec.Keys {
			if k.ID == id {
				return []op{delOp(hProviderKeys, providerKeyField(name, id))}, nil
			}
		}
		return nil, fail(ErrNotFound, "provider %q has no key %q", name, id)
	})
}
