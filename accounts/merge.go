package accounts

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/consumer"
)

// DefaultRest is how long a provider key the provider refused (401, 429)
// rests before it is used again, when the provider sets no rest_seconds.
const DefaultRest = time.Minute

// Base is what the config file declares: the starting point runtime
// records are merged onto.
type Base struct {
	Tiers     []consumer.TierConfig
	Consumers []consumer.Config
	Providers []ConfigProvider
	// Getenv reads "env:" consumer keys and provider keys; default
	// os.Getenv.
	Getenv func(string) string
}

// ConfigProvider is a provider declared in the config file.
type ConfigProvider struct {
	Name       string
	PathPrefix string
	Host       string
	// Header is authorization (default), x-api-key, api-key or
	// x-goog-api-key.
	Header string
	// KeyEnvs name the environment variables holding the provider's keys,
	// used in turn.
	KeyEnvs []string
	// Rest is how long a refused key rests; DefaultRest when 0.
	Rest time.Duration
}

// Provider is an upstream whose keys tollgate injects, as the request path
// uses it.
type Provider struct {
	Name       string
	PathPrefix string
	// Host, when set, must also match the request's :authority.
	Host string
	// Header is the lower-case header that carries the key:
	// authorization ("Bearer <key>"), x-api-key, api-key or x-goog-api-key.
	Header string
	// Rest is how long a key the provider answered 401 or 429 for is left
	// out of the rotation.
	Rest   time.Duration
	Source Source
	// Keys are used in turn. Empty when the provider has none (or none
	// could be decrypted): requests for it cannot be given a key.
	Keys []ProviderKey
}

// ProviderKey is one key of a provider.
type ProviderKey struct {
	// ID names the key in the API and in logs and metrics; "env:NAME" for
	// a key from the config file.
	ID string
	// Hint is enough of the key for a person to recognise it ("sk-…abcd").
	Hint      string
	CreatedAt time.Time
	// Secret is the key itself.
	Secret Secret
}

type mergedTier struct {
	cfg consumer.TierConfig
	src Source
	rec *TierRecord
}

type mergedConsumer struct {
	cfg        consumer.Config
	src        Source
	rec        *ConsumerRecord // nil for a config consumer
	configKeys int
}

// uid is what a key issued to this consumer carries.
func (c *mergedConsumer) uid() string {
	if c.rec == nil {
		return ""
	}
	return c.rec.UID
}

type mergedProvider struct {
	Provider
	rec *ProviderRecord
}

// merged is the config and a snapshot put together by the precedence
// rules: what the request path enforces and what the API shows.
type merged struct {
	tiers      []mergedTier
	tierAt     map[string]int
	consumers  []mergedConsumer
	consumerAt map[string]int
	// keysOf lists, per consumer, the runtime keys that belong to it,
	// revoked and expired ones included.
	keysOf map[string][]KeyRecord
	// allKeyIDs lists, per consumer name, every stored key, its own and
	// those left by earlier holders of the name.
	allKeyIDs map[string][]string
	// staleProviderKeys lists, per provider name, every stored key field.
	staleProviderKeys map[string][]string
	providers         []mergedProvider
	providerAt        map[string]int
	warnings          []string
}

func (m *merged) warn(format string, args ...any) {
	m.warnings = append(m.warnings, fmt.Sprintf(format, args...))
}

func (m *merged) tierConfigs() []consumer.TierConfig {
	out := make([]consumer.TierConfig, len(m.tiers))
	for i, t := range m.tiers {
		out[i] = t.cfg
	}
	return out
}

func merge(base Base, snap *Snapshot) *merged {
	if snap == nil {
		snap = &Snapshot{}
	}
	getenv := base.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	m := &merged{tierAt: map[string]int{}, consumerAt: map[string]int{}, keysOf: map[string][]KeyRecord{}, allKeyIDs: map[string][]string{}, providerAt: map[string]int{}}
	m.warnings = append(m.warnings, snap.Warnings...)
	m.staleProviderKeys = snap.providerKeyFields
	for _, t := range base.Tiers {
		m.tierAt[t.Name] = len(m.tiers)
		m.tiers = append(m.tiers, mergedTier{cfg: t, src: SourceConfig})
	}
	for i := range snap.Tiers {
		rec := &snap.Tiers[i]
		if _, ok := m.tierAt[rec.Name]; ok {
			m.warn("runtime tier %q ignored: the config file declares it", rec.Name)
			continue
		}
		cfg := rec.config()
		if err := consumer.Validate("consumers", nil, []consumer.TierConfig{cfg}, getenv); err != nil {
			m.warn("runtime tier %q ignored: %s", rec.Name, oneLine(err))
			continue
		}
		m.tierAt[rec.Name] = len(m.tiers)
		m.tiers = append(m.tiers, mergedTier{cfg: cfg, src: SourceRuntime, rec: rec})
	}
	for _, c := range base.Consumers {
		if st, ok := snap.States[c.Name]; ok {
			c.Disabled = st.Disabled
		}
		m.consumerAt[c.Name] = len(m.consumers)
		m.consumers = append(m.consumers, mergedConsumer{cfg: c, src: SourceConfig, configKeys: len(c.Keys)})
	}
	for i := range snap.Consumers {
		rec := &snap.Consumers[i]
		if _, ok := m.consumerAt[rec.Name]; ok {
			m.warn("runtime consumer %q ignored: the config file declares it", rec.Name)
			continue
		}
		cfg := rec.config()
		// Checked with its own tier only, so that merging stays linear in
		// the number of consumers.
		var tiers []consumer.TierConfig
		if t, ok := m.tierAt[cfg.Tier]; ok {
			tiers = []consumer.TierConfig{m.tiers[t].cfg}
		}
		if err := consumer.Validate("consumers", []consumer.Config{cfg}, tiers, getenv); err != nil {
			m.warn("runtime consumer %q ignored: %s", rec.Name, oneLine(err))
			continue
		}
		m.consumerAt[rec.Name] = len(m.consumers)
		m.consumers = append(m.consumers, mergedConsumer{cfg: cfg, src: SourceRuntime, rec: rec})
	}
	for _, k := range snap.Keys {
		m.allKeyIDs[k.Consumer] = append(m.allKeyIDs[k.Consumer], k.ID)
		i, ok := m.consumerAt[k.Consumer]
		// A key whose consumer is gone, or was issued to an earlier
		// holder of the name, authenticates no one.
		if ok && m.consumers[i].uid() == k.ConsumerUID {
			m.keysOf[k.Consumer] = append(m.keysOf[k.Consumer], k)
		}
	}
	m.mergeProviders(base, snap, getenv)
	return m
}

