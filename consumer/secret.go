package consumer

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// HashPrefix marks a key written in config as its SHA-256 hash.
const HashPrefix = "sha256:"

// EnvPrefix marks a secret written in config as the name of an environment
// variable that holds it.
const EnvPrefix = "env:"

// Hash is the SHA-256 of an API key.
type Hash [sha256.Size]byte

// HashKey returns the hash of a plain key.
func HashKey(key string) Hash { return sha256.Sum256([]byte(key)) }

// String returns the "sha256:<hex>" form used in config.
func (h Hash) String() string { return HashPrefix + hex.EncodeToString(h[:]) }

// ParseSecret turns a secret as written in config into its hash: a
// "sha256:<hex>" hash is decoded, "env:NAME" is read from the environment
// (through getenv) and hashed, anything else is a plain key and is hashed.
// The plain key is not kept.
func ParseSecret(s string, getenv func(string) string) (Hash, error) {
	var h Hash
	switch {
	case strings.HasPrefix(s, HashPrefix):
		b, err := hex.DecodeString(strings.TrimPrefix(s, HashPrefix))
		if err != nil || len(b) != sha256.Size {
			return h, errors.New("sha256 key must be 64 hex digits")
		}
		copy(h[:], b)
		return h, nil
	case strings.HasPrefix(s, EnvPrefix):
		name := strings.TrimPrefix(s, EnvPrefix)
		if getenv == nil {
			getenv = os.Getenv
		}
		v := getenv(name)
		if v == "" {
			return h, fmt.Errorf("environment variable %s is empty or unset", name)
		}
		return HashKey(v), nil
	case s == "":
		return h, errors.New("key is empty")
	default:
		return HashKey(s), nil
	}
}

// Equal compares two hashes in constant time.
func (h Hash) Equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// MarshalText writes the "sha256:<hex>" form.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads the "sha256:<hex>" form.
func (h *Hash) UnmarshalText(b []byte) error {
	s := string(b)
	if !strings.HasPrefix(s, HashPrefix) {
		return errors.New("hash must be sha256:<hex>")
	}
	v, err := ParseSecret(s, nil)
	if err != nil {
		return err
	}
	*h = v
	return nil
}
