package telemetry

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

// Decision is how admission of a request ended.
type Decision uint8

const (
	// Allowed requests went (or were meant to go) upstream.
	Allowed Decision = iota
	// Unauthenticated requests had a missing or unknown API key (401).
	Unauthenticated
	// Forbidden requests asked for something the consumer may not use (403).
	Forbidden
	// RateLimited requests were over a rate-limit rule (429).
	RateLimited
	// QuotaExhausted requests found the consumer's quota spent (403).
	QuotaExhausted
	// StoreError requests could not be admitted because the store failed (503).
	StoreError
	// BadRequest requests could not be read (400).
	BadRequest
	// ProviderUnavailable requests met an open circuit breaker (503).
	ProviderUnavailable
	numDecisions
)

var decisionNames = [numDecisions]string{"allowed", "unauthenticated", "forbidden", "rate_limited", "quota_exhausted", "store_error", "bad_request", "provider_unavailable"}

// String returns the decision's label value.
func (d Decision) String() string {
	if d < numDecisions {
		return decisionNames[d]
	}
	return other
}

// Operation returns the gen_ai.operation.name of a provider API: the
// semantic conventions' value where one applies.
func Operation(api usage.API) string {
	switch api {
	case usage.APIChatCompletions, usage.APIAnthropicMessages:
		return "chat"
	case usage.APICompletions:
		return "text_completion"
	case usage.APIEmbeddings:
		return "embeddings"
	case usage.APIResponses:
		return "responses"
	}
	return ""
}

// Request is what happened to one request, reported once at its end.
type Request struct {
	// ID is tollgate's own id of the request, the idempotency key of its
	// settlement and the request_id of its usage record.
	ID string
	// RequestID is Envoy's x-request-id, to join with Envoy's access log.
	RequestID string
	// TraceParent and TraceState are the request's W3C trace context
	// headers; the request's span is a child of the span they name.
	TraceParent, TraceState string

	// Consumer is the authenticated consumer; empty when none.
	Consumer string
	// Model is the model the request asked for.
	Model string
	// ResponseModel is the model the provider said answered, if it said.
	ResponseModel string
	// Provider is the configured upstream's name, ideally a GenAI semantic
	// conventions value (openai, anthropic, gcp.gemini, ...).
	Provider string
	// Route is Envoy's route name.
	Route string
	// Operation is the gen_ai.operation.name: chat, text_completion,
	// embeddings, responses, ... (see [Operation]).
	Operation string

	// Decision is how admission ended.
	Decision Decision
	// Rule names the rate-limit rule that refused the request, if one did.
	Rule string
	// Status is the upstream HTTP status; 0 when no response arrived.
	Status int

	// Usage is what the request was charged.
	Usage usage.Usage

	// Start is when the request headers arrived, FirstToken when the first
	// response body chunk did (zero when none did), End when the request
	// ended. A zero End means now.
	Start, FirstToken, End time.Time
	// Cancelled is true when the client went away before the end.
	Cancelled bool
}

// statusCodes holds the status codes as strings, so that error.type costs
// no allocation.
var statusCodes = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// errorType is the error.type of an allowed request's duration: the
// upstream status when it failed, or why there was none.
func errorType(r *Request) string {
	switch {
	case r.Cancelled:
		return "cancelled"
	case r.Status == 0:
		return "no_response"
	case r.Status >= 400 && r.Status < len(statusCodes):
		return statusCodes[r.Status]
	case r.Status >= 400:
		return "_OTHER"
	}
	return ""
}

