package accounts

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// DefaultPollInterval is how often a replica checks the version when no
// notification came.
const DefaultPollInterval = 500 * time.Millisecond

// DefaultChannel is the Pub/Sub channel of change notifications, after the
// store's key prefix.
const DefaultChannel = "accounts"

// Config is the accounts section (`accounts:`) of tollgate's config.
type Config struct {
	// EncryptionKeyEnv names the environment variable holding the key that
	// seals provider API keys at rest: 32 bytes, base64 or hex encoded.
	// Without it, provider keys cannot be stored in Redis.
	EncryptionKeyEnv string `yaml:"encryption_key_env"`
	// PollInterval is how often each replica checks for changes it was not
	// notified of; default 500ms.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Channel is the Pub/Sub channel changes are announced on; default
	// "<store key prefix>accounts".
	Channel string `yaml:"channel"`
}

// Validate checks c, naming the field path of each problem. getenv reads
// the encryption key (default os.Getenv), so that a bad key stops the
// config from loading rather than the first provider change.
func (c Config) Validate(path string, getenv func(string) string) error {
	var errs []error
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("%s.poll_interval: must be >= 0, got %v", path, c.PollInterval))
	} else if c.PollInterval > 0 && c.PollInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("%s.poll_interval: must be at least 10ms, got %v", path, c.PollInterval))
	}
	if strings.ContainsFunc(c.Channel, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		errs = append(errs, fmt.Errorf("%s.channel: must not contain spaces or control characters", path))
	}
	if c.EncryptionKeyEnv != "" {
		if _, err := c.encryptionKey(getenv); err != nil {
			errs = append(errs, fmt.Errorf("%s.encryption_key_env: %w", path, err))
		}
	}
	return errors.Join(errs...)
}

// encryptionKey reads and decodes the sealing key; nil when none is
// configured.
func (c Config) encryptionKey(getenv func(string) string) ([]byte, error) {
	if c.EncryptionKeyEnv == "" {
		return nil, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(c.EncryptionKeyEnv)
	if v == "" {
		return nil, fmt.Errorf("environment variable %s is empty or unset", c.EncryptionKeyEnv)
	}
	key, err := parseKey(v)
	if err != nil {
		return nil, fmt.Errorf("environment variable %s: %w", c.EncryptionKeyEnv, err)
	}
	return key, nil
}

func (c Config) withDefaults(keyPrefix string) Config {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Channel == "" {
		c.Channel = keyPrefix + DefaultChannel
	}
	return c
}
