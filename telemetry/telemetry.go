// Package telemetry is what tollgate tells its operators: Prometheus metrics
// on the admin port (and OTLP when a collector is configured), following
// the OpenTelemetry GenAI semantic conventions plus tollgate's own counters;
// one span per request; one structured log line per request; and the usage
// record each settlement publishes.
//
// Every label value is bounded: consumers not in the known list and models
// not in the configured list are counted as "other", so no client can grow
// the number of series. Nothing here reads headers; values that look like
// credentials are never reported.
//
// A nil *Telemetry is valid and does nothing, so callers need no checks.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// scopeName is the instrumentation scope of every metric and span.
const scopeName = "github.com/tollgate-ai/tollgate/telemetry"

// Options are what the binary gives telemetry besides its config.
type Options struct {
	// Consumers returns the names of the configured consumers; only these
	// are metric label values (up to max_consumers), every other name is
	// counted as "other". It is called at most once a second, so a reloaded
	// list is seen promptly. Without it, any name is kept up to the cap.
	Consumers func() []string
	// Secrets returns values that must never appear in a metric, a span or
	// a log, such as the provider keys tollgate injects. Values shorter than
	// 8 bytes are ignored. Called at most once a second.
	Secrets func() []string
	// IsKey reports whether a value is a consumer's API key (the consumer
	// registry's lookup). Values a client chose, such as the model, are
	// checked with it, so that a key pasted in place of a model name is
	// never reported.
	IsKey func(string) bool
	// Logger receives the per-request log line and exporter errors; default
	// discards.
	Logger *slog.Logger
	// Getenv reads OTEL_* variables; default os.Getenv. The OTLP exporters
	// themselves read their endpoint, headers and TLS settings from the
	// process environment.
	Getenv func(string) string
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// SpanExporter, when set, receives every span synchronously, besides
	// OTLP; for tests and for embedding tollgate.
	SpanExporter sdktrace.SpanExporter
}

// Telemetry records what happens to requests. Its methods are safe for
// concurrent use.
type Telemetry struct {
	cfg   Config
	log   *slog.Logger
	clock func() time.Time

	logLevel slog.Level
	logOn    bool

	meters   *sdkmetric.MeterProvider
	tracers  *sdktrace.TracerProvider // nil when no span goes anywhere
	tracer   trace.Tracer
	prop     propagation.TraceContext
	registry *prometheus.Registry
	handler  http.Handler

	ins instruments

	models, consumers, providers, operations, rules, storeOps *capped
	secrets                                                   *secrets

	genAIOpts    *optCache[genAIKey, genAIOpts]
	tokenOpts    *optCache[tokenKey, tokenOpts]
	requestOpts  *optCache[requestKey, opts]
	upstreamOpts *optCache[upstreamKey, opts]
	quotaOpts    *optCache[string, opts]
	storeOpts    *optCache[storeKey, opts]
	phaseOpts    [numPhases]opts

	spool atomic.Pointer[func() int]
}

// Caps on label values that come from tollgate's own config (providers,
// rules, store operations) or code (operations): generous, but a bug
// upstream still cannot make them unbounded.
const (
	maxProviders  = 64
	maxOperations = 32
	maxRules      = 512
	maxStoreOps   = 32
	// maxCombos bounds each cache of prepared attribute sets.
	maxCombos = 20000
)

// New builds the metric and trace pipelines. Metrics are always exposed
// for Prometheus (see MetricsHandler); they and spans are also exported by
// OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or the _METRICS_/_TRACES_ variant)
// is set, unless OTEL_METRICS_EXPORTER / OTEL_TRACES_EXPORTER is "none".
// OTEL_EXPORTER_OTLP_PROTOCOL (or the per-signal one) picks grpc or
// http/protobuf (the default).
func New(ctx context.Context, cfg Config, o Options) (*Telemetry, error) {
	if err := cfg.Validate("telemetry"); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	t := &Telemetry{cfg: cfg, log: o.Logger, clock: o.Clock}
	switch cfg.RequestLog {
	case "debug":
		t.logOn, t.logLevel = true, slog.LevelDebug
	case "info":
		t.logOn, t.logLevel = true, slog.LevelInfo
	}
	t.secrets = &secrets{list: o.Secrets, isKey: o.IsKey, clock: o.Clock}
	suspect := func(v string) bool { return t.secrets.scrub(v) == redacted }
	known := &knownSet{list: o.Consumers, clock: o.Clock}
	var allowModel func(string) bool // none configured: the first MaxModels seen
	if len(cfg.Models) > 0 {
		allowModel = globs(cfg.Models)
	}
	t.models = newCapped(cfg.MaxModels, allowModel)
	t.consumers = newCapped(cfg.MaxConsumers, known.contains)
	t.providers = newCapped(maxProviders, nil)
	t.operations = newCapped(maxOperations, nil)
	t.rules = newCapped(maxRules, nil)
	t.storeOps = newCapped(maxStoreOps, nil)
	for name, c := range map[string]*capped{
		"models": t.models, "consumers": t.consumers, "providers": t.providers,
		"operations": t.operations, "rules": t.rules, "store operations": t.storeOps,
	} {
		c.suspect = suspect
		c.onCap = func() {
			t.log.Warn("telemetry: too many distinct label values, counting the rest as other", "label", name, "max", c.max)
		}
	}

	res, err := newResource(ctx, cfg, o.Getenv)
	if err != nil {
		return nil, err
	}
	if err := t.startMetrics(ctx, res, o); err != nil {
		return nil, err
	}
	if err := t.startTraces(ctx, res, o); err != nil {
		_ = t.meters.Shutdown(context.WithoutCancel(ctx))
		return nil, err
	}
	t.prepareOpts()
	return t, nil
}