// RequestDone records a request that reached a decision, allowed or
// refused, once, at its end: the metrics, the span and the log line.
func (t *Telemetry) RequestDone(r *Request) {
	if t == nil || r == nil {
		return
	}
	end := r.End
	if end.IsZero() {
		end = t.clock()
	}
	start := r.Start
	if start.IsZero() {
		start = end
	}
	consumer := t.consumers.fold(r.Consumer)
	model := t.models.fold(r.Model)
	provider := t.providers.fold(r.Provider)
	operation := t.operations.fold(r.Operation)
	var responseModel, rule string
	if r.ResponseModel != "" {
		responseModel = t.models.fold(r.ResponseModel)
	}
	if r.Rule != "" {
		rule = t.rules.fold(r.Rule)
	}

	ctx := background
	var span trace.Span
	if t.tracers != nil {
		ctx, span = t.startSpan(r, operation, start)
	}

	t.ins.requests.Add(background, 1, t.requestOpts.get(requestKey{consumer, model, provider, r.Decision, rule}).add...)
	u := &r.Usage
	amounts := [numTokenTypes]int64{u.Input, u.Output, u.CachedInput, u.CacheCreation, u.Reasoning}
	to := t.tokenOpts.get(tokenKey{consumer, model, provider})
	for i, v := range amounts {
		if v > 0 {
			t.ins.tokens.Add(background, v, to.types[i].add...)
		}
	}
	if u.Estimated && (u.Input > 0 || u.Output > 0) {
		t.ins.estimated.Add(background, 1, to.estimated.add...)
	}
	if r.Cancelled {
		t.ins.cancelled.Add(background, 1, to.cancelled.add...)
	}

	if r.Decision == Allowed {
		if r.Status != 0 {
			t.ins.upstream.Add(background, 1, t.upstreamOpts.get(upstreamKey{provider, statusClass(r.Status)}).add...)
		}
		g := t.genAIOpts.get(genAIKey{operation, provider, model, responseModel, errorType(r)})
		t.ins.genAIDuration.Record(ctx, end.Sub(start).Seconds(), g.duration.record...)
		if u.Input > 0 || u.Output > 0 {
			for i, v := range amounts {
				if i <= tokOutput || v > 0 {
					t.ins.genAITokens.Record(ctx, v, g.tokens[i].record...)
				}
			}
		}
		if r.Status >= 200 && r.Status < 300 && !r.FirstToken.IsZero() && !r.FirstToken.Before(start) {
			t.ins.genAITTFT.Record(ctx, r.FirstToken.Sub(start).Seconds(), g.latency.record...)
			if u.Output > 1 && !r.Cancelled && end.After(r.FirstToken) {
				t.ins.genAITPOT.Record(ctx, end.Sub(r.FirstToken).Seconds()/float64(u.Output-1), g.latency.record...)
			}
		}
	}

	if span != nil {
		t.endSpan(span, r, end)
	}
	if t.logOn && t.log.Enabled(background, t.logLevel) {
		t.logRequest(r, span, start, end)
	}
}

// carrier hands the request's trace context headers to the propagator.
type carrier struct{ parent, state string }

func (c carrier) Get(k string) string {
	switch k {
	case "traceparent":
		return c.parent
	case "tracestate":
		return c.state
	}
	return ""
}
func (carrier) Set(string, string) {}
func (carrier) Keys() []string     { return []string{"traceparent", "tracestate"} }

// startSpan starts the request's span, named as the GenAI semantic
// conventions say: "{operation} {model}".
func (t *Telemetry) startSpan(r *Request, operation string, start time.Time) (context.Context, trace.Span) {
	state := r.TraceState
	if t.secrets.scrub(state) == redacted {
		// Vendors' entries travel on; a credential a client put there does not.
		state = ""
	}
	parent := t.prop.Extract(background, carrier{r.TraceParent, state})
	model := t.secrets.scrub(r.Model)
	name := operation
	if model != "" {
		name += " " + model
	}
	attrs := make([]attribute.KeyValue, 0, 24)
	attrs = append(attrs,
		keyOperation.String(operation),
		keyProvider.String(r.Provider),
		keyRequestModel.String(model),
		attribute.String("tollgate.decision", r.Decision.String()),
		attribute.String("tollgate.consumer", r.Consumer),
		attribute.String("tollgate.request.id", r.ID),
	)
	if r.ResponseModel != "" {
		attrs = append(attrs, keyResponseModel.String(t.secrets.scrub(r.ResponseModel)))
	}
	if r.RequestID != "" {
		attrs = append(attrs, attribute.StringSlice("http.request.header.x-request-id", []string{t.secrets.scrub(r.RequestID)}))
	}
	if r.Route != "" {
		attrs = append(attrs, attribute.String("tollgate.route", r.Route))
	}
	if r.Rule != "" {
		attrs = append(attrs, attribute.String("tollgate.rule", r.Rule))
	}
	return t.tracer.Start(parent, name,
		trace.WithTimestamp(start),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrs...))
}

