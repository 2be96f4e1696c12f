// Package processor is tollgate's ext_proc server: for each HTTP request
// Envoy opens one gRPC stream and sends, in order, the request headers, the
// buffered request body, the response headers and the response body in
// chunks. The server authenticates the consumer, admits the request against
// its rate limits and quota, meters the response and settles the usage
// exactly once when the stream ends, however it ends.
package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate-ai/tollgate/alerts"
	"github.com/tollgate-ai/tollgate/breaker"
	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/processor/tokens"
	"github.com/tollgate-ai/tollgate/quota"
	"github.com/tollgate-ai/tollgate/telemetry"
)

// Policy is everything a request is judged by. It is immutable; a reload
// builds a new one and swaps it in, and each stream keeps the Policy it
// started with.
type Policy struct {
	Consumers *consumer.Registry
	Rules     *limiter.Rules
	Quota     *quota.Policy

	cfg       Config
	providers []provider
	defEnc    *tokens.Encoding
}

// PolicyOptions are the parts a Policy is built from.
type PolicyOptions struct {
	Config Config
	// Providers are the upstreams whose keys are injected, with their keys
	// read (ResolveProviders, or package accounts).
	Providers []Provider
	Consumers *consumer.Registry
	Rules     *limiter.Rules
	Quota     *quota.Policy
}

// NewPolicy validates and compiles a Policy.
func NewPolicy(o PolicyOptions) (*Policy, error) {
	if err := o.Config.Validate("processing"); err != nil {
		return nil, err
	}
	p := &Policy{Consumers: o.Consumers, Rules: o.Rules, Quota: o.Quota, cfg: o.Config, providers: compileProviders(o.Providers)}
	var err error
	if p.cfg.UnknownPaths == "" {
		p.cfg.UnknownPaths = "pass"
	}
	if p.cfg.DefaultEncoding == "" {
		p.cfg.DefaultEncoding = "o200k_base"
	}
	if p.cfg.ReserveOutputTokens == 0 {
		p.cfg.ReserveOutputTokens = 1024
	}
	if p.cfg.InFlightLease == 0 {
		p.cfg.InFlightLease = time.Minute
	}
	if p.cfg.MaxResponseBuffer == 0 {
		p.cfg.MaxResponseBuffer = 4 << 20
	}
	if p.defEnc, err = tokens.Get(p.cfg.DefaultEncoding); err != nil {
		return nil, fmt.Errorf("processing.default_encoding: %w", err)
	}
	return p, nil
}

// Options configure a Server.
type Options struct {
	// Store charges limits and quotas and keeps usage.
	Store ledger.Store
	// Logger receives one line per settled request and every internal error.
	Logger *slog.Logger
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// SettleTimeout bounds a settlement (which spools on failure); default 5s.
	SettleTimeout time.Duration
	// Telemetry records metrics, spans and a log line per request; nil
	// records nothing.
	Telemetry *telemetry.Telemetry
	// Breakers fail calls to an unhealthy provider fast (per replica); nil
	// lets every call through.
	Breakers *breaker.Set
	// Alerts notifies budget thresholds and token anomalies; nil sends
	// nothing.
	Alerts *alerts.Alerts
}

// Server implements [extprocv3.ExternalProcessorServer].
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	o      Options
	policy atomic.Pointer[Policy]
	pool   sync.Pool // *stream
	keys   *keyRing
}

// New returns a Server judging requests by p.
func New(o Options, p *Policy) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 5 * time.Second
	}
	s := &Server{o: o, keys: newKeyRing()}
	s.policy.Store(p)
	s.pool.New = func() any { return new(stream) }
	return s
}

// SetPolicy swaps in a new Policy; streams already open keep theirs.
func (s *Server) SetPolicy(p *Policy) { s.policy.Store(p) }

// Policy returns the current Policy.
func (s *Server) Policy() *Policy { return s.policy.Load() }

