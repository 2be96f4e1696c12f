package telemetry

import (
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate-ai/tollgate/proto/tollgate/v1"
)

// NewUsageRecord returns the usage record of a request, the event a
// settlement publishes. Values a client chose (model, request id) that look
// like credentials are replaced, as in logs and spans.
func NewUsageRecord(r *Request) *tollgatev1.UsageRecord {
	u := &r.Usage
	rec := &tollgatev1.UsageRecord{
		RequestId:           r.ID,
		Consumer:            r.Consumer,
		Model:               scrubClient(r.Model),
		ResponseModel:       scrubClient(r.ResponseModel),
		Provider:            r.Provider,
		Route:               r.Route,
		Operation:           r.Operation,
		Status:              int32(r.Status),
		InputTokens:         u.Input,
		OutputTokens:        u.Output,
		CachedInputTokens:   u.CachedInput,
		CacheCreationTokens: u.CacheCreation,
		ReasoningTokens:     u.Reasoning,
		TotalTokens:         u.Total(),
		Estimated:           u.Estimated,
		Cancelled:           r.Cancelled,
		EnvoyRequestId:      scrubClient(r.RequestID),
		Decision:            r.Decision.String(),
		Rule:                r.Rule,
	}
	if !r.Start.IsZero() {
		rec.StartTime = timestamppb.New(r.Start)
		if !r.FirstToken.IsZero() && !r.FirstToken.Before(r.Start) {
			rec.TimeToFirstToken = durationpb.New(r.FirstToken.Sub(r.Start))
		}
	}
	if !r.End.IsZero() {
		rec.EndTime = timestamppb.New(r.End)
	}
	if r.TraceParent != "" {
		ctx := propagation.TraceContext{}.Extract(background, carrier{r.TraceParent, ""})
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			rec.TraceId = sc.TraceID().String()
		}
	}
	return rec
}

// UsageRecordJSON renders the usage record of a request as protobuf JSON,
// the form the ledger appends to the usage Redis Stream.
func UsageRecordJSON(r *Request) ([]byte, error) {
	return tollgatev1.MarshalRecordJSON(NewUsageRecord(r))
}

// UsageRecordJSON is like the package's UsageRecordJSON, but values a
// client chose are also checked against the exact secrets t knows (the
// provider keys, the consumers' keys), as in logs. A nil t checks only the
// shapes of credentials.
func (t *Telemetry) UsageRecordJSON(r *Request) ([]byte, error) {
	rec := NewUsageRecord(r)
	rec.Model = t.Scrub(rec.Model)
	rec.ResponseModel = t.Scrub(rec.ResponseModel)
	rec.EnvoyRequestId = t.Scrub(rec.EnvoyRequestId)
	return tollgatev1.MarshalRecordJSON(rec)
}

// Scrub returns v, or "[redacted]" when v holds a secret t knows of or
// looks like a credential: for values a client chose that tollgate reports
// elsewhere (Envoy's dynamic metadata, the usage record).
func (t *Telemetry) Scrub(v string) string {
	if t == nil {
		return scrubClient(v)
	}
	return t.secrets.scrub(v)
}

func scrubClient(v string) string {
	if v != "" && looksLikeCredential(v) {
		return redacted
	}
	return v
}
