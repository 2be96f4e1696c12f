package accounts

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// keySize is the AES-256 key size.
const keySize = 32

// sealPrefix marks the format of a sealed value, so that a later format
// can be told apart.
const sealPrefix = "v1."

// parseKey decodes a 32-byte key written as hex or base64 (standard or URL
// alphabet, padded or not).
func parseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*keySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != keySize {
				return nil, fmt.Errorf("must hold %d bytes, base64 or hex encoded; it holds %d", keySize, len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("must be %d bytes encoded as 64 hex digits or base64 (e.g. `openssl rand -base64 32`)", keySize)
}

// sealer encrypts provider keys with AES-256-GCM.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("encryption key must be %d bytes, got %d", keySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cannot use the encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cannot use the encryption key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// ephemeralSealer seals with a random key that lives as long as the
// process: the memory store's, whose records do not outlive it either.
func ephemeralSealer() (*sealer, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("cannot make an encryption key: %w", err)
	}
	return newSealer(key)
}

// aad binds a sealed value to the provider and key it was stored for, so
// that it cannot be swapped into another record.
func aad(provider, keyID string) []byte {
	return []byte("tollgate accounts provider key\x00" + provider + "\x00" + keyID)
}

func (s *sealer) seal(provider, keyID, plain string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("cannot make a nonce: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), aad(provider, keyID))
	return sealPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

func (s *sealer) open(provider, keyID, sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", errors.New("not a sealed value")
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", errors.New("sealed value is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], aad(provider, keyID))
	if err != nil {
		return "", errors.New("the encryption key is not the one it was sealed with, or the value was altered")
	}
	return string(plain), nil
}