func newResource(ctx context.Context, cfg Config, getenv func(string) string) (*resource.Resource, error) {
	name := cfg.ServiceName
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		name = v
	}
	// OTEL_RESOURCE_ATTRIBUTES adds e.g. the pod and namespace names;
	// service.name stays as chosen above.
	extra, err := resourceAttributes(getenv("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(extra...),
		resource.WithAttributes(serviceName.String(name)))
	if err != nil {
		return nil, fmt.Errorf("cannot build the telemetry resource: %w", err)
	}
	return res, nil
}

func (t *Telemetry) startMetrics(ctx context.Context, res *resource.Resource, o Options) error {
	t.registry = prometheus.NewRegistry()
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pe, err := otelprom.New(otelprom.WithRegisterer(t.registry), otelprom.WithoutScopeInfo())
	if err != nil {
		return fmt.Errorf("cannot start the Prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(pe)}
	if otlpOn(o.Getenv, "METRICS") {
		exp, err := newOTLPMetricExporter(ctx, otlpProtocol(o.Getenv, "METRICS"))
		if err != nil {
			return err
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
		t.routeOTelErrors()
	}
	t.meters = sdkmetric.NewMeterProvider(mopts...)
	t.handler = promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
	})
	if err := t.ins.create(t.meters.Meter(scopeName), t.cfg.Buckets, t.observeSpool); err != nil {
		_ = t.meters.Shutdown(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

func (t *Telemetry) startTraces(ctx context.Context, res *resource.Resource, o Options) error {
	var topts []sdktrace.TracerProviderOption
	if o.SpanExporter != nil {
		topts = append(topts, sdktrace.WithSyncer(o.SpanExporter))
	}
	if otlpOn(o.Getenv, "TRACES") {
		exp, err := newOTLPSpanExporter(ctx, otlpProtocol(o.Getenv, "TRACES"))
		if err != nil {
			return err
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
		t.routeOTelErrors()
	}
	if len(topts) == 0 {
		// Spans would go nowhere: skip building them at all.
		t.tracer = noop.NewTracerProvider().Tracer(scopeName)
		return nil
	}
	t.tracers = sdktrace.NewTracerProvider(append(topts, sdktrace.WithResource(res))...)
	t.tracer = t.tracers.Tracer(scopeName)
	return nil
}

// routeOTelErrors sends the OTLP exporters' errors (a collector that is
// down, say) to tollgate's log. The handler is process-wide.
func (t *Telemetry) routeOTelErrors() {
	log := t.log
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry: cannot export", "err", err)
	}))
}

// MetricsHandler serves the Prometheus exposition (text, or OpenMetrics
// with exemplars when the scraper asks for it) for the admin port's
// /metrics.
func (t *Telemetry) MetricsHandler() http.Handler {
	if t == nil {
		return http.NotFoundHandler()
	}
	return t.handler
}

// Shutdown flushes and stops the exporters. Call it once, after the last
// request is done.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	if t.tracers != nil {
		if err := t.tracers.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cannot flush spans: %w", err))
		}
	}
	if err := t.meters.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cannot flush metrics: %w", err))
	}
	return errors.Join(errs...)
}

// SetSpoolDepth sets the function the spool-depth gauge reads at each
// collection (the number of settlements waiting to be replayed).
func (t *Telemetry) SetSpoolDepth(f func() int) {
	if t == nil {
		return
	}
	if f == nil {
		t.spool.Store(nil)
		return
	}
	t.spool.Store(&f)
}

func (t *Telemetry) observeSpool(_ context.Context, o metric.Int64Observer) error {
	if f := t.spool.Load(); f != nil {
		o.Observe(int64((*f)()))
	}
	return nil
}
