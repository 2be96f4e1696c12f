package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"net/url"
	"strings"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tidwall/sjson"

	"github.com/tollgate-ai/tollgate/breaker"
	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/processor/tokens"
	"github.com/tollgate-ai/tollgate/processor/usage"
	"github.com/tollgate-ai/tollgate/quota"
	"github.com/tollgate-ai/tollgate/telemetry"
)

// stream is the state of one HTTP request, from its request headers to the
// last response chunk. It is reused through a pool; reset clears it.
type stream struct {
	s      *Server
	policy *Policy

	// Request.
	id          string // tollgate's own id: the idempotency key of the settlement
	requestID   string // Envoy's x-request-id, for logs
	method      string
	path        string // without the query
	query       string
	host        string
	route       string
	ip          netip.Addr
	reqHdrs     headers // until the response starts (the message holding them is large)
	traceParent string  // W3C trace context of the request, for the span
	traceState  string
	api         usage.API
	adminOp     quota.AdminOp

	// The flags sit together, in one word: a held stream's size is a
	// size class of the allocator (1,536 bytes), and padding counts.
	done       bool // an immediate response has been sent
	stream     bool // the request asked for a streamed response
	addedUsage bool // tollgate asked for stream usage the client did not
	bodyModel  bool // the model was named in the body (not the path)
	admitted   bool
	metering   bool

	consumer  *consumer.Consumer
	provider  *provider
	model     string
	maxOutput int64  // the request's output cap per choice, 0 if none
	body      []byte // the request body, kept only until the prompt is counted
	enc       *tokens.Encoding
	prompt    int64 // estimated prompt tokens; -1 until counted

	quotaScope     string // the quota scope the request is charged in
	downgradedFrom string // the model asked for, when the request was downgraded
	fallbackFrom   string // the provider whose open breaker sent the call elsewhere
	fallbackModel  string // the model the fallback provider is called with
	permit         breaker.Permit
	leaseStop      chan struct{} // stops the renewal of in-flight leases
	answer         *chunkAnswer  // the answer being sent, until Send returns
	chunks         int           // response chunks seen
	providerKey    string        // the id of the provider key injected
	upstreamAt     time.Duration // when the request went upstream, after started

	// Admission.
	reservation ledger.Reservation
	decision    *ledger.Decision // until the response starts (rate headers)
	hold        ledger.Hold      // what the admission reserved, for the settlement
	balanceLeft int64            // the quota balance the admission saw

	// Response.
	status    int
	meter     usage.Meter
	counter   *tokens.Counter
	started   time.Time
	firstByte time.Duration // when the first content came, after started; 0 before
	usage     usage.Usage   // what was settled
	settled   bool
	cancelled bool // the stream ended before the response did

	// Telemetry: how the request was decided, reported once at the end.
	decided bool
	outcome telemetry.Decision
	rule    string
}

func (st *stream) reset(s *Server, p *Policy) {
	meter, counter := st.meter, st.counter
	*st = stream{s: s, policy: p, meter: meter, counter: counter, prompt: -1}
	st.started = s.o.Clock()
}

// release drops references that must not outlive the request.
func (st *stream) release() {
	st.body = nil
	st.reqHdrs = headers{}
	st.decision = nil
	st.consumer = nil
	st.policy = nil
}

func (st *stream) handle(ctx context.Context, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return st.requestHeaders(ctx, req, r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return st.requestBody(ctx, r.RequestBody)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return st.responseHeaders(ctx, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return st.responseBody(ctx, r.ResponseBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	default:
		// A message this version does not know: answer nothing harmful.
		return &extprocv3.ProcessingResponse{}
	}
}

func (st *stream) reject(e *apiError) *extprocv3.ProcessingResponse {
	st.done = true
	st.decided, st.outcome, st.rule = true, e.decision, e.rule
	return e.response(st.api)
}

func headersResponse(m *mutation) *extprocv3.HeadersResponse {
	return &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: m.proto()}}
}

