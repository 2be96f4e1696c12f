package accounts

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/quota"
)

// The hashes records live in, in the order the backends address them.
const (
	hTiers = iota
	hConsumers
	hState
	hKeys
	hProviders
	hProviderKeys
	nHashes
)

var hashNames = [nHashes]string{"tiers", "consumers", "state", "keys", "providers", "provider_keys"}

// Source tells where a tier, consumer or provider comes from.
type Source string

const (
	// SourceConfig: declared in the config file; read-only through the API.
	SourceConfig Source = "config"
	// SourceRuntime: created through the API.
	SourceRuntime Source = "runtime"
)

// Quota is an allotment as the API and the store write it.
type Quota struct {
	// Tokens is the balance each period starts with.
	Tokens int64 `json:"tokens"`
	// Period is none (default), day, week or month.
	Period quota.Period `json:"period"`
	// Timezone is the IANA zone of the period boundaries; default UTC.
	Timezone string `json:"timezone"`
	// PerModel keeps a balance per model.
	PerModel bool `json:"per_model"`
}

func (q *Quota) allotment() *quota.Allotment {
	if q == nil {
		return nil
	}
	return &quota.Allotment{Tokens: q.Tokens, Period: q.Period, Timezone: q.Timezone, PerModel: q.PerModel}
}

func quotaOf(a *quota.Allotment) *Quota {
	if a == nil {
		return nil
	}
	q := &Quota{Tokens: a.Tokens, Period: a.Period, Timezone: a.Timezone, PerModel: a.PerModel}
	if q.Period == "" {
		q.Period = quota.None
	}
	return q
}

