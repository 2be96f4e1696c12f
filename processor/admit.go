package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/processor/tokens"
	"github.com/tollgate-ai/tollgate/processor/usage"
	"github.com/tollgate-ai/tollgate/telemetry"
)

// admit checks the model and reserves the request's tokens in every
// matching window and the consumer's quota, in one call to the store.
func (st *stream) admit(ctx context.Context, r usage.Request) *apiError {
	st.model, st.stream, st.maxOutput = r.Model, r.Stream, r.MaxOutput
	if !st.consumer.AllowsModel(r.Model) {
		return &apiError{status: 403, kind: "invalid_request_error", code: "model_not_allowed",
			message: fmt.Sprintf("The model %q is not allowed for this API key.", r.Model), decision: telemetry.Forbidden}
	}
	e := st.reserve(ctx, r)
	if e == nil || !st.canDowngrade(e.downgrade, r) {
		return e
	}
	// Over a limit that degrades instead of refusing: the request goes on
	// with the cheaper model, charged to that model's limits — or is
	// refused, with the first refusal, if those are exceeded too.
	from := r.Model
	r.Model = e.downgrade
	st.model = r.Model
	st.prompt = -1 // counted again with the new model's encoding
	if e2 := st.reserve(ctx, r); e2 != nil {
		return e
	}
	st.downgradedFrom = from
	return nil
}

// canDowngrade reports whether a refused request may go on with model:
// one set, different, allowed for the consumer, and a model named in the
// body (one taken from the path cannot be rewritten).
func (st *stream) canDowngrade(model string, r usage.Request) bool {
	return model != "" && model != r.Model && st.consumer.AllowsModel(model) && st.bodyModel
}

// reserve takes the request's amounts from every window and the quota
// that apply to it, or says why it cannot.
func (st *stream) reserve(ctx context.Context, r usage.Request) *apiError {
	p := st.policy
	st.enc = p.defEnc
	if e, ok := tokens.ForModel(r.Model); ok {
		st.enc = e
	}

	lr := st.limiterRequest()
	windows := p.Rules.Match(lr, nil)
	// The consumer's own (or tier's) limits apply beside the rules.
	windows = append(windows, st.consumer.Windows...)
	st.quotaScope = p.Quota.ScopeOf(lr)
	balance := p.Quota.ScopedBalance(st.quotaScope, st.consumer.Name, r.Model, st.s.o.Clock())
	st.reservation = ledger.Reservation{ID: st.id, Windows: windows, Balance: balance}
	if n := st.consumer.MaxInFlight; n > 0 {
		st.reservation.Slots = []ledger.Slot{{Key: "inflight:" + ledger.ConsumerTag(st.consumer.Name), Max: n,
			Lease: p.cfg.InFlightLease, Rule: "max_in_flight"}}
	}
	if len(windows) == 0 && balance == nil && len(st.reservation.Slots) == 0 {
		st.admitted, st.decided = true, true
		return nil
	}
	if balance != nil || countsTokens(windows) {
		st.reservation.Input = st.promptTokens()
		st.reservation.Output = st.outputReserve(r)
	}
	t0 := st.s.o.Clock()
	d, err := st.s.o.Store.Reserve(ctx, &st.reservation)
	st.s.o.Telemetry.StoreCall("reserve", st.s.o.Clock().Sub(t0), err)
	if err != nil {
		st.s.o.Logger.Error("cannot admit request", "request_id", st.requestID, "consumer", st.consumer.Name, "err", err)
		return &apiError{status: 503, kind: "server_error", code: "store_unavailable",
			message: "The gateway cannot check rate limits and quotas right now; retry shortly.", decision: telemetry.StoreError}
	}
	st.decision, st.hold, st.balanceLeft = d, d.Hold, d.Balance
	if balance != nil {
		st.s.o.Telemetry.QuotaRemaining(st.consumer.Name, d.Balance)
	}
	if d.Allowed {
		st.admitted, st.decided = true, true
		if len(st.reservation.Slots) > 0 {
			st.keepLeases()
		}
		return nil
	}
	return st.refusal(d)
}

func countsTokens(ws []ledger.Window) bool {
	for i := range ws {
		if ws[i].Unit == ledger.Tokens {
			return true
		}
	}
	return false
}

func (st *stream) outputReserve(r usage.Request) int64 {
	if st.api == usage.APIEmbeddings {
		return 0
	}
	perChoice := st.policy.cfg.ReserveOutputTokens
	if r.MaxOutput > 0 {
		perChoice = r.MaxOutput
	}
	// n (or best_of) completions are generated and billed.
	return perChoice * max(r.Choices, 1)
}

