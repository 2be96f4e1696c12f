package telemetry

import (
	"context"
	"errors"
	"net"
	"time"
)

// Phase is the ext_proc message tollgate was answering.
type Phase uint8

const (
	// RequestHeaders is authentication and routing.
	RequestHeaders Phase = iota
	// RequestBody is reading the call and admission (the store round trip).
	RequestBody
	// ResponseHeaders is preparing metering.
	ResponseHeaders
	// ResponseBody is metering one chunk (and settling on the last).
	ResponseBody
	numPhases
)

var phaseNames = [numPhases]string{"request_headers", "request_body", "response_headers", "response_body"}

// String returns the phase's label value.
func (p Phase) String() string {
	if p < numPhases {
		return phaseNames[p]
	}
	return other
}

// Phase records how long tollgate took to answer one ext_proc message. It
// is on the request path: it allocates nothing.
func (t *Telemetry) Phase(p Phase, d time.Duration) {
	if t == nil || p >= numPhases {
		return
	}
	t.ins.phase.Record(background, d.Seconds(), t.phaseOpts[p].record...)
}

// QuotaRemaining records a consumer's quota balance as last seen.
func (t *Telemetry) QuotaRemaining(consumer string, v int64) {
	if t == nil {
		return
	}
	t.ins.quota.Record(background, v, t.quotaOpts.get(t.consumers.fold(consumer)).record...)
}

// StoreCall records one call to the store (Redis): op names it (reserve,
// settle, balance, ...), err is its outcome.
func (t *Telemetry) StoreCall(op string, d time.Duration, err error) {
	if t == nil {
		return
	}
	op = t.storeOps.fold(op)
	outcome := "ok"
	if err != nil {
		outcome = errorKind(err)
	}
	o := t.storeOpts.get(storeKey{op, outcome})
	t.ins.storeDuration.Record(background, d.Seconds(), o.record...)
	if err != nil {
		t.ins.storeErrors.Add(background, 1, o.add...)
	}
}

// errorKind sorts store errors into the few kinds an operator acts on
// differently.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}