// TierRecord is a tier created at run time.
type TierRecord struct {
	Name      string         `json:"name"`
	Models    []string       `json:"models,omitempty"`
	Limits    limiter.Limits `json:"limits"`
	Quota     *Quota         `json:"quota,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

func (t *TierRecord) config() consumer.TierConfig {
	return consumer.TierConfig{Name: t.Name, Models: slices.Clone(t.Models), Limits: t.Limits, Quota: t.Quota.allotment()}
}

// ConsumerRecord is a consumer created at run time.
type ConsumerRecord struct {
	Name string `json:"name"`
	// UID tells this consumer from an earlier one of the same name; its
	// keys carry it.
	UID       string         `json:"uid"`
	Tier      string         `json:"tier,omitempty"`
	Models    []string       `json:"models,omitempty"`
	Limits    limiter.Limits `json:"limits"`
	Quota     *Quota         `json:"quota,omitempty"`
	Disabled  bool           `json:"disabled,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

func (c *ConsumerRecord) config() consumer.Config {
	return consumer.Config{Name: c.Name, Tier: c.Tier, Models: slices.Clone(c.Models), Limits: c.Limits, Quota: c.Quota.allotment(), Disabled: c.Disabled}
}

// StateRecord is what the API changed of a config consumer.
type StateRecord struct {
	Disabled  bool      `json:"disabled"`
	UpdatedAt time.Time `json:"updated_at"`
}

// KeyRecord is a consumer key issued at run time, known by its hash.
type KeyRecord struct {
	ID       string `json:"id"`
	Consumer string `json:"consumer"`
	// ConsumerUID is the UID of the runtime consumer the key was issued
	// to, empty for a config consumer.
	ConsumerUID string        `json:"consumer_uid,omitempty"`
	Hash        consumer.Hash `json:"hash"`
	Prefix      string        `json:"prefix"`
	Label       string        `json:"label,omitempty"`
	CreatedAt   time.Time     `json:"created_at"`
	ExpiresAt   time.Time     `json:"expires_at,omitzero"`
	RevokedAt   time.Time     `json:"revoked_at,omitzero"`
}

// Usable reports whether the key authenticates at now.
func (k *KeyRecord) Usable(now time.Time) bool {
	key := k.key()
	return key.Usable(now)
}

func (k *KeyRecord) key() consumer.Key {
	return consumer.Key{ID: k.ID, Consumer: k.Consumer, Hash: k.Hash, Prefix: k.Prefix, Label: k.Label,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt}
}

// ProviderRecord is a provider created at run time.
type ProviderRecord struct {
	Name        string    `json:"name"`
	PathPrefix  string    `json:"path_prefix"`
	Host        string    `json:"host,omitempty"`
	Header      string    `json:"header"`
	RestSeconds int64     `json:"rest_seconds,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Keys are the provider's keys, oldest first. They are stored apart
	// (one hash field each), so they are not part of the record's JSON.
	Keys []ProviderKeyRecord `json:"-"`
}

// ProviderKeyRecord is one API key of a runtime provider.
type ProviderKeyRecord struct {
	ID        string    `json:"id"`
	Provider  string    `json:"provider"`
	Hint      string    `json:"hint"`
	CreatedAt time.Time `json:"created_at"`
	// Seq orders the provider's keys: they are used in this order.
	Seq int `json:"seq"`
	// Sealed is the key encrypted with the operator's key.
	Sealed string `json:"sealed"`
	// Secret is the key in the clear, in memory only: set in snapshots
	// that were decrypted.
	Secret Secret `json:"-"`
}

func providerKeyField(provider, id string) string { return provider + "/" + id }

// raw is every record as the backends store them: JSON per hash field.
type raw struct {
	version int64
	epoch   string
	h       [nHashes]map[string]string
}

func newRaw() *raw {
	r := &raw{}
	for i := range r.h {
		r.h[i] = map[string]string{}
	}
	return r
}

func (r *raw) clone() *raw {
	c := &raw{version: r.version, epoch: r.epoch}
	for i, m := range r.h {
		c.h[i] = make(map[string]string, len(m))
		for k, v := range m {
			c.h[i][k] = v
		}
	}
	return c
}

// op is one change of one hash field.
type op struct {
	h     int
	field string
	value string // empty: delete the field
}

func (r *raw) apply(ops []op) {
	for _, o := range ops {
		if o.value == "" {
			delete(r.h[o.h], o.field)
		} else {
			r.h[o.h][o.field] = o.value
		}
	}
}

func setOp(h int, field string, rec any) (op, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return op{}, fmt.Errorf("cannot encode %s record %q: %w", hashNames[h], field, err)
	}
	return op{h: h, field: field, value: string(b)}, nil
}

func delOp(h int, field string) op { return op{h: h, field: field} }

// decodeHash decodes every field of one hash, sorted by field, reporting
// the ones that do not decode or whose name does not match their field.
func decodeHash[T any](r *raw, h int, name func(*T) string, warn func(string)) []T {
	fields := make([]string, 0, len(r.h[h]))
	for f := range r.h[h] {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	out := make([]T, 0, len(fields))
	for _, f := range fields {
		var v T
		if err := json.Unmarshal([]byte(r.h[h][f]), &v); err != nil {
			warn(fmt.Sprintf("%s record %q ignored: %v", hashNames[h], f, err))
			continue
		}
		if name != nil && name(&v) != f {
			warn(fmt.Sprintf("%s record %q ignored: it names %q", hashNames[h], f, name(&v)))
			continue
		}
		out = append(out, v)
	}
	return out
}

// snapshotOf decodes r. With decrypt, provider keys are opened with seal;
// a key that does not open is left out, reported in the snapshot's
// warnings and in the error returned (wrapping ErrDecrypt).
func snapshotOf(r *raw, seal *sealer, decrypt bool) (*Snapshot, error) {
	s := &Snapshot{Version: r.version, epoch: r.epoch, States: map[string]StateRecord{}}
	warn := func(w string) { s.Warnings = append(s.Warnings, w) }
	s.Tiers = decodeHash(r, hTiers, func(t *TierRecord) string { return t.Name }, warn)
	s.Consumers = decodeHash(r, hConsumers, func(c *ConsumerRecord) string { return c.Name }, warn)
	for f, v := range r.h[hState] {
		var st StateRecord
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			warn(fmt.Sprintf("state record %q ignored: %v", f, err))
			continue
		}
		s.States[f] = st
	}
	s.Keys = decodeHash(r, hKeys, func(k *KeyRecord) string { return k.ID }, warn)
	slices.SortFunc(s.Keys, func(a, b KeyRecord) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	s.Providers = decodeHash(r, hProviders, func(p *ProviderRecord) string { return p.Name }, warn)
	keys := decodeHash(r, hProviderKeys, func(k *ProviderKeyRecord) string { return providerKeyField(k.Provider, k.ID) }, warn)
	slices.SortFunc(keys, func(a, b ProviderKeyRecord) int {
		if a.Seq != b.Seq {
			return a.Seq - b.Seq
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	at := map[string]int{}
	for i, p := range s.Providers {
		at[p.Name] = i
	}
	var errs []error
	s.providerKeyFields = map[string][]string{}
	for _, k := range keys {
		s.providerKeyFields[k.Provider] = append(s.providerKeyFields[k.Provider], providerKeyField(k.Provider, k.ID))
		i, ok := at[k.Provider]
		if !ok {
			continue // left behind by a deleted provider
		}
		if decrypt {
			if seal == nil {
				err := fail(ErrDecrypt, "provider %q key %s is stored encrypted and no encryption key is configured (set accounts.encryption_key_env)", k.Provider, k.ID)
				errs = append(errs, err)
				warn(err.Error())
				continue
			}
			plain, err := seal.open(k.Provider, k.ID, k.Sealed)
			if err != nil {
				err := fail(ErrDecrypt, "cannot decrypt provider %q key %s: %v", k.Provider, k.ID, err)
				errs = append(errs, err)
				warn(err.Error())
				continue
			}
			k.Secret = Secret(plain)
		}
		s.Providers[i].Keys = append(s.Providers[i].Keys, k)
	}
	if len(errs) > 0 {
		return s, errs[0]
	}
	return s, nil
}
