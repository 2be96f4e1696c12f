package processor

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/alerts"
	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/processor/usage"
	"github.com/tollgate-ai/tollgate/quota"
	"github.com/tollgate-ai/tollgate/telemetry"
)

// responseHeaders prepares metering of the response and tells the client
// where it stands against its limits.
func (st *stream) responseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	var m mutation
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	// Admission is over, and with it every reader of the request headers;
	// the messages holding them are worth more than 1 KiB per stream.
	st.reqHdrs = headers{}
	if !st.admitted {
		return resp
	}
	hs := headers{list: h.GetHeaders().GetHeaders()}
	if st.prompt >= 0 {
		// Counted already: the body is not needed any more, and holding it
		// for a long stream costs memory.
		st.body = nil
	}
	st.status, _ = strconv.Atoi(hs.value(":status"))
	// Envoy's own 503 (connect failure) and 504 (timeout) arrive here too.
	now := st.s.o.Clock()
	st.permit.Done(st.status, now.Sub(st.started)-st.upstreamAt, false)
	if (st.status == 401 || st.status == 429) && st.providerKey != "" {
		// The provider refused this key: the next calls use the others.
		st.s.keys.rest(st.provider.name, st.providerKey, now.Add(st.provider.rest))
	}
	st.rateHeaders(&m)
	// Read for the last time: a stream held open need not keep it.
	st.decision = nil
	if st.fallbackFrom != "" {
		m.setHeader("x-tollgate-fallback", st.fallbackFrom+" -> "+st.provider.name)
	}
	if st.downgradedFrom != "" {
		m.setHeader("x-tollgate-downgraded", st.downgradedFrom+" -> "+st.model)
	}
	if st.status >= 200 && st.status < 300 {
		ce := strings.ToLower(hs.value("content-encoding"))
		sse := strings.HasPrefix(strings.ToLower(hs.value("content-type")), "text/event-stream")
		if st.counter == nil {
			st.counter = st.enc.NewCounter()
		} else {
			st.counter.Reset(st.enc)
		}
		// A provider may compress despite accept-encoding: identity; the
		// stream is then forwarded decoded, so the chunk can still go.
		drop := st.addedUsage && sse && usage.Decodable(ce)
		st.meter.Reset(usage.MeterOptions{
			API:            st.api,
			SSE:            sse,
			Encoding:       ce,
			Counter:        st.counter,
			DropUsageChunk: drop,
			MaxOutput:      st.maxOutput,
			MaxBody:        st.policy.cfg.MaxResponseBuffer,
		})
		st.metering = true
		if drop {
			m.removeHeader("content-length")
			if ce != "" && ce != "identity" {
				m.removeHeader("content-encoding")
			}
		}
	}
	resp.GetResponseHeaders().Response = &extprocv3.CommonResponse{HeaderMutation: m.proto()}
	if st.metering {
		// The route may not stream the response body here; metering needs it.
		resp.ModeOverride = &filterv3.ProcessingMode{ResponseBodyMode: filterv3.ProcessingMode_STREAMED}
	}
	if h.GetEndOfStream() {
		resp.DynamicMetadata = st.settle()
	}
	return resp
}

// responseBody meters one chunk of the response. In STREAMED mode Envoy
// sends the chunks as they come, without waiting for earlier answers, and
// matches the answers in order; a body mutation replaces its chunk only.
func (st *stream) responseBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if !st.admitted || st.settled {
		return continueChunk
	}
	var out []byte
	replaced := false
	if st.metering {
		out, replaced = st.meter.Write(b.GetBody())
		if st.firstByte == 0 && st.meter.FirstContent() {
			st.firstByte = max(st.s.o.Clock().Sub(st.started), 1)
		}
		if b.GetEndOfStream() {
			if tail, r := st.meter.Finish(); r {
				out = append(out[:len(out):len(out)], tail...)
				replaced = true
			}
		}
	}
	if !replaced && !b.GetEndOfStream() {
		return continueChunk
	}
	// An answer that changes the chunk or carries the settlement is built
	// in pooled messages, which go back once Send has encoded them (sent):
	// nothing is allocated per chunk, and a stream waiting between chunks
	// does not carry them.
	rb := chunkAnswers.Get().(*chunkAnswer)
	st.answer = rb
	resp, br := &rb.resp, &rb.body
	resp.Response, resp.DynamicMetadata = &rb.oneof, nil
	rb.oneof.ResponseBody = br
	br.Response = nil
	if replaced {
		rb.mutBody.Body = out
		rb.mut.Mutation = &rb.mutBody
		rb.common.BodyMutation = &rb.mut
		br.Response = &rb.common
	}
	if b.GetEndOfStream() {
		resp.DynamicMetadata = st.settle()
	}
	return resp
}

// sent runs once the answer to a message has been sent: what was lent
// for building it goes back.
func (st *stream) sent() {
	if st.answer != nil {
		st.answer.done()
		st.answer = nil
	}
	if st.metering {
		// The meter's buffers can serve other streams while this one
		// waits for its next chunk.
		st.meter.Idle()
	}
}

// finish runs when the gRPC stream ends, however it ended. A request
// admitted but not settled — the client went away, the upstream failed,
// Envoy gave up — is settled here with what was seen.
func (st *stream) finish() {
	// No outcome for a call that never got a response (Done already ran
	// otherwise, and then this does nothing).
	st.permit.Cancel()
	if st.admitted && !st.settled {
		st.cancelled = true
		st.settle()
	}
}

// report tells telemetry how the request ended: once per request that
// reached a decision on a counted API (not the in-band admin calls).
func (st *stream) report() {
	tel := st.s.o.Telemetry
	if tel == nil || !st.decided || st.adminOp != quota.NoAdminOp {
		return
	}
	r := st.record(st.s.o.Clock())
	tel.RequestDone(&r)
}

