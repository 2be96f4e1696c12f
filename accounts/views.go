package accounts

import (
	"slices"
	"time"

	"github.com/tollgate-ai/tollgate/limiter"
)

// TierInfo is a tier as the admin API reads and writes it.
type TierInfo struct {
	Name string `json:"name"`
	// Models is the allow-list of model globs; empty: every model.
	Models []string       `json:"models"`
	Limits limiter.Limits `json:"limits"`
	Quota  *Quota         `json:"quota"`
	// Source is ignored in requests.
	Source Source `json:"source,omitempty"`
}

// ConsumerInfo is a consumer as the admin API reads and writes it.
type ConsumerInfo struct {
	Name     string         `json:"name"`
	Tier     string         `json:"tier"`
	Models   []string       `json:"models"`
	Limits   limiter.Limits `json:"limits"`
	Quota    *Quota         `json:"quota"`
	Disabled bool           `json:"disabled"`
	// Source and Keys are ignored in requests.
	Source Source `json:"source,omitempty"`
	// Keys counts the keys that authenticate now: the config file's and
	// the runtime ones neither revoked nor expired.
	Keys int `json:"keys"`
}

// KeyInfo describes a consumer key, never the key itself.
type KeyInfo struct {
	ID        string     `json:"id"`
	Consumer  string     `json:"consumer"`
	Prefix    string     `json:"prefix"`
	Label     string     `json:"label"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// IssuedKey is a key just issued: its description and, this once, the key.
type IssuedKey struct {
	KeyInfo
	Secret Secret
}

// ProviderInfo describes a provider, never its keys' material.
type ProviderInfo struct {
	Name        string            `json:"name"`
	PathPrefix  string            `json:"path_prefix"`
	Host        string            `json:"host"`
	Header      string            `json:"header"`
	RestSeconds int64             `json:"rest_seconds"`
	Source      Source            `json:"source"`
	Keys        []ProviderKeyInfo `json:"keys"`
}

// ProviderKeyInfo describes one provider key.
type ProviderKeyInfo struct {
	ID string `json:"id"`
	// Prefix is the key's hint: first three and last four characters.
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
	// RestingUntil is set while this replica rests the key after the
	// provider refused it.
	RestingUntil *time.Time `json:"resting_until"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func emptyIfNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func (t *mergedTier) info() TierInfo {
	return TierInfo{Name: t.cfg.Name, Models: emptyIfNil(t.cfg.Models), Limits: t.cfg.Limits, Quota: quotaOf(t.cfg.Quota), Source: t.src}
}

func (m *merged) consumerInfo(c *mergedConsumer, now time.Time) ConsumerInfo {
	n := c.configKeys
	for _, k := range m.keysOf[c.cfg.Name] {
		if k.Usable(now) {
			n++
		}
	}
	return ConsumerInfo{Name: c.cfg.Name, Tier: c.cfg.Tier, Models: emptyIfNil(c.cfg.Models), Limits: c.cfg.Limits,
		Quota: quotaOf(c.cfg.Quota), Disabled: c.cfg.Disabled, Source: c.src, Keys: n}
}

func keyInfo(k *KeyRecord) KeyInfo {
	return KeyInfo{ID: k.ID, Consumer: k.Consumer, Prefix: k.Prefix, Label: k.Label, CreatedAt: k.CreatedAt.UTC(),
		ExpiresAt: timePtr(k.ExpiresAt), RevokedAt: timePtr(k.RevokedAt)}
}

func (p *mergedProvider) info() ProviderInfo {
	out := ProviderInfo{Name: p.Name, PathPrefix: p.PathPrefix, Host: p.Host, Header: p.Header,
		RestSeconds: int64(p.Rest / time.Second), Source: p.Source, Keys: []ProviderKeyInfo{}}
	for _, k := range p.Keys {
		out.Keys = append(out.Keys, ProviderKeyInfo{ID: k.ID, Prefix: k.Hint, CreatedAt: k.CreatedAt.UTC()})
	}
	return out
}

// Tiers returns every tier, config ones first.
func (m *merged) tierInfos() []TierInfo {
	out := make([]TierInfo, len(m.tiers))
	for i := range m.tiers {
		out[i] = m.tiers[i].info()
	}
	return out
}

func (m *merged) consumerUsers(tier string) []string {
	var names []string
	for _, c := range m.consumers {
		if c.cfg.Tier == tier {
			names = append(names, c.cfg.Name)
		}
	}
	return names
}
