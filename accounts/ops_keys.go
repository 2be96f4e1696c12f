package accounts

import (
	"context"
	"time"

	"github.com/tollgate-ai/tollgate/consumer"
)

// KeyRequest asks for a consumer key. At most one of ExpiresInSeconds and
// ExpiresAt may be set; neither: the key does not expire.
type KeyRequest struct {
	Label            string     `json:"label"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds"`
	ExpiresAt        *time.Time `json:"expires_at"`
}

// RotateRequest asks for a key in place of another, which expires after
// GraceSeconds (default 0: at once). The new key takes the old one's label
// and lifetime unless the request sets them.
type RotateRequest struct {
	GraceSeconds     *int64     `json:"grace_seconds"`
	Label            *string    `json:"label"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds"`
	ExpiresAt        *time.Time `json:"expires_at"`
}

func expiry(now time.Time, in *int64, at *time.Time) (time.Time, error) {
	switch {
	case in != nil && at != nil:
		return time.Time{}, fail(ErrInvalid, "set expires_in_seconds or expires_at, not both")
	case in != nil:
		if *in <= 0 || *in > maxSeconds {
			return time.Time{}, fail(ErrInvalid, "expires_in_seconds: must be between 1 and %d", maxSeconds)
		}
		return now.Add(time.Duration(*in) * time.Second).UTC(), nil
	case at != nil:
		if !at.After(now) {
			return time.Time{}, fail(ErrInvalid, "expires_at: must be in the future")
		}
		return at.UTC(), nil
	}
	return time.Time{}, nil
}

// Keys returns the runtime keys of a consumer, oldest first, revoked and
// expired ones included.
func (s *Store) Keys(ctx context.Context, base Base, name string) ([]KeyInfo, error) {
	m, err := s.view(ctx, base)
	if err != nil {
		return nil, err
	}
	if _, err := m.consumer(name); err != nil {
		return nil, err
	}
	out := []KeyInfo{}
	for i := range m.keysOf[name] {
		out = append(out, keyInfo(&m.keysOf[name][i]))
	}
	return out, nil
}

// newKeyRecord issues a key to c.
func newKeyRecord(c *mergedConsumer, label string, now, expires time.Time) (KeyRecord, Secret, error) {
	secret, err := newKey()
	if err != nil {
		return KeyRecord{}, "", err
	}
	id, err := newID("key_")
	if err != nil {
		return KeyRecord{}, "", err
	}
	rec := KeyRecord{ID: id, Consumer: c.cfg.Name, ConsumerUID: c.uid(), Hash: consumer.HashKey(secret.Reveal()),
		Prefix: secret.Reveal()[:keyPrefixLen], Label: label, CreatedAt: now.UTC(), ExpiresAt: expires}
	return rec, secret, nil
}

// IssueKey issues a key to a consumer, config or runtime. The key itself
// is in the answer only; the store keeps its hash.
func (s *Store) IssueKey(ctx context.Context, base Base, name string, req KeyRequest) (IssuedKey, error) {
	if err := validateLabel(req.Label); err != nil {
		return IssuedKey{}, fail(ErrInvalid, "%v", err)
	}
	var out IssuedKey
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		c, err := m.consumer(name)
		if err != nil {
			return nil, err
		}
		expires, err := expiry(now, req.ExpiresInSeconds, req.ExpiresAt)
		if err != nil {
			return nil, err
		}
		rec, secret, err := newKeyRecord(c, req.Label, now, expires)
		if err != nil {
			return nil, err
		}
		out = IssuedKey{KeyInfo: keyInfo(&rec), Secret: secret}
		o, err := setOp(hKeys, rec.ID, rec)
		return []op{o}, err
	})
	return out, err
}

func (m *merged) key(name, id string) (*mergedConsumer, *KeyRecord, error) {
	c, err := m.consumer(name)
	if err != nil {
		return nil, nil, err
	}
	for i := range m.keysOf[name] {
		if k := &m.keysOf[name][i]; k.ID == id {
			return c, k, nil
		}
	}
	return nil, nil, fail(ErrNotFound, "consumer %q has no key %q", name, id)
}

// RevokeKey revokes a key: every replica refuses it once it sees the
// change. Revoking a revoked key changes nothing.
func (s *Store) RevokeKey(ctx context.Context, base Base, name, id string) error {
	return s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		_, k, err := m.key(name, id)
		if err != nil || !k.RevokedAt.IsZero() {
			return nil, err
		}
		rec := *k
		rec.RevokedAt = now.UTC()
		o, err := setOp(hKeys, rec.ID, rec)
		return []op{o}, err
	})
}

// RotateKey issues a key in place of a usable one, which then expires
// after the grace period.
func (s *Store) RotateKey(ctx context.Context, base Base, name, id string, req RotateRequest) (IssuedKey, error) {
	var grace int64
	if req.GraceSeconds != nil {
		grace = *req.GraceSeconds
	}
	if grace < 0 || grace > maxSeconds {
		return IssuedKey{}, fail(ErrInvalid, "grace_seconds: must be between 0 and %d", maxSeconds)
	}
	if req.Label != nil {
		if err := validateLabel(*req.Label); err != nil {
			return IssuedKey{}, fail(ErrInvalid, "%v", err)
		}
	}
	var out IssuedKey
	err := s.update(ctx, base, func(m *merged, now time.Time) ([]op, error) {
		c, old, err := m.key(name, id)
		if err != nil {
			return nil, err
		}
		if !old.Usable(now) {
			return nil, fail(ErrConflict, "key %q is revoked or expired; issue a new one", id)
		}
		expires, err := expiry(now, req.ExpiresInSeconds, req.ExpiresAt)
		if err != nil {
			return nil, err
		}
		if req.ExpiresInSeconds == nil && req.ExpiresAt == nil && !old.ExpiresAt.IsZero() {
			expires = now.Add(old.ExpiresAt.Sub(old.CreatedAt)).UTC()
		}
		label := old.Label
		if req.Label != nil {
			label = *req.Label
		}
		rec, secret, err := newKeyRecord(c, label, now, expires)
		if err != nil {
			return nil, err
		}
		retired := *old
		if end := now.Add(time.Duration(grace) * time.Second).UTC(); retired.ExpiresAt.IsZero() || end.Before(retired.ExpiresAt) {
			retired.ExpiresAt = end
		}
		out = IssuedKey{KeyInfo: keyInfo(&rec), Secret: secret}
		o1, err1 := setOp(hKeys, rec.ID, rec)
		o2, err2 := setOp(hKeys, retired.ID, retired)
		if err1 != nil {
			return nil, err1
		}
		return []op{o1, o2}, err2
	})
	return out, err
}