// record describes the request for telemetry and the usage event.
func (st *stream) record(end time.Time) telemetry.Request {
	r := telemetry.Request{
		ID:          st.id,
		RequestID:   st.requestID,
		TraceParent: st.traceParent,
		TraceState:  st.traceState,
		Model:       st.model,
		Route:       st.route,
		Operation:   telemetry.Operation(st.api),
		Decision:    st.outcome,
		Rule:        st.rule,
		Status:      st.status,
		Usage:       st.usage,
		Start:       st.started,
		FirstToken:  st.firstTokenAt(),
		End:         end,
		Cancelled:   st.cancelled,
	}
	if st.consumer != nil {
		r.Consumer = st.consumer.Name
	}
	if st.provider != nil {
		r.Provider = st.provider.name
	}
	if st.metering {
		r.ResponseModel = st.meter.ResponseModel()
	}
	return r
}

// usage is what the request is charged: the provider's report when there
// is one; else tollgate's own count of the prompt and of the streamed text.
func (st *stream) metered() usage.Usage {
	switch {
	case st.status == 0:
		// No response reached tollgate: the provider may still have read
		// the prompt, so it is charged as estimated.
		return usage.Usage{Input: st.promptTokens(), Estimated: true}
	case !st.metering:
		// An error answer: providers charge nothing for those.
		return usage.Usage{}
	}
	u, _ := st.meter.Usage()
	if u.Estimated && u.Input == 0 {
		// The provider did not report the prompt (or nothing at all).
		u.Input = st.promptTokens()
	}
	return u
}

// settle replaces the reservation by the actual usage, exactly once, and
// returns the dynamic metadata Envoy's access log reads.
func (st *stream) settle() *structpb.Struct {
	st.settled = true
	if st.leaseStop != nil {
		close(st.leaseStop) // the settlement releases the slots
	}
	now := st.s.o.Clock()
	u := st.metered()
	st.usage = u
	// The settlement may outlive this stream (the ledger spools it while
	// the store is down), so it gets its own copy of the reservation; the
	// windows and balance inside are allocated per request.
	res := st.reservation
	s := &ledger.Settlement{
		ID:          st.id,
		Consumer:    st.consumer.Name,
		Model:       st.model,
		Day:         now.UTC().Format(time.DateOnly),
		Reservation: &res,
		Usage:       u,
	}
	s.Hold = st.hold
	rec := st.record(now)
	if ev, err := st.s.o.Telemetry.UsageRecordJSON(&rec); err == nil {
		s.Event = ev
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.s.o.SettleTimeout)
	defer cancel()
	err := st.s.o.Store.Settle(ctx, s)
	st.s.o.Telemetry.StoreCall("settle", st.s.o.Clock().Sub(now), err)
	if err != nil {
		st.s.o.Logger.Error("cannot settle usage", "request_id", st.requestID, "consumer", st.consumer.Name, "err", err)
	}
	st.observe(u, now)
	md, _ := structpb.NewStruct(map[string]any{
		"tollgate": map[string]any{
			"consumer": st.consumer.Name,
			// A client may put anything in the model, a key too; Envoy's
			// access log prints this.
			"model":         st.s.o.Telemetry.Scrub(st.model),
			"input_tokens":  float64(u.Input),
			"output_tokens": float64(u.Output),
			"total_tokens":  float64(u.Total()),
			"estimated":     u.Estimated,
		},
	})
	return md
}

// observe tells the budget alerts what the request used and what is left
// of its quota. The remaining balance is what the admission saw, less this
// request's cost beyond its reservation: a little low while other requests
// of the consumer hold reservations.
func (st *stream) observe(u usage.Usage, now time.Time) {
	al := st.s.o.Alerts
	if al == nil {
		return
	}
	o := alerts.Observation{Consumer: st.consumer.Name, Tier: st.consumer.Tier, Model: st.model, Tokens: u.Total(), At: now}
	if b := st.reservation.Balance; b != nil && st.admitted && !st.hold.Local {
		info, _ := st.policy.Quota.DescribeIn(st.quotaScope, st.consumer.Name, now)
		o.HasQuota, o.QuotaAllotment = true, b.Allotment
		o.QuotaRemaining = st.balanceLeft + st.hold.Balance - b.Weights.Cost(u)
		o.QuotaPeriod = alerts.PeriodID(info)
		if info.ResetsAt != nil {
			o.QuotaResetsAt = *info.ResetsAt
		}
		o.QuotaScope = st.quotaScope
		if info.PerModel {
			o.QuotaModel = st.model
		}
	}
	al.Observe(o)
}

// chunkAnswers holds the messages of answers to response chunks.
var chunkAnswers = sync.Pool{New: func() any { return new(chunkAnswer) }}

// chunkAnswer is the answer to one response body chunk, refilled for each.
type chunkAnswer struct {
	resp    extprocv3.ProcessingResponse
	oneof   extprocv3.ProcessingResponse_ResponseBody
	body    extprocv3.BodyResponse
	common  extprocv3.CommonResponse
	mut     extprocv3.BodyMutation
	mutBody extprocv3.BodyMutation_Body
}

// done returns the answer's messages to the pool, keeping no reference to
// the chunk's bytes or the settlement's metadata.
func (rb *chunkAnswer) done() {
	rb.mutBody.Body = nil
	rb.resp.DynamicMetadata = nil
	chunkAnswers.Put(rb)
}

// firstTokenAt is when the first content came, zero if none did.
func (st *stream) firstTokenAt() time.Time {
	if st.firstByte == 0 {
		return time.Time{}
	}
	return st.started.Add(st.firstByte)
}