func (m *merged) mergeProviders(base Base, snap *Snapshot, getenv func(string) string) {
	route := map[string]string{}
	add := func(p mergedProvider) {
		m.providerAt[p.Name] = len(m.providers)
		m.providers = append(m.providers, p)
		route[p.Host+"\x00"+p.PathPrefix] = p.Name
	}
	for _, c := range base.Providers {
		p := mergedProvider{Provider: Provider{Name: c.Name, PathPrefix: c.PathPrefix, Host: c.Host,
			Header: headerOrDefault(c.Header), Rest: c.Rest, Source: SourceConfig}}
		if p.Rest <= 0 {
			p.Rest = DefaultRest
		}
		for _, env := range c.KeyEnvs {
			v := getenv(env)
			if v == "" {
				m.warn("provider %q: environment variable %s is empty or unset", c.Name, env)
				continue
			}
			p.Keys = append(p.Keys, ProviderKey{ID: "env:" + env, Hint: hint(v), Secret: Secret(v)})
		}
		add(p)
	}
	for i := range snap.Providers {
		rec := &snap.Providers[i]
		if _, ok := m.providerAt[rec.Name]; ok {
			m.warn("runtime provider %q ignored: the config file declares it", rec.Name)
			continue
		}
		if err := validateProviderFields(rec.Name, rec.PathPrefix, rec.Host, rec.Header, rec.RestSeconds); err != nil {
			m.warn("runtime provider %q ignored: %s", rec.Name, oneLine(err))
			continue
		}
		if other, taken := route[rec.Host+"\x00"+rec.PathPrefix]; taken {
			m.warn("runtime provider %q ignored: provider %q already serves path_prefix %q", rec.Name, other, rec.PathPrefix)
			continue
		}
		p := mergedProvider{Provider: Provider{Name: rec.Name, PathPrefix: rec.PathPrefix, Host: rec.Host,
			Header: headerOrDefault(rec.Header), Rest: time.Duration(rec.RestSeconds) * time.Second, Source: SourceRuntime}, rec: rec}
		if p.Rest <= 0 {
			p.Rest = DefaultRest
		}
		for _, k := range rec.Keys {
			p.Keys = append(p.Keys, ProviderKey{ID: k.ID, Hint: k.Hint, CreatedAt: k.CreatedAt, Secret: k.Secret})
		}
		add(p)
	}
}

// Merge puts the config and a snapshot together by the precedence rules
// (see the package documentation): the options to build the
// [consumer.Registry] from, the providers, and a warning for every runtime
// record that is ignored. It never fails: a record that cannot be used is
// left out with a warning, so the config's own accounts always work.
func Merge(base Base, snap *Snapshot) (consumer.Options, []Provider, []string) {
	m := merge(base, snap)
	opts, warnings := m.options(base)
	providers := make([]Provider, len(m.providers))
	for i, p := range m.providers {
		providers[i] = p.Provider
		providers[i].Keys = slices.Clone(p.Keys)
	}
	return opts, providers, warnings
}

// options returns the registry options of m. A runtime key whose hash is
// another consumer's key is left out (a random key cannot collide; a
// hand-edited store can).
func (m *merged) options(base Base) (consumer.Options, []string) {
	warnings := slices.Clone(m.warnings)
	opts := consumer.Options{Tiers: m.tierConfigs(), Getenv: base.Getenv}
	owner := map[consumer.Hash]string{}
	for _, c := range m.consumers {
		opts.Consumers = append(opts.Consumers, c.cfg)
		for _, k := range c.cfg.Keys {
			if h, err := consumer.ParseSecret(k, base.Getenv); err == nil {
				owner[h] = c.cfg.Name
			}
		}
	}
	for _, c := range m.consumers {
		for _, k := range m.keysOf[c.cfg.Name] {
			if !k.RevokedAt.IsZero() {
				continue
			}
			if other, taken := owner[k.Hash]; taken && other != k.Consumer {
				warnings = append(warnings, fmt.Sprintf("key %s of consumer %q ignored: %q holds the same key", k.ID, k.Consumer, other))
				continue
			}
			owner[k.Hash] = k.Consumer
			opts.Keys = append(opts.Keys, k.key())
		}
	}
	if _, err := consumer.NewRegistry(opts); err != nil {
		// Each record was checked alone; this is a last line of defence
		// that keeps the config's accounts working.
		warnings = append(warnings, fmt.Sprintf("runtime accounts ignored: %s", oneLine(err)))
		opts = consumer.Options{Tiers: base.Tiers, Consumers: base.Consumers, Getenv: base.Getenv}
	}
	return opts, warnings
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
