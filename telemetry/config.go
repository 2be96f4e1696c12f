package telemetry

import (
	"errors"
	"fmt"
	"path"
	"slices"
)

// Config is the binary's `telemetry:` section. OTLP export is not set here:
// it is on when the standard OTEL_EXPORTER_OTLP_* environment variables name
// an endpoint, so that the same config file serves clusters with and without
// a collector.
type Config struct {
	// Models lists the model names (path.Match globs, e.g. "gpt-4o*") kept
	// as metric label values; every other model is counted as "other". When
	// empty, the first MaxModels distinct names seen are kept. Spans, logs
	// and usage records always carry the real name.
	Models []string `yaml:"models"`
	// MaxModels caps how many distinct model label values are kept even
	// when globs match more; later ones count as "other". Default 100.
	MaxModels int `yaml:"max_models"`
	// MaxConsumers caps how many distinct consumer label values are kept;
	// later ones count as "other". Default 1000.
	MaxConsumers int `yaml:"max_consumers"`
	// ServiceName is the OpenTelemetry service.name; default "tollgate".
	// OTEL_SERVICE_NAME, when set, wins.
	ServiceName string `yaml:"service_name"`
	// RequestLog is the level of the one log line written per request:
	// debug, info (default) or off.
	RequestLog string `yaml:"request_log"`
	// Buckets overrides histogram bucket boundaries.
	Buckets Buckets `yaml:"buckets"`
}

// Buckets are histogram bucket boundaries, ascending. An empty list keeps
// the default: the OpenTelemetry GenAI semantic conventions' advice for the
// gen_ai.* histograms, and boundaries fit for each of tollgate's own.
type Buckets struct {
	// Tokens is for gen_ai.client.token.usage ({token}).
	Tokens []float64 `yaml:"tokens"`
	// RequestDuration is for gen_ai.server.request.duration (seconds).
	RequestDuration []float64 `yaml:"request_duration"`
	// TimeToFirstToken is for gen_ai.server.time_to_first_token (seconds).
	TimeToFirstToken []float64 `yaml:"time_to_first_token"`
	// TimePerOutputToken is for gen_ai.server.time_per_output_token (seconds).
	TimePerOutputToken []float64 `yaml:"time_per_output_token"`
	// Phase is for tollgate.extproc.phase.duration (seconds).
	Phase []float64 `yaml:"phase"`
	// Store is for tollgate.store.duration (seconds).
	Store []float64 `yaml:"store"`
}

// Defaults. The gen_ai.* ones are the semantic conventions' advice. Each of
// tollgate's own reaches past its alert threshold (README.md, "Alerts"):
// a quantile above the last finite boundary reads as that boundary, so an
// alert above it could never fire.
var (
	defaultTokenBuckets     = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	defaultDurationBuckets  = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	defaultTTFTBuckets      = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	defaultPerTokenBuckets  = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	defaultPhaseBuckets     = []float64{0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
	defaultStoreBuckets     = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
	defaultMaxModels        = 100
	defaultMaxConsumers     = 1000
	defaultServiceName      = "tollgate"
	defaultRequestLogLevel  = "info"
	requestLogLevels        = []string{"debug", "info", "off"}
	maxLabelCapConfigurable = 100000
)

// Validate checks c, naming the field path of each problem, and returns
// every problem at once.
func (c *Config) Validate(p string) error {
	var errs []error
	for i, m := range c.Models {
		if m == "" {
			errs = append(errs, fmt.Errorf("%s.models[%d]: must not be empty", p, i))
			continue
		}
		if _, err := path.Match(m, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s.models[%d]: %q is not a valid glob: %w", p, i, m, err))
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max_models", c.MaxModels}, {"max_consumers", c.MaxConsumers}} {
		if f.v < 0 || f.v > maxLabelCapConfigurable {
			errs = append(errs, fmt.Errorf("%s.%s: must be between 0 (default) and %d", p, f.name, maxLabelCapConfigurable))
		}
	}
	if c.RequestLog != "" && !slices.Contains(requestLogLevels, c.RequestLog) {
		errs = append(errs, fmt.Errorf("%s.request_log: %q is not debug, info or off", p, c.RequestLog))
	}
	for _, b := range c.Buckets.lists() {
		if err := checkBuckets(b.v); err != nil {
			errs = append(errs, fmt.Errorf("%s.buckets.%s: %w", p, b.name, err))
		}
	}
	return errors.Join(errs...)
}

type namedBuckets struct {
	name string
	v    []float64
}

func (b *Buckets) lists() []namedBuckets {
	return []namedBuckets{
		{"tokens", b.Tokens},
		{"request_duration", b.RequestDuration},
		{"time_to_first_token", b.TimeToFirstToken},
		{"time_per_output_token", b.TimePerOutputToken},
		{"phase", b.Phase},
		{"store", b.Store},
	}
}

func checkBuckets(b []float64) error {
	for i := range b {
		if b[i] < 0 {
			return fmt.Errorf("boundary %v must be >= 0", b[i])
		}
		if i > 0 && b[i] <= b[i-1] {
			return fmt.Errorf("boundaries must be strictly ascending (%v after %v)", b[i], b[i-1])
		}
	}
	return nil
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	if c.MaxModels == 0 {
		c.MaxModels = defaultMaxModels
	}
	if c.MaxConsumers == 0 {
		c.MaxConsumers = defaultMaxConsumers
	}
	if c.ServiceName == "" {
		c.ServiceName = defaultServiceName
	}
	if c.RequestLog == "" {
		c.RequestLog = defaultRequestLogLevel
	}
	b := &c.Buckets
	for _, x := range []struct {
		p   *[]float64
		def []float64
	}{
		{&b.Tokens, defaultTokenBuckets},
		{&b.RequestDuration, defaultDurationBuckets},
		{&b.TimeToFirstToken, defaultTTFTBuckets},
		{&b.TimePerOutputToken, defaultPerTokenBuckets},
		{&b.Phase, defaultPhaseBuckets},
		{&b.Store, defaultStoreBuckets},
	} {
		if len(*x.p) == 0 {
			*x.p = x.def
		}
	}
	return c
}
