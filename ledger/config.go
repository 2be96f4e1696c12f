package ledger

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Store types.
const (
	TypeMemory = "memory"
	TypeRedis  = "redis"
)

// What to do when Redis fails.
const (
	// FailClosed makes Reserve return the error, so the request is refused
	// (503) while Redis is down.
	FailClosed = "fail_closed"
	// FailOpen makes Reserve fall back to a per-replica in-memory store, so
	// requests go on under limits each replica enforces alone.
	FailOpen = "fail_open"
)

// Config is the ledger section (`store:`) of tollgate's configuration.
type Config struct {
	// Type is "memory" (the default: counters live in this process only) or
	// "redis" (shared by every replica).
	Type string `yaml:"type"`
	// Redis is the Redis connection, used when Type is "redis".
	Redis RedisConfig `yaml:"redis"`
	// OnError is "fail_closed" (default) or "fail_open"; see [FailClosed]
	// and [FailOpen]. Settlements are spooled and replayed either way.
	OnError string `yaml:"on_error"`
	// SpoolDir, when set, keeps unsent settlements in an fsync'd file there,
	// so that they survive a restart.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMax bounds the number of unsent settlements held; 100000 when 0.
	SpoolMax int `yaml:"spool_max"`
	// UsageTTL is how long daily usage totals are kept after their last
	// update; 90 days when 0.
	UsageTTL time.Duration `yaml:"usage_ttl"`
	// UsageEvents is the Redis Stream of usage records for billing
	// pipelines.
	UsageEvents EventsConfig `yaml:"usage_events"`
}

// EventsConfig is the Redis Stream every settlement appends its usage
// record to (XADD … MAXLEN ~), once per request id: a replayed settlement
// does not append it again. On a Redis Cluster there is one stream per
// consumer, "<stream>:{c:<consumer>}", since a script touches one slot.
type EventsConfig struct {
	// Stream is the stream's key (after the key prefix); empty disables
	// the events. Default "usage-events".
	Stream string `yaml:"stream"`
	// MaxLen trims the stream to about this many records; default 1000000.
	MaxLen int64 `yaml:"maxlen"`
}

// RedisConfig selects and tunes the Redis deployment: one address for a
// single node, several for a Cluster, or Sentinel addresses with
// MasterName.
type RedisConfig struct {
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	// Password is the password itself; prefer PasswordEnv, the name of an
	// environment variable holding it.
	Password    string `yaml:"password"`
	PasswordEnv string `yaml:"password_env"`
	DB          int    `yaml:"db"`
	TLS         bool   `yaml:"tls"`
	// KeyPrefix is prepended to every key, outside its hash tag.
	KeyPrefix   string        `yaml:"key_prefix"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	ReadTimeout time.Duration `yaml:"read_timeout"`
}

// Defaults applied by [DefaultConfig] and, for fields left zero, by [Open].
const (
	DefaultSpoolMax    = 100000
	DefaultEventStream = "usage-events"
	DefaultEventMaxLen = 1000000
	DefaultKeyPrefix   = "tollgate:"
	DefaultDialTimeout = time.Second
	DefaultReadTimeout = 500 * time.Millisecond
)

// DefaultConfig returns the configuration used when the file says nothing:
// the in-memory store, failing closed.
func DefaultConfig() Config {
	return Config{
		Type:     TypeMemory,
		OnError:  FailClosed,
		SpoolMax: DefaultSpoolMax,
		UsageTTL: defaultUsageTTL,
		UsageEvents: EventsConfig{
			Stream: DefaultEventStream,
			MaxLen: DefaultEventMaxLen,
		},
		Redis: RedisConfig{
			Addrs:       []string{"127.0.0.1:6379"},
			KeyPrefix:   DefaultKeyPrefix,
			DialTimeout: DefaultDialTimeout,
			ReadTimeout: DefaultReadTimeout,
		},
	}
}

// withDefaults fills the zero fields that have a default.
func (c Config) withDefaults() Config {
	if c.Type == "" {
		c.Type = TypeMemory
	}
	if c.OnError == "" {
		c.OnError = FailClosed
	}
	if c.SpoolMax == 0 {
		c.SpoolMax = DefaultSpoolMax
	}
	if c.UsageTTL == 0 {
		c.UsageTTL = defaultUsageTTL
	}
	if c.UsageEvents.Stream != "" && c.UsageEvents.MaxLen == 0 {
		c.UsageEvents.MaxLen = DefaultEventMaxLen
	}
	if c.Redis.DialTimeout == 0 {
		c.Redis.DialTimeout = DefaultDialTimeout
	}
	if c.Redis.ReadTimeout == 0 {
		c.Redis.ReadTimeout = DefaultReadTimeout
	}
	return c
}

// Validate returns every problem of c at once, each naming its field under
// path (e.g. "store.redis.addrs[1]").
func (c Config) Validate(path string) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	switch c.Type {
	case "", TypeMemory, TypeRedis:
	default:
		bad("type", "must be %q or %q, got %q", TypeMemory, TypeRedis, c.Type)
	}
	switch c.OnError {
	case "", FailClosed, FailOpen:
	default:
		bad("on_error", "must be %q or %q, got %q", FailClosed, FailOpen, c.OnError)
	}
	if c.SpoolMax < 0 {
		bad("spool_max", "must be >= 0, got %d", c.SpoolMax)
	}
	if c.UsageTTL < 0 {
		bad("usage_ttl", "must be >= 0, got %v", c.UsageTTL)
	} else if c.UsageTTL > 0 && c.UsageTTL < 24*time.Hour {
		bad("usage_ttl", "must be at least 24h so a day's totals outlive the day, got %v", c.UsageTTL)
	}
	if c.UsageEvents.MaxLen < 0 {
		bad("usage_events.maxlen", "must be >= 0, got %d", c.UsageEvents.MaxLen)
	}
	if strings.ContainsAny(c.UsageEvents.Stream, "{}") {
		bad("usage_events.stream", "must not contain braces (Redis hash tags), got %q", c.UsageEvents.Stream)
	}
	if c.Type == TypeRedis {
		r := c.Redis
		if len(r.Addrs) == 0 {
			bad("redis.addrs", "must list at least one host:port")
		}
		for i, a := range r.Addrs {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				bad(fmt.Sprintf("redis.addrs[%d]", i), "must be host:port, got %q", a)
			}
		}
		if r.Password != "" && r.PasswordEnv != "" {
			bad("redis.password", "set either password or password_env, not both")
		}
		if r.DB < 0 {
			bad("redis.db", "must be >= 0, got %d", r.DB)
		}
		if r.DB != 0 && len(r.Addrs) > 1 && r.MasterName == "" {
			bad("redis.db", "must be 0 with Redis Cluster (several addrs), got %d", r.DB)
		}
		if strings.ContainsAny(r.KeyPrefix, "{}") {
			bad("redis.key_prefix", "must not contain '{' or '}' (it would replace the keys' hash tags), got %q", r.KeyPrefix)
		}
		if r.DialTimeout < 0 {
			bad("redis.dial_timeout", "must be >= 0, got %v", r.DialTimeout)
		}
		if r.ReadTimeout < 0 {
			bad("redis.read_timeout", "must be >= 0, got %v", r.ReadTimeout)
		}
	}
	return errors.Join(errs...)
}
