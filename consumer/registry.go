package consumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/quota"
)

// Options are what a Registry is built from.
type Options struct {
	// Consumers and Tiers come from the config file and the admin API.
	Consumers []Config
	Tiers     []TierConfig
	// Keys are keys issued at runtime, beside the ones in Consumers.
	Keys []Key
	// Getenv reads "env:" keys; default os.Getenv.
	Getenv func(string) string
}

// Registry finds consumers by API key. It is immutable and safe for
// concurrent use; a change builds a new Registry.
type Registry struct {
	byHash map[Hash]keyEntry
	byName map[string]*Consumer
	names  []string
	tiers  map[string]*TierConfig
}

type keyEntry struct {
	hash     Hash
	consumer *Consumer
	// expires and revoked limit keys issued at runtime; zero: never.
	expires, revoked time.Time
}

// NewRegistry validates o and builds its Registry.
func NewRegistry(o Options) (*Registry, error) {
	return build(o, "consumers")
}

func build(o Options, field string) (*Registry, error) {
	var errs []error
	r := &Registry{byHash: map[Hash]keyEntry{}, byName: map[string]*Consumer{}, tiers: map[string]*TierConfig{}}
	for i := range o.Tiers {
		t := &o.Tiers[i]
		at := fmt.Sprintf("tiers[%d]", i)
		if err := validName(t.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %w", at, err))
		} else if _, dup := r.tiers[t.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, t.Name))
		}
		errs = append(errs, validateModels(at, t.Models)...)
		errs = append(errs, t.Limits.Validate(at+".limits"))
		if t.Quota != nil {
			errs = append(errs, t.Quota.Validate(at+".quota"))
		}
		r.tiers[t.Name] = t
	}
	keyOwner := map[Hash]string{}
	for i := range o.Consumers {
		c := &o.Consumers[i]
		at := fmt.Sprintf("%s[%d]", field, i)
		if err := validName(c.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %w", at, err))
		} else if _, dup := r.byName[c.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, c.Name))
		}
		var tier *TierConfig
		if c.Tier != "" {
			if tier = r.tiers[c.Tier]; tier == nil {
				errs = append(errs, fmt.Errorf("%s.tier: no tier named %q", at, c.Tier))
			}
		}
		errs = append(errs, validateModels(at, c.Models)...)
		errs = append(errs, c.Limits.Validate(at+".limits"))
		if c.Quota != nil {
			errs = append(errs, c.Quota.Validate(at+".quota"))
		}
		res := resolve(c, tier)
		ws, err := limiter.ConsumerWindows(c.Name, res.limits)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		}
		con := res.Consumer
		con.Windows = ws
		if res.limits.MaxInFlight != nil {
			con.MaxInFlight = *res.limits.MaxInFlight
		}
		r.byName[c.Name] = con
		r.names = append(r.names, c.Name)
		for k, key := range c.Keys {
			h, err := ParseSecret(key, o.Getenv)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.keys[%d]: %w", at, k, err))
				continue
			}
			if other, dup := keyOwner[h]; dup {
				errs = append(errs, fmt.Errorf("%s.keys[%d]: the same key is already given to %s", at, k, other))
			}
			keyOwner[h] = c.Name
			r.byHash[h] = keyEntry{hash: h, consumer: con}
		}
	}
	for i := range o.Keys {
		k := &o.Keys[i]
		con := r.byName[k.Consumer]
		if con == nil {
			continue // the consumer is gone; so is its key
		}
		if other, dup := keyOwner[k.Hash]; dup && other != k.Consumer {
			errs = append(errs, fmt.Errorf("keys[%s]: the same key is already given to %s", k.ID, other))
			continue
		}
		keyOwner[k.Hash] = k.Consumer
		r.byHash[k.Hash] = keyEntry{hash: k.Hash, consumer: con, expires: k.ExpiresAt, revoked: k.RevokedAt}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// resolved is a Consumer while it is built.
type resolved struct {
	*Consumer
	limits limiter.Limits
}

// resolve applies consumer → tier: every setting the consumer leaves unset
// comes from its tier.
func resolve(c *Config, t *TierConfig) resolved {
	con := &Consumer{Name: c.Name, Tier: c.Tier, models: c.Models, Quota: c.Quota, disabled: c.Disabled}
	limits := c.Limits
	if t != nil {
		if len(con.models) == 0 {
			con.models = t.Models
		}
		con.tierQuota = t.Quota
		limits = limits.Over(t.Limits)
	}
	return resolved{Consumer: con, limits: limits}
}

// Authenticate returns the consumer that owns key, if the key is usable at
// now and the consumer is enabled.
func (r *Registry) Authenticate(key string, now time.Time) (*Consumer, bool) {
	if r == nil || key == "" {
		return nil, false
	}
	// The index is keyed by the SHA-256 of the key, so what a lookup's timing
	// could reveal is about the hash, from which no key can be recovered.
	// The stored hash is still confirmed in constant time.
	h := HashKey(key)
	e, ok := r.byHash[h]
	if !ok || !e.hash.Equal(h) || e.consumer.disabled {
		return nil, false
	}
	if !e.revoked.IsZero() || (!e.expires.IsZero() && !now.Before(e.expires)) {
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

// Names returns the consumers' names in the order they were given.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	return append([]string(nil), r.names...)
}

// Tier returns the tier named name.
func (r *Registry) Tier(name string) (*TierConfig, bool) {
	if r == nil {
		return nil, false
	}
	t, ok := r.tiers[name]
	return t, ok
}

// QuotaOf returns the quota consumer name carries itself and its tier's;
// it makes a Registry a [quota.Holders].
func (r *Registry) QuotaOf(name string) (own, tier *quota.Allotment) {
	c, ok := r.Lookup(name)
	if !ok {
		return nil, nil
	}
	return c.Quota, c.tierQuota
}
