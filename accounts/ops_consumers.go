package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/limiter"
)

// view reads the records and merges them with base, for reading.
func (s *Store) view(ctx context.Context, base Base) (*merged, error) {
	r, err := s.b.load(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	snap, _ := snapshotOf(r, nil, false)
	return merge(base, snap), nil
}

func invalid(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fail(ErrInvalid, "%s", oneLine(err))
	}
	return nil
}

func validateTier(in *TierInfo) error {
	var errs []error
	if err := validName(in.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	errs = append(errs, validateModels(in.Models)...)
	errs = append(errs, in.Limits.Validate("limits"))
	errs = append(errs, validateQuota(in.Quota)...)
	return invalid(errs)
}

func tierInfoOf(rec *TierRecord) TierInfo {
	t := mergedTier{cfg: rec.config(), src: SourceRuntime}
	return t.info()
}

// Tiers returns every tier, the config file's first.
func (s *Store) Tiers(ctx context.Context, base Base) ([]TierInfo, error) {
	m, err := s.view(ctx, base)
	if err != nil {
		return nil, err
	}
	return m.tierInfos(), nil
}

// Tier returns the tier named name.
func (s *Store) Tier(ctx context.Context, base Base, name string) (TierInfo, error) {
	m, err := s.view(ctx, base)
	if err != nil {
		return TierInfo{}, err
	}
	i, ok := m.tierAt[name]
	if !ok {
		return TierInfo{}, fail(ErrNotFound, "no tier named %q", name)
	}
	return m.tiers[i].info(), nil
}

// CreateTier creates a runtime tier.
func (s *Store) CreateTier(ctx context.Context, base Base, in TierInfo) (TierInfo, error) {
	if err := validateTier(&in); err != nil {
		return TierInfo{}, err
	}
	var out TierInfo
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		if _, ok := m.tierAt[in.Name]; ok {
			return nil, fail(ErrExists, "tier %q already exists", in.Name)
		}
		rec := TierRecord{Name: in.Name, Models: in.Models, Limits: in.Limits, Quota: in.Quota, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
		out = tierInfoOf(&rec)
		o, err := setOp(hTiers, rec.Name, rec)
		return []op{o}, err
	})
	return out, err
}

// ReplaceTier replaces a runtime tier whole.
func (s *Store) ReplaceTier(ctx context.Context, base Base, name string, in TierInfo) (TierInfo, error) {
	if in.Name == "" {
		in.Name = name
	}
	if in.Name != name {
		return TierInfo{}, fail(ErrInvalid, "name: %q does not match the tier %q of the path; tiers cannot be renamed", in.Name, name)
	}
	if err := validateTier(&in); err != nil {
		return TierInfo{}, err
	}
	var out TierInfo
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		t, err := m.runtimeTier(name)
		if err != nil {
			return nil, err
		}
		rec := TierRecord{Name: name, Models: in.Models, Limits: in.Limits, Quota: in.Quota, CreatedAt: t.rec.CreatedAt, UpdatedAt: now.UTC()}
		out = tierInfoOf(&rec)
		o, err := setOp(hTiers, name, rec)
		return []op{o}, err
	})
	return out, err
}

// DeleteTier deletes a runtime tier no consumer uses.
func (s *Store) DeleteTier(ctx context.Context, base Base, name string) error {
	return s.update(ctx, base, func(m *merged, _ time.Time) ([]op, error) {
		if _, err := m.runtimeTier(name); err != nil {
			return nil, err
		}
		if users := m.consumerUsers(name); len(users) > 0 {
			return nil, fail(ErrInUse, "tier %q is the tier of %d consumer(s): %s", name, len(users), listNames(users))
		}
		return []op{delOp(hTiers, name)}, nil
	})
}

func (m *merged) runtimeTier(name string) (*mergedTier, error) {
	i, ok := m.tierAt[name]
	switch {
	case !ok:
		return nil, fail(ErrNotFound, "no tier named %q", name)
	case m.tiers[i].src == SourceConfig:
		return nil, fail(ErrConfigOwned, "tier %q is declared in the config file; change it there", name)
	}
	return &m.tiers[i], nil
}

func listNames(names []string) string {
	const show = 10
	if len(names) > show {
		return strings.Join(names[:show], ", ") + fmt.Sprintf(" and %d more", len(names)-show)
	}
	return strings.Join(names, ", ")
}

// ConsumerPatch is a partial change of a consumer: nil fields stay.
type ConsumerPatch struct {
	Tier   *string
	Models *[]string
	Limits *limiter.Limits
	// Quota replaces the quota when QuotaSet; nil then removes it.
	Quota    *Quota
	QuotaSet bool
	Disabled *bool
}

func (p *ConsumerPatch) onlyDisabled() bool {
	return p.Tier == nil && p.Models == nil && p.Limits == nil && !p.QuotaSet
}

