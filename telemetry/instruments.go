package telemetry

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instrument names. Prometheus sees them with dots as underscores, the unit
// as a suffix (_seconds) and _total on counters: see README.md.
const (
	nameGenAITokens   = "gen_ai.client.token.usage"
	nameGenAIDuration = "gen_ai.server.request.duration"
	nameGenAITTFT     = "gen_ai.server.time_to_first_token"
	nameGenAITPOT     = "gen_ai.server.time_per_output_token"
	nameTokens        = "tollgate.tokens"
	nameRequests      = "tollgate.requests"
	nameUpstream      = "tollgate.upstream.responses"
	nameCancelled     = "tollgate.requests.cancelled"
	nameEstimated     = "tollgate.usage.estimated"
	nameQuota         = "tollgate.quota.remaining"
	nameStoreDuration = "tollgate.store.duration"
	nameStoreErrors   = "tollgate.store.errors"
	nameSpool         = "tollgate.spool.depth"
	namePhase         = "tollgate.extproc.phase.duration"
)

// Attribute keys: the GenAI semantic conventions' for gen_ai.* metrics and
// spans, short ones for tollgate's own metrics (they are PromQL labels).
const (
	keyOperation     = attribute.Key("gen_ai.operation.name")
	keyProvider      = attribute.Key("gen_ai.provider.name")
	keyRequestModel  = attribute.Key("gen_ai.request.model")
	keyResponseModel = attribute.Key("gen_ai.response.model")
	keyTokenType     = attribute.Key("gen_ai.token.type")
	keyErrorType     = attribute.Key("error.type")

	labelConsumer    = attribute.Key("consumer")
	labelModel       = attribute.Key("model")
	labelProvider    = attribute.Key("provider")
	labelType        = attribute.Key("type")
	labelDecision    = attribute.Key("decision")
	labelRule        = attribute.Key("rule")
	labelStatusClass = attribute.Key("status_class")
	labelPhase       = attribute.Key("phase")
	labelOp          = attribute.Key("op")
	labelOutcome     = attribute.Key("outcome")
)

// Token types, as gen_ai.token.type and tollgate's type label. input and
// output are the semantic conventions' values; the others are parts of
// them (cached_input and cache_creation of input, reasoning of output), so
// summing over every type counts those twice.
const (
	tokInput = iota
	tokOutput
	tokCachedInput
	tokCacheCreation
	tokReasoning
	numTokenTypes
)

var tokenTypeNames = [numTokenTypes]string{"input", "output", "cached_input", "cache_creation", "reasoning"}

type instruments struct {
	genAITokens   metric.Int64Histogram
	genAIDuration metric.Float64Histogram
	genAITTFT     metric.Float64Histogram
	genAITPOT     metric.Float64Histogram
	tokens        metric.Int64Counter
	requests      metric.Int64Counter
	upstream      metric.Int64Counter
	cancelled     metric.Int64Counter
	estimated     metric.Int64Counter
	quota         metric.Int64Gauge
	storeDuration metric.Float64Histogram
	storeErrors   metric.Int64Counter
	phase         metric.Float64Histogram
}

func (ins *instruments) create(m metric.Meter, b Buckets, spool metric.Int64Callback) error {
	var errs []error
	hist := func(name, unit, desc string, bounds []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(bounds...))
		errs = append(errs, err)
		return h
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	var err error
	ins.genAITokens, err = m.Int64Histogram(nameGenAITokens, metric.WithUnit("{token}"),
		metric.WithDescription("Number of input and output tokens used per request, by token type."),
		metric.WithExplicitBucketBoundaries(b.Tokens...))
	errs = append(errs, err)
	ins.genAIDuration = hist(nameGenAIDuration, "s", "Time from the request headers to the end of the response, for requests sent upstream.", b.RequestDuration)
	ins.genAITTFT = hist(nameGenAITTFT, "s", "Time from the request headers to the first response body chunk, for successful responses.", b.TimeToFirstToken)
	ins.genAITPOT = hist(nameGenAITPOT, "s", "Time per output token after the first, for successful responses.", b.TimePerOutputToken)
	ins.tokens = counter(nameTokens, "{token}", "Tokens charged, by consumer, model, provider and token type.")
	ins.requests = counter(nameRequests, "{request}", "Requests that reached a decision, by decision and refusing rule.")
	ins.upstream = counter(nameUpstream, "{response}", "Upstream responses by provider and HTTP status class.")
	ins.cancelled = counter(nameCancelled, "{request}", "Requests whose client went away before the response ended.")
	ins.estimated = counter(nameEstimated, "{request}", "Requests whose usage tollgate counted itself because the provider did not report it.")
	ins.quota, err = m.Int64Gauge(nameQuota, metric.WithDescription("Quota balance left per consumer, as last seen."))
	errs = append(errs, err)
	ins.storeDuration = hist(nameStoreDuration, "s", "Latency of calls to the store (Redis), by operation and outcome.", b.Store)
	ins.storeErrors = counter(nameStoreErrors, "{error}", "Failed calls to the store (Redis), by operation and error kind.")
	ins.phase = hist(namePhase, "s", "Time tollgate spent answering each ext_proc message, by phase.", b.Phase)
	_, err = m.Int64ObservableGauge(nameSpool, metric.WithUnit("{settlement}"),
		metric.WithDescription("Settlements waiting in the spool to be replayed to the store."),
		metric.WithInt64Callback(spool))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot create instruments: %w", err)
	}
	return nil
}