// requestHeaders authenticates the consumer and decides what the rest of
// the exchange needs.
func (st *stream) requestHeaders(ctx context.Context, req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	p := st.policy
	st.reqHdrs = headers{list: h.GetHeaders().GetHeaders()}
	route, ip := requestAttributes(req, st.reqHdrs)
	var id [32]byte
	newID(&id)
	// The strings a stream keeps to its end share one allocation: each
	// small object a held stream keeps pins more of the heap than its size.
	parts := [...][]byte{id[:], st.reqHdrs.raw("x-request-id"), st.reqHdrs.raw(":method"),
		st.reqHdrs.raw(":authority"), st.reqHdrs.raw(":path"), st.reqHdrs.raw("traceparent"),
		st.reqHdrs.raw("tracestate"), []byte(route)}
	var out [len(parts)]string
	packStrings(parts[:], out[:])
	var pathQuery string
	st.id, st.requestID, st.method, st.host, pathQuery, st.traceParent, st.traceState, st.route =
		out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7]
	st.path, st.query, _ = strings.Cut(pathQuery, "?")
	st.ip = ip

	var m mutation
	for _, hv := range st.reqHdrs.list {
		if isReservedHeader(hv.GetKey()) {
			m.removeHeader(hv.GetKey())
		}
	}

	st.api = usage.Detect(st.path)
	st.adminOp = p.Quota.MatchAdmin(st.path, func(rest string) bool { return usage.Detect(rest) != usage.APIUnknown })
	if st.adminOp != quota.NoAdminOp {
		st.api = usage.APIUnknown
	}

	key, where := st.findKey(p)
	if key == "" {
		return st.reject(errUnauthenticated("Missing API key: pass it as 'Authorization: Bearer <key>' (or x-api-key, api-key, x-goog-api-key)."))
	}
	c, ok := p.Consumers.Authenticate(key, st.s.o.Clock())
	if !ok {
		return st.reject(errUnauthenticated("Incorrect API key provided."))
	}
	st.consumer = c
	m.setHeader("x-tollgate-consumer", c.Name)
	m.setHeader("x-mse-consumer", c.Name)

	if st.adminOp != quota.NoAdminOp {
		if st.adminOp == quota.Query || h.GetEndOfStream() {
			return st.answerAdmin(ctx, nil)
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: headersResponse(&m)}}
	}

	st.provider = matchProvider(p.providers, st.path, st.host)
	if st.provider != nil && st.api != usage.APIUnknown {
		if e := st.checkProvider(); e != nil {
			return st.reject(e)
		}
	}
	st.removeCredential(&m, where)
	if st.provider != nil {
		k := st.s.keys.pick(st.provider, st.s.o.Clock())
		if k == nil {
			// Never forward the client's own credential instead.
			return st.reject(&apiError{status: 503, kind: "server_error", code: "provider_unavailable", decision: telemetry.ProviderUnavailable,
				message: "The gateway has no API key for the provider " + st.provider.name + "."})
		}
		st.providerKey = k.id
		m.setHeader(st.provider.header, k.value)
		m.setHeader("x-tollgate-provider", st.provider.name)
	}

	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: headersResponse(&m)}}
	if st.fallbackFrom != "" {
		// Envoy picks the route again, so a route matching
		// x-tollgate-provider can send the call to the fallback's cluster.
		resp.GetRequestHeaders().GetResponse().ClearRouteCache = true
	}
	if st.api == usage.APIUnknown {
		if p.cfg.UnknownPaths == "deny" {
			return st.reject(&apiError{status: 404, kind: "invalid_request_error", code: "unknown_path",
				message: "tollgate does not serve " + st.path, decision: telemetry.Forbidden})
		}
		// Nothing to count: let the response through without sending it here.
		resp.ModeOverride = &filterv3.ProcessingMode{
			ResponseHeaderMode: filterv3.ProcessingMode_SKIP,
			ResponseBodyMode:   filterv3.ProcessingMode_NONE,
		}
		return resp
	}
	// Whatever processing mode the route configures, a counted call needs
	// its request body (admission) and its response (metering). An
	// override's body modes replace the route's, so both are given.
	resp.ModeOverride = &filterv3.ProcessingMode{
		RequestBodyMode:    filterv3.ProcessingMode_BUFFERED,
		ResponseHeaderMode: filterv3.ProcessingMode_SEND,
		ResponseBodyMode:   filterv3.ProcessingMode_STREAMED,
	}
	if h.GetEndOfStream() {
		// No body will come (Envoy sends none for a body-less request), so
		// admission happens now.
		if e := st.admit(ctx, usage.Request{}); e != nil {
			return st.reject(e)
		}
		st.upstreamAt = st.s.o.Clock().Sub(st.started)
	}
	return resp
}