// Process implements [extprocv3.ExternalProcessorServer]. It only moves
// messages; the per-request state lives in a stream. Envoy ends the gRPC
// stream after the last response body chunk, or cancels it when the client
// goes away (without any end_of_stream), so settlement happens on the way
// out whatever the reason.
func (s *Server) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	st := s.pool.Get().(*stream)
	st.reset(s, s.policy.Load())
	defer func() {
		st.finish()
		st.report()
		st.release()
		s.pool.Put(st)
	}()
	ctx := srv.Context()
	for {
		req, err := srv.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("cannot receive from envoy: %w", err)
		}
		var resp *extprocv3.ProcessingResponse
		if st.timed(req) {
			t0 := s.o.Clock()
			resp = st.dispatch(ctx, req)
			s.o.Telemetry.Phase(phaseOf(req), s.o.Clock().Sub(t0))
		} else {
			resp = st.dispatch(ctx, req)
		}
		err = srv.Send(resp)
		st.sent()
		if err != nil {
			if status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("cannot send to envoy: %w", err)
		}
		if st.done {
			// An immediate response ends the exchange; Envoy sends no more.
			return nil
		}
	}
}

func phaseOf(req *extprocv3.ProcessingRequest) telemetry.Phase {
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return telemetry.RequestHeaders
	case *extprocv3.ProcessingRequest_RequestBody:
		return telemetry.RequestBody
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return telemetry.ResponseHeaders
	default:
		return telemetry.ResponseBody
	}
}

// ProviderSecrets returns the provider keys the policy injects, for
// telemetry to keep out of everything it reports.
func (p *Policy) ProviderSecrets() []string {
	var out []string
	for _, pr := range p.providers {
		for _, k := range pr.keys {
			out = append(out, strings.TrimPrefix(k.value, "Bearer "))
		}
	}
	return out
}

// ProviderResting returns until when this replica leaves a provider's key
// out of the rotation because the provider refused it (zero: it does not).
func (s *Server) ProviderResting(provider, keyID string) time.Time {
	return s.keys.restingUntil(provider, keyID)
}

// ProviderHealth returns the providers' recent health as this replica saw
// it (the breakers' figures).
func (s *Server) ProviderHealth() any { return s.o.Breakers.Health() }

// timed tells whether the handling of req is timed for telemetry: every
// message but response chunks, of which one in eight is (a streamed
// response has hundreds, and two clock reads per chunk are a measurable
// share of its cost).
func (st *stream) timed(req *extprocv3.ProcessingRequest) bool {
	if st.s.o.Telemetry == nil {
		return false
	}
	if _, ok := req.Request.(*extprocv3.ProcessingRequest_ResponseBody); !ok {
		return true
	}
	st.chunks++
	return st.chunks%8 == 1
}

// dispatch handles req: a response chunk on the stream's own goroutine,
// every other message on a short-lived one that it waits for.
//
// The request phases (JSON, tokenizer, Redis client, telemetry) run deep
// and grow a goroutine's stack from 8 to 16 KiB or more. The runtime only
// shrinks a stack of which a goroutine uses under a quarter, which a
// handler parked in grpc-go's Recv does not, so a stream waiting between
// response chunks kept the grown stack for its whole life: 16.4 KiB of
// stack per held stream, against 8.3 KiB handled aside (make bench-hold,
// 10,000 streams). Aside, the growth leaves with the helper goroutine.
// Chunks, hundreds per response, are handled in place: their path is
// shallow and a goroutine per chunk would cost more than it saves.
func (st *stream) dispatch(ctx context.Context, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	if _, chunk := req.Request.(*extprocv3.ProcessingRequest_ResponseBody); chunk {
		return st.handle(ctx, req)
	}
	a := &aside{}
	a.done.Add(1)
	go a.handle(ctx, st, req)
	a.done.Wait()
	return a.resp
}

// aside is one message handled by dispatch's goroutine.
type aside struct {
	done sync.WaitGroup
	resp *extprocv3.ProcessingResponse
}

func (a *aside) handle(ctx context.Context, st *stream, req *extprocv3.ProcessingRequest) {
	defer a.done.Done()
	a.resp = st.handle(ctx, req)
}