// Keys of the prepared attribute sets: folded label values only, so each
// cache is bounded by the label caps.
type (
	genAIKey struct {
		operation, provider, model, responseModel, errorType string
	}
	tokenKey struct {
		consumer, model, provider string
	}
	requestKey struct {
		consumer, model, provider string
		decision                  Decision
		rule                      string
	}
	upstreamKey struct {
		provider, class string
	}
	storeKey struct {
		op, outcome string
	}
)

type genAIOpts struct {
	tokens   [numTokenTypes]opts // without error.type
	latency  opts                // without error.type: TTFT and TPOT, successes only
	duration opts                // with error.type when there was one
}

type tokenOpts struct {
	types     [numTokenTypes]opts
	estimated opts // provider, model
	cancelled opts // provider
}

func (t *Telemetry) prepareOpts() {
	t.genAIOpts = newOptCache(maxCombos, func(k genAIKey) *genAIOpts {
		base := []attribute.KeyValue{
			keyOperation.String(k.operation),
			keyProvider.String(k.provider),
			keyRequestModel.String(k.model),
		}
		if k.responseModel != "" {
			base = append(base, keyResponseModel.String(k.responseModel))
		}
		o := &genAIOpts{latency: newOpts(base...)}
		for i := range o.tokens {
			o.tokens[i] = newOpts(append(base[:len(base):len(base)], keyTokenType.String(tokenTypeNames[i]))...)
		}
		o.duration = o.latency
		if k.errorType != "" {
			o.duration = newOpts(append(base[:len(base):len(base)], keyErrorType.String(k.errorType))...)
		}
		return o
	})
	t.tokenOpts = newOptCache(maxCombos, func(k tokenKey) *tokenOpts {
		o := &tokenOpts{
			estimated: newOpts(labelProvider.String(k.provider), labelModel.String(k.model)),
			cancelled: newOpts(labelProvider.String(k.provider)),
		}
		for i := range o.types {
			o.types[i] = newOpts(labelConsumer.String(k.consumer), labelModel.String(k.model),
				labelProvider.String(k.provider), labelType.String(tokenTypeNames[i]))
		}
		return o
	})
	t.requestOpts = newOptCache(maxCombos, func(k requestKey) *opts {
		o := newOpts(labelConsumer.String(k.consumer), labelModel.String(k.model), labelProvider.String(k.provider),
			labelDecision.String(k.decision.String()), labelRule.String(k.rule))
		return &o
	})
	t.upstreamOpts = newOptCache(maxCombos, func(k upstreamKey) *opts {
		o := newOpts(labelProvider.String(k.provider), labelStatusClass.String(k.class))
		return &o
	})
	t.quotaOpts = newOptCache(maxCombos, func(consumer string) *opts {
		o := newOpts(labelConsumer.String(consumer))
		return &o
	})
	t.storeOpts = newOptCache(maxCombos, func(k storeKey) *opts {
		o := newOpts(labelOp.String(k.op), labelOutcome.String(k.outcome))
		return &o
	})
	for p := range t.phaseOpts {
		t.phaseOpts[p] = newOpts(labelPhase.String(Phase(p).String()))
	}
}

// background is the context of measurements that link to no span.
var background = context.Background()