// estimatePrompt counts a request's prompt; tests count its calls.
var estimatePrompt = usage.EstimatePrompt

// promptTokens estimates the request's prompt once, on first need.
func (st *stream) promptTokens() int64 {
	if st.prompt < 0 {
		st.prompt = 0
		if st.body != nil {
			st.prompt = estimatePrompt(st.api, st.body, st.enc)
		}
	}
	return st.prompt
}

// refusal turns a refused admission into the client's answer: 429 for a
// rate limit (the rule's own code and message when it sets them), 403 for
// an exhausted quota.
func (st *stream) refusal(d *ledger.Decision) *apiError {
	if d.RefusedSlot >= 0 && d.RefusedSlot < len(st.reservation.Slots) {
		s := st.reservation.Slots[d.RefusedSlot]
		e := &apiError{status: 429, kind: "requests", code: "concurrency_limit_exceeded", decision: telemetry.RateLimited, rule: s.Rule,
			message: fmt.Sprintf("Too many requests in flight for this consumer: at most %d at once (a concurrency limit, rule %s); retry when one finishes.", s.Max, s.Rule)}
		e.headers.setHeader("retry-after", "1")
		return e
	}
	if d.Refused < 0 || d.Refused >= len(st.reservation.Windows) {
		return &apiError{status: 403, kind: "insufficient_quota", code: "insufficient_quota", message: st.policy.Quota.RejectedMsg(),
			decision: telemetry.QuotaExhausted, downgrade: st.policy.Quota.DowngradeIn(st.quotaScope)}
	}
	w := &st.reservation.Windows[d.Refused]
	rej := st.policy.Rules.Rejection(w)
	kind := "tokens"
	if w.Unit == ledger.Requests {
		kind = "requests"
	}
	e := &apiError{status: rej.Code, kind: kind, code: "rate_limit_exceeded", message: rej.Message,
		decision: telemetry.RateLimited, rule: w.Rule, downgrade: rej.Downgrade}
	if rej.Custom && json.Valid([]byte(rej.Message)) {
		e.raw = []byte(rej.Message)
	}
	if d.TooLarge && !rej.Custom {
		// Waiting will not help: the request alone is over the limit.
		e.message = fmt.Sprintf("This request needs %d tokens, more than the limit of %d for %s (rule %s); send a shorter prompt or a lower max_tokens.",
			w.Amount(st.reservation.Input, st.reservation.Output), w.Limit, limiter.WindowName(w), w.Rule)
	} else if d.RetryAfter > 0 {
		e.headers.setHeader("retry-after", retryAfter(d.RetryAfter))
	}
	st.rateHeaders(&e.headers)
	return e
}

// rateHeaders adds OpenAI's x-ratelimit-* headers for the tightest token
// window and the tightest request window that applied.
func (st *stream) rateHeaders(m *mutation) {
	d := st.decision
	if d == nil {
		return
	}
	tok, req := -1, -1
	for i := range st.reservation.Windows {
		if i >= len(d.Windows) {
			break
		}
		best := &tok
		if st.reservation.Windows[i].Unit == ledger.Requests {
			best = &req
		}
		if *best < 0 || d.Windows[i].Remaining < d.Windows[*best].Remaining {
			*best = i
		}
	}
	for _, x := range [...]struct {
		i                       int
		limit, remaining, reset string
	}{
		{tok, "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"},
		{req, "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"},
	} {
		if x.i < 0 {
			continue
		}
		ws := d.Windows[x.i]
		m.setHeaderInt(x.limit, ws.Limit)
		m.setHeaderInt(x.remaining, max(ws.Remaining, 0))
		m.setHeader(x.reset, resetFormat(ws.Reset))
	}
}

// keepLeases renews the request's in-flight slots every third of their
// lease until it settles: a long stream keeps its slot, while the slots of
// a replica that died come back after one lease. It works on copies, so it
// never touches the stream, which is reused once the request ends.
func (st *stream) keepLeases() {
	res, hold := st.reservation, st.decision.Hold
	store, log, id := st.s.o.Store, st.s.o.Logger, st.requestID
	every := st.policy.cfg.InFlightLease / 3
	stop := make(chan struct{})
	st.leaseStop = stop
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), every)
				err := store.Renew(ctx, &res, hold)
				cancel()
				if errors.Is(err, ledger.ErrLeaseLost) {
					log.Warn("in-flight lease lost before the request ended", "request_id", id)
					return
				}
				if err != nil {
					log.Warn("cannot renew in-flight lease", "request_id", id, "err", err)
				}
			}
		}
	}()
}
