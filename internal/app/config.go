package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/accounts"
	"github.com/tollgate-ai/tollgate/admin"
	"github.com/tollgate-ai/tollgate/alerts"
	"github.com/tollgate-ai/tollgate/breaker"
	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/processor"
	"github.com/tollgate-ai/tollgate/quota"
	"github.com/tollgate-ai/tollgate/telemetry"
)

// Config is tollgate's config file. Each section belongs to the package
// that uses it and is validated by that package.
type Config struct {
	Server     ServerConfig               `yaml:"server"`
	Log        LogConfig                  `yaml:"log"`
	Store      ledger.Config              `yaml:"store"`
	Tiers      []consumer.TierConfig      `yaml:"tiers"`
	Consumers  []consumer.Config          `yaml:"consumers"`
	Admin      admin.Config               `yaml:"admin"`
	Providers  []processor.ProviderConfig `yaml:"providers"`
	Processing processor.Config           `yaml:"processing"`
	Limits     limiter.Config             `yaml:",inline"`
	Quota      quota.Config               `yaml:"quota"`
	Telemetry  telemetry.Config           `yaml:"telemetry"`
	Breaker    breaker.Config             `yaml:"breaker"`
	Alerts     alerts.Config              `yaml:"alerts"`
	Accounts   accounts.Config            `yaml:"accounts"`
}

// ServerConfig is where tollgate listens and how it stops.
type ServerConfig struct {
	// GRPCAddr serves ext_proc and grpc.health.v1.Health; default :50051.
	GRPCAddr string `yaml:"grpc_addr"`
	// AdminAddr serves /healthz, /readyz, /metrics and the admin API;
	// default :8081.
	AdminAddr string `yaml:"admin_addr"`
	// DrainTimeout bounds how long a stop waits for in-flight streams to
	// finish (and settle); default 15m, the route timeout of the shipped
	// envoy.yaml, so no stream Envoy still serves is cut.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// GCPercent is the garbage collector's target (Go's GOGC): the heap may
	// grow this many percent past what was live at the last collection
	// before the next. Default 50, not Go's 100: a replica holding 10,000
	// open streams keeps about a KiB less per stream (within 16 KiB), for no
	// measurable CPU with a few busy streams but about 16 % more CPU per
	// request with 2,000 busy ones; 100 (Go's default) when that matters
	// more (BENCHMARKS.md compares 50, 75 and 100). The GOGC environment
	// variable, when set, wins.
	GCPercent int `yaml:"gc_percent"`
}

// LogConfig selects the log format and level.
type LogConfig struct {
	// Format is text (default) or json.
	Format string `yaml:"format"`
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
}

func (c *Config) defaults() {
	if c.Server.GRPCAddr == "" {
		c.Server.GRPCAddr = ":50051"
	}
	if c.Server.AdminAddr == "" {
		c.Server.AdminAddr = ":8081"
	}
	if c.Server.DrainTimeout == 0 {
		c.Server.DrainTimeout = 15 * time.Minute
	}
	if c.Server.GCPercent == 0 {
		c.Server.GCPercent = 50
	}
}

// Validate checks the whole config and returns every problem at once.
func (c *Config) Validate(getenv func(string) string) error {
	var errs []error
	switch c.Log.Format {
	case "", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	if c.Server.DrainTimeout < 0 {
		errs = append(errs, errors.New("server.drain_timeout: must be >= 0"))
	}
	if c.Server.GCPercent < 0 {
		errs = append(errs, errors.New("server.gc_percent: must be >= 0"))
	}
	errs = append(errs,
		c.Store.Validate("store"),
		consumer.Validate("consumers", c.Consumers, c.Tiers, getenv),
		c.Admin.Validate("admin", getenv),
		processor.ValidateProviders("providers", c.Providers, getenv),
		c.Processing.Validate("processing"),
		c.Limits.Validate(""),
		c.Quota.Validate("quota"),
		c.Telemetry.Validate("telemetry"),
		c.Breaker.Validate("breaker"),
		c.Alerts.Validate("alerts"),
		c.Accounts.Validate("accounts", getenv),
	)
	for name := range c.Breaker.Providers {
		if !hasProvider(c.Providers, name) {
			errs = append(errs, fmt.Errorf("breaker.providers.%s: no such provider", name))
		}
	}
	if a := c.Quota.AdminConsumer; a != "" && !hasConsumer(c.Consumers, a) {
		errs = append(errs, fmt.Errorf("quota.admin_consumer: %q is not one of the consumers", a))
	}
	for name := range c.Quota.Consumers {
		if !hasConsumer(c.Consumers, name) {
			errs = append(errs, fmt.Errorf("quota.consumers.%s: no such consumer", name))
		}
	}
	for i, con := range c.Consumers {
		if _, both := c.Quota.Consumers[con.Name]; both && con.Quota != nil {
			errs = append(errs, fmt.Errorf("consumers[%d].quota: %s also has an entry in quota.consumers; set it in one place", i, con.Name))
		}
	}
	return errors.Join(errs...)
}

func hasProvider(ps []processor.ProviderConfig, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

func hasConsumer(cs []consumer.Config, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

// LoadConfig reads and validates the config file at path.
func LoadConfig(path string, getenv func(string) string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", err)
	}
	defer f.Close()
	return ParseConfig(f, getenv)
}

// ParseConfig reads and validates a config. Unknown fields are errors, so
// that a misspelled setting does not silently fall back to its default.
func ParseConfig(r io.Reader, getenv func(string) string) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", err)
	}
	// Sections decode over their defaults, so that a field left out keeps
	// its default while one written empty stays empty.
	c := Config{Store: ledger.DefaultConfig()}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config is not valid YAML for tollgate: %w", err)
	}
	if err := c.Validate(getenv); err != nil {
		return nil, err
	}
	c.defaults()
	return &c, nil
}