func validateConsumer(in *ConsumerInfo, tiers map[string]int) error {
	var errs []error
	if err := validName(in.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if _, ok := tiers[in.Tier]; in.Tier != "" && !ok {
		errs = append(errs, fmt.Errorf("tier: no tier named %q", in.Tier))
	}
	errs = append(errs, validateModels(in.Models)...)
	errs = append(errs, in.Limits.Validate("limits"))
	errs = append(errs, validateQuota(in.Quota)...)
	return invalid(errs)
}

// Consumers returns every consumer, the config file's first.
func (s *Store) Consumers(ctx context.Context, base Base) ([]ConsumerInfo, error) {
	m, err := s.view(ctx, base)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	out := make([]ConsumerInfo, len(m.consumers))
	for i := range m.consumers {
		out[i] = m.consumerInfo(&m.consumers[i], now)
	}
	return out, nil
}

// Consumer returns the consumer named name.
func (s *Store) Consumer(ctx context.Context, base Base, name string) (ConsumerInfo, error) {
	m, err := s.view(ctx, base)
	if err != nil {
		return ConsumerInfo{}, err
	}
	c, err := m.consumer(name)
	if err != nil {
		return ConsumerInfo{}, err
	}
	return m.consumerInfo(c, s.clock()), nil
}

func (m *merged) consumer(name string) (*mergedConsumer, error) {
	i, ok := m.consumerAt[name]
	if !ok {
		return nil, fail(ErrNotFound, "no consumer named %q", name)
	}
	return &m.consumers[i], nil
}

// CreateConsumer creates a runtime consumer. Keys left behind by an
// earlier consumer of the same name are deleted.
func (s *Store) CreateConsumer(ctx context.Context, base Base, in ConsumerInfo) (ConsumerInfo, error) {
	var out ConsumerInfo
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		if err := validateConsumer(&in, m.tierAt); err != nil {
			return nil, err
		}
		if _, ok := m.consumerAt[in.Name]; ok {
			return nil, fail(ErrExists, "consumer %q already exists", in.Name)
		}
		uid, err := newID("")
		if err != nil {
			return nil, err
		}
		rec := ConsumerRecord{Name: in.Name, UID: uid, Tier: in.Tier, Models: in.Models, Limits: in.Limits, Quota: in.Quota,
			Disabled: in.Disabled, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
		out = m.consumerInfo(&mergedConsumer{cfg: rec.config(), src: SourceRuntime, rec: &rec}, now)
		o, err := setOp(hConsumers, rec.Name, rec)
		ops := []op{o, delOp(hState, rec.Name)}
		return append(ops, m.staleKeys(in.Name)...), err
	})
	return out, err
}

// staleKeys deletes the stored keys of name (the merged view holds the
// ones still belonging to it; the store may hold older ones).
func (m *merged) staleKeys(name string) []op {
	var ops []op
	for _, id := range m.allKeyIDs[name] {
		ops = append(ops, delOp(hKeys, id))
	}
	return ops
}

// UpdateConsumer changes the fields p sets. A config consumer can only be
// disabled and enabled.
func (s *Store) UpdateConsumer(ctx context.Context, base Base, name string, p ConsumerPatch) (ConsumerInfo, error) {
	var out ConsumerInfo
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		c, err := m.consumer(name)
		if err != nil {
			return nil, err
		}
		if c.src == SourceConfig {
			if !p.onlyDisabled() {
				return nil, fail(ErrConfigOwned, "consumer %q is declared in the config file; only disabled can be changed through the API", name)
			}
			cur := *c
			if p.Disabled == nil {
				out = m.consumerInfo(&cur, now)
				return nil, nil
			}
			cur.cfg.Disabled = *p.Disabled
			out = m.consumerInfo(&cur, now)
			o, err := setOp(hState, name, StateRecord{Disabled: *p.Disabled, UpdatedAt: now.UTC()})
			return []op{o}, err
		}
		rec := *c.rec
		if p.Tier != nil {
			rec.Tier = *p.Tier
		}
		if p.Models != nil {
			rec.Models = *p.Models
		}
		if p.Limits != nil {
			rec.Limits = *p.Limits
		}
		if p.QuotaSet {
			rec.Quota = p.Quota
		}
		if p.Disabled != nil {
			rec.Disabled = *p.Disabled
		}
		rec.UpdatedAt = now.UTC()
		in := ConsumerInfo{Name: rec.Name, Tier: rec.Tier, Models: rec.Models, Limits: rec.Limits, Quota: rec.Quota}
		if err := validateConsumer(&in, m.tierAt); err != nil {
			return nil, err
		}
		out = m.consumerInfo(&mergedConsumer{cfg: rec.config(), src: SourceRuntime, rec: &rec}, now)
		o, err := setOp(hConsumers, name, rec)
		return []op{o}, err
	})
	return out, err
}

// DeleteConsumer deletes a runtime consumer and its keys.
func (s *Store) DeleteConsumer(ctx context.Context, base Base, name string) error {
	return s.update(ctx, base, func(m *merged, _ time.Time) ([]op, error) {
		c, err := m.consumer(name)
		if err != nil {
			return nil, err
		}
		if c.src == SourceConfig {
			return nil, fail(ErrConfigOwned, "consumer %q is declared in the config file; remove it there", name)
		}
		ops := []op{delOp(hConsumers, name), delOp(hState, name)}
		return append(ops, m.staleKeys(name)...), nil
	})
}