func (t *Telemetry) endSpan(span trace.Span, r *Request, end time.Time) {
	u := &r.Usage
	attrs := make([]attribute.KeyValue, 0, 10)
	if r.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", r.Status))
	}
	if u.Input > 0 || u.Output > 0 {
		attrs = append(attrs,
			attribute.Int64("gen_ai.usage.input_tokens", u.Input),
			attribute.Int64("gen_ai.usage.output_tokens", u.Output))
	}
	if u.CachedInput > 0 {
		attrs = append(attrs, attribute.Int64("gen_ai.usage.cache_read.input_tokens", u.CachedInput))
	}
	if u.CacheCreation > 0 {
		attrs = append(attrs, attribute.Int64("gen_ai.usage.cache_creation.input_tokens", u.CacheCreation))
	}
	if u.Reasoning > 0 {
		attrs = append(attrs, attribute.Int64("gen_ai.usage.reasoning.output_tokens", u.Reasoning))
	}
	if u.Estimated {
		attrs = append(attrs, attribute.Bool("tollgate.usage.estimated", true))
	}
	if r.Cancelled {
		attrs = append(attrs, attribute.Bool("tollgate.cancelled", true))
	}
	// From the GenAI call's side, a refusal and an upstream error are
	// failures; a client that went away is not.
	var et string
	if r.Decision != Allowed {
		et = r.Decision.String()
	} else if !r.Cancelled {
		et = errorType(r)
	}
	if et != "" {
		attrs = append(attrs, keyErrorType.String(et))
		span.SetStatus(codes.Error, et)
	}
	span.SetAttributes(attrs...)
	span.End(trace.WithTimestamp(end))
}

func (t *Telemetry) logRequest(r *Request, span trace.Span, start, end time.Time) {
	var traceID string
	if span != nil {
		traceID = span.SpanContext().TraceID().String()
	} else if r.TraceParent != "" {
		sc := trace.SpanContextFromContext(t.prop.Extract(background, carrier{r.TraceParent, ""}))
		if sc.HasTraceID() {
			traceID = sc.TraceID().String()
		}
	}
	u := &r.Usage
	attrs := []slog.Attr{
		slog.String("id", r.ID),
		slog.String("consumer", r.Consumer),
		slog.String("model", t.secrets.scrub(r.Model)),
		slog.String("provider", r.Provider),
		slog.String("operation", r.Operation),
		slog.String("decision", r.Decision.String()),
		slog.Int("status", r.Status),
		slog.Int64("input_tokens", u.Input),
		slog.Int64("output_tokens", u.Output),
		slog.Float64("duration_ms", float64(end.Sub(start).Microseconds())/1000),
	}
	if r.RequestID != "" {
		attrs = append(attrs, slog.String("request_id", t.secrets.scrub(r.RequestID)))
	}
	if traceID != "" {
		attrs = append(attrs, slog.String("trace_id", traceID))
	}
	if r.ResponseModel != "" {
		attrs = append(attrs, slog.String("response_model", t.secrets.scrub(r.ResponseModel)))
	}
	if r.Route != "" {
		attrs = append(attrs, slog.String("route", r.Route))
	}
	if r.Rule != "" {
		attrs = append(attrs, slog.String("rule", r.Rule))
	}
	if u.CachedInput > 0 {
		attrs = append(attrs, slog.Int64("cached_input_tokens", u.CachedInput))
	}
	if u.CacheCreation > 0 {
		attrs = append(attrs, slog.Int64("cache_creation_tokens", u.CacheCreation))
	}
	if u.Reasoning > 0 {
		attrs = append(attrs, slog.Int64("reasoning_tokens", u.Reasoning))
	}
	if u.Estimated {
		attrs = append(attrs, slog.Bool("estimated", true))
	}
	if r.Cancelled {
		attrs = append(attrs, slog.Bool("cancelled", true))
	}
	if !r.FirstToken.IsZero() {
		attrs = append(attrs, slog.Float64("ttft_ms", float64(r.FirstToken.Sub(start).Microseconds())/1000))
	}
	t.log.LogAttrs(background, t.logLevel, "request done", attrs...)
}
