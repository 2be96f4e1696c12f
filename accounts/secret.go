package accounts

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
)

// KeyPrefix starts every consumer key tollgate issues.
const KeyPrefix = "sk-tg-"

// keyRandomChars is the number of random base62 characters of an issued
// key: about 238 bits.
const keyRandomChars = 40

// keyPrefixLen is how much of an issued key is kept to recognise it
// ("sk-tg-" and four random characters).
const keyPrefixLen = 10

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns n characters drawn uniformly from crypto/rand.
func randomBase62(n int) (string, error) {
	var sb strings.Builder
	sb.Grow(n)
	buf := make([]byte, n+n/4+8)
	for sb.Len() < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("cannot read random bytes: %w", err)
		}
		for _, b := range buf {
			// 248 = 4×62: rejecting larger bytes keeps every character
			// equally likely.
			if b < 248 && sb.Len() < n {
				sb.WriteByte(base62[b%62])
			}
		}
	}
	return sb.String(), nil
}

// newKey returns a fresh consumer key.
func newKey() (Secret, error) {
	s, err := randomBase62(keyRandomChars)
	if err != nil {
		return "", err
	}
	return Secret(KeyPrefix + s), nil
}

func newID(prefix string) (string, error) {
	s, err := randomBase62(16)
	if err != nil {
		return "", err
	}
	return prefix + s, nil
}

// hint shows enough of a provider key to recognise it: its first three
// and last four characters, or less for short keys.
func hint(key string) string {
	switch {
	case len(key) >= 20:
		return key[:3] + "…" + key[len(key)-4:]
	case len(key) >= 12:
		return "…" + key[len(key)-4:]
	default:
		return "…"
	}
}

// Secret is a key in the clear. It prints, logs and marshals as
// "[redacted]"; Reveal returns the key itself.
type Secret string

const redacted = "[redacted]"

// Reveal returns the key.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer without revealing the key.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the key.
func (s Secret) GoString() string { return redacted }

// LogValue implements slog.LogValuer without revealing the key.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps the key out of JSON, YAML and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