// findKey returns the API key the client presented and where it was.
func (st *stream) findKey(p *Policy) (key, where string) {
	if v, ok := st.reqHdrs.get("authorization"); ok {
		if k, ok := cutBearer(v); ok {
			return k, "authorization"
		}
	}
	for _, name := range []string{"x-api-key", "api-key", "x-goog-api-key"} {
		if v, ok := st.reqHdrs.get(name); ok && v != "" {
			return strings.TrimSpace(v), name
		}
	}
	if p.cfg.KeyQueryParam != "" && st.query != "" {
		if q, err := url.ParseQuery(st.query); err == nil {
			if k := q.Get(p.cfg.KeyQueryParam); k != "" {
				return k, "?"
			}
		}
	}
	return "", ""
}

func cutBearer(v string) (string, bool) {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:]), true
	}
	return "", false
}

// removeCredential keeps the client's key from reaching the provider.
func (st *stream) removeCredential(m *mutation, where string) {
	if where == "?" {
		q, _ := url.ParseQuery(st.query)
		q.Del(st.policy.cfg.KeyQueryParam)
		path := st.path
		if enc := q.Encode(); enc != "" {
			path += "?" + enc
		}
		m.setHeader(":path", path)
		return
	}
	if st.provider != nil && st.provider.header == where {
		return // overwritten by the provider's key
	}
	m.removeHeader(where)
}

// requestAttributes reads the route name and the client address Envoy
// sends as request attributes, falling back to the headers Envoy sets.
func requestAttributes(req *extprocv3.ProcessingRequest, h headers) (route string, ip netip.Addr) {
	for _, s := range req.GetAttributes() {
		f := s.GetFields()
		if v, ok := f["xds.route_name"]; ok {
			route = v.GetStringValue()
		}
		if v, ok := f["source.address"]; ok {
			if ap, err := netip.ParseAddrPort(v.GetStringValue()); err == nil {
				ip = ap.Addr()
			} else if a, err := netip.ParseAddr(v.GetStringValue()); err == nil {
				ip = a
			}
		}
	}
	if !ip.IsValid() {
		addr := h.value("x-envoy-external-address")
		if addr == "" {
			addr, _, _ = strings.Cut(h.value("x-forwarded-for"), ",")
		}
		ip, _ = netip.ParseAddr(strings.TrimSpace(addr))
	}
	return route, ip
}

func (st *stream) answerAdmin(ctx context.Context, form []byte) *extprocv3.ProcessingResponse {
	q, _ := url.ParseQuery(st.query)
	r := st.policy.Quota.HandleAdmin(ctx, st.s.o.Store, st.adminOp, st.consumer.Name, *st.limiterRequest(), q, form, st.s.o.Clock())
	st.done = true
	return immediate(r.Status, r.ContentType, []byte(r.Body), nil)
}

