// Package consumer holds the consumers tollgate authenticates: their names,
// the hashes of their API keys, their tier, and what they may use — models,
// rate limits and quota — resolved consumer → tier → default.
//
// Keys are kept only as SHA-256 hashes. A lookup hashes the presented key,
// finds the candidate by hash and confirms it with a constant-time compare,
// so neither the keys nor the time taken reveal anything usable.
package consumer

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/quota"
)

// Config is one consumer as written in the config file (or created at
// runtime through the admin API).
type Config struct {
	// Name identifies the consumer in limits, quotas, usage and headers.
	Name string `yaml:"name" json:"name"`
	// Keys are the consumer's API keys: "sha256:<hex>", "env:VAR" or plain
	// (hashed at load, never kept).
	Keys []string `yaml:"keys" json:"-"`
	// Tier names the tier whose models, limits and quota apply where the
	// consumer sets none of its own.
	Tier string `yaml:"tier,omitempty" json:"tier,omitempty"`
	// Models, when set, is the allow-list of models (path.Match globs such
	// as "gpt-4o*"); absent means the tier's, or every model.
	Models []string `yaml:"models,omitempty" json:"models,omitempty"`
	// Limits are windows of the consumer's own, over its tier's.
	Limits limiter.Limits `yaml:"limits,omitempty" json:"limits,omitempty"`
	// Quota, when set, is the consumer's quota, over its tier's.
	Quota *quota.Allotment `yaml:"quota,omitempty" json:"quota,omitempty"`
	// Disabled consumers are refused (401) whatever key they present.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

// TierConfig is a named bundle of what consumers of that tier may use.
type TierConfig struct {
	Name   string           `yaml:"name" json:"name"`
	Models []string         `yaml:"models,omitempty" json:"models,omitempty"`
	Limits limiter.Limits   `yaml:"limits,omitempty" json:"limits,omitempty"`
	Quota  *quota.Allotment `yaml:"quota,omitempty" json:"quota,omitempty"`
}

// Key is an API key issued at runtime, known by its hash only.
type Key struct {
	// ID identifies the key in the admin API.
	ID string `json:"id"`
	// Consumer owns the key.
	Consumer string `json:"consumer"`
	// Hash is the SHA-256 of the key.
	Hash Hash `json:"hash"`
	// Prefix is the first characters of the key, to recognise it.
	Prefix string `json:"prefix"`
	// Label is the operator's note.
	Label string `json:"label,omitempty"`
	// CreatedAt, ExpiresAt (zero: never) and RevokedAt (zero: not revoked).
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Usable reports whether k authenticates at now.
func (k *Key) Usable(now time.Time) bool {
	return k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// Consumer is an authenticated caller with its settings resolved.
type Consumer struct {
	// Name is the consumer's name.
	Name string
	// Tier is the consumer's tier, "" for none.
	Tier string
	// Windows are the rate-limit windows of the consumer's own (or its
	// tier's) limits, counted per consumer.
	Windows []ledger.Window
	// MaxInFlight caps the consumer's requests in flight (0: no cap).
	MaxInFlight int64
	// Quota is the consumer's own quota, nil when none is set on it; see
	// [quota.Policy.Bind] for how it resolves with the tier's and the
	// quota section's.
	Quota *quota.Allotment

	tierQuota *quota.Allotment
	models    []string
	disabled  bool
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

// Models returns the consumer's model allow-list (empty: every model).
func (c *Consumer) Models() []string { return slices.Clone(c.models) }

// Validate checks consumer and tier configs together, naming the field
// path of each problem. getenv reads "env:" keys.
func Validate(field string, cs []Config, tiers []TierConfig, getenv func(string) string) error {
	_, err := build(Options{Consumers: cs, Tiers: tiers, Getenv: getenv}, field)
	return err
}

func validName(s string) error {
	switch {
	case s == "":
		return errors.New("must be set")
	case len(s) > 128:
		return errors.New("must be at most 128 characters")
	case strings.ContainsAny(s, "{}/\r\n\x00"):
		return fmt.Errorf("%q must not contain braces, slashes or control characters", s)
	}
	return nil
}

func validateModels(at string, models []string) []error {
	var errs []error
	for m, pattern := range models {
		if _, err := path.Match(pattern, ""); err != nil || pattern == "" {
			errs = append(errs, fmt.Errorf("%s.models[%d]: bad glob %q", at, m, pattern))
		}
	}
	return errs
}