// requestBody reads the call, checks the model and admits the request.
func (st *stream) requestBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if st.adminOp != quota.NoAdminOp {
		return st.answerAdmin(ctx, b.GetBody())
	}
	cont := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	if st.api == usage.APIUnknown || st.consumer == nil || st.admitted {
		return cont
	}
	body := b.GetBody()
	r, err := usage.ParseRequest(st.api, body)
	if err != nil {
		return st.reject(errBadRequest(err.Error()))
	}
	st.bodyModel = r.Model != ""
	if r.Model == "" {
		r.Model = usage.ModelFromPath(st.path)
	}
	st.body = body
	if st.fallbackModel != "" && st.bodyModel && r.Model != st.fallbackModel {
		// The fallback provider is called with its own model, and the
		// request is charged as that model.
		st.downgradedFrom, r.Model = r.Model, st.fallbackModel
	}
	if e := st.admit(ctx, r); e != nil {
		return st.reject(e)
	}
	var m mutation
	nb := body
	if st.downgradedFrom != "" {
		if nb, err = sjson.SetBytes(nb, "model", st.model); err != nil {
			return st.reject(errBadRequest("cannot rewrite the model: " + err.Error()))
		}
	}
	if st.stream && !r.IncludeUsage && acceptsStreamOptions(st.api) {
		// Ask the provider for the usage of the stream; the extra
		// usage-only chunk is removed before it reaches the client, which
		// did not ask.
		if withUsage, err := usage.AddIncludeUsage(nb); err == nil {
			nb = withUsage
			st.addedUsage = true
			// The chunk can only be removed from a body tollgate reads as sent.
			m.setHeader("accept-encoding", "identity")
		}
	}
	st.upstreamAt = st.s.o.Clock().Sub(st.started)
	if st.downgradedFrom == "" && !st.addedUsage {
		return cont
	}
	// Envoy keeps the content-length of a buffered body it replaces.
	m.setHeaderInt("content-length", int64(len(nb)))
	cr := cont.GetRequestBody()
	cr.Response = &extprocv3.CommonResponse{
		HeaderMutation: m.proto(),
		BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: nb}},
	}
	return cont
}

// newID writes a new request id: 128 random bits in hex.
func newID(id *[32]byte) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	hex.Encode(id[:], b[:])
}

// packStrings copies parts into one string, and sets out[i] to part i's
// share of it.
func packStrings(parts [][]byte, out []string) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range parts {
		b.Write(p)
	}
	all := b.String()
	for i, p := range parts {
		out[i], all = all[:len(p)], all[len(p):]
	}
}

// limiterRequest describes the request to the rate-limit rules.
func (st *stream) limiterRequest() *limiter.Request {
	return &limiter.Request{
		Consumer: st.consumer.Name,
		Model:    st.model,
		Path:     st.path,
		Host:     st.host,
		Route:    st.route,
		IP:       st.ip,
		Header:   st.reqHdrs.get,
		Query: func(name string) (string, bool) {
			q, err := url.ParseQuery(st.query)
			if err != nil || !q.Has(name) {
				return "", false
			}
			return q.Get(name), true
		},
		Cookie: st.reqHdrs.cookie,
	}
}

// acceptsStreamOptions reports whether an API takes
// stream_options.include_usage (OpenAI's chat and completions, and the
// providers compatible with them); the others always report usage.
func acceptsStreamOptions(api usage.API) bool {
	return api == usage.APIChatCompletions || api == usage.APICompletions
}

// checkProvider asks the provider's circuit breaker for the call. While it
// is open the call goes to the provider's fallback when that one's breaker
// lets it, or fails fast with 503 and a retry-after instead of queueing
// into a failing provider.
func (st *stream) checkProvider() *apiError {
	br := st.s.o.Breakers
	permit, v := br.Allow(st.provider.name)
	if v.Allowed() {
		st.permit = permit
		return nil
	}
	wait := v.RetryAfter
	if fb := st.provider.fallback; fb != nil {
		if alt := providerNamed(st.policy.providers, fb.Provider); alt != nil {
			fp, fv := br.Allow(alt.name)
			if fv.Allowed() {
				st.permit = fp
				st.fallbackFrom, st.fallbackModel = st.provider.name, fb.Model
				st.provider = alt
				return nil
			}
			wait = min(wait, fv.RetryAfter)
		}
	}
	e := &apiError{status: 503, kind: "server_error", code: "provider_unavailable", decision: telemetry.ProviderUnavailable,
		message: "The provider " + st.provider.name + " is failing; calls to it are paused. Retry after the indicated time."}
	e.headers.setHeader("retry-after", retryAfter(wait))
	return e
}
