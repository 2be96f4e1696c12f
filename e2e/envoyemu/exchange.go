package envoyemu

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

type direction int

const (
	decoding direction = iota // the request path
	encoding                  // the response path
)

// dirState is one direction's processing mode, as Envoy's ProcessorState
// holds it.
type dirState struct {
	sendHeaders bool
	body        extprocv3.ProcessingMode_BodySendMode
	attrsSent   bool
}

func (d *dirState) setMode(m *extprocv3.ProcessingMode, dir direction) {
	if dir == decoding {
		d.sendHeaders = m.GetRequestHeaderMode() != extprocv3.ProcessingMode_SKIP
		d.body = m.GetRequestBodyMode()
		return
	}
	d.sendHeaders = m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP
	d.body = m.GetResponseBodyMode()
}

// removesContentLength is Envoy's shouldRemoveContentLength: in these modes
// the filter cannot vouch for a content-length once the body may change.
func (d dirState) removesContentLength() bool {
	switch d.body {
	case extprocv3.ProcessingMode_STREAMED, extprocv3.ProcessingMode_BUFFERED_PARTIAL:
		return true
	case extprocv3.ProcessingMode_BUFFERED:
		return !d.sendHeaders
	}
	return false
}

// flow says how a request goes on after an ext_proc exchange.
type flow int

const (
	flowAnswer flow = iota // an answer of the expected kind arrived
	flowSkip               // processing is over: carry on unprocessed
	flowEnd                // the request has ended (local reply, reset or client gone)
)

// exchange is the state of one downstream request: Envoy's ext_proc Filter
// instance with its two ProcessorStates.
type exchange struct {
	p     *Proxy
	w     http.ResponseWriter
	r     *http.Request
	rec   Record
	route Route

	dec, enc         dirState
	failureModeAllow bool
	receiving        []string
	forwarding       []string
	cluster          string
	timeout          time.Duration
	maxOverride      time.Duration
	statusOnError    int

	stream       *sideStream
	complete     atomic.Bool // Envoy's processing_complete_
	protocolSent bool
	started      bool // response headers went downstream
	ended        bool // a reply, a reset or the client's going ended the request
}

func (p *Proxy) newExchange(w http.ResponseWriter, r *http.Request) *exchange {
	f := p.opts.Filter
	x := &exchange{
		p: p, w: w, r: r,
		rec: Record{Start: p.opts.Now(), Method: r.Method, Path: r.URL.RequestURI(), RouteName: p.opts.RouteName,
			ResponseFlags: "-", DynamicMetadata: map[string]*structpb.Struct{}},
		failureModeAllow: f.GetFailureModeAllow(),
		receiving:        f.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(),
		forwarding:       f.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(),
		cluster:          f.GetGrpcService().GetEnvoyGrpc().GetClusterName(),
		timeout:          defaultMessageTimeout,
		maxOverride:      f.GetMaxMessageTimeout().AsDuration(),
		statusOnError:    http.StatusInternalServerError,
	}
	if t := f.GetMessageTimeout(); t != nil {
		x.timeout = t.AsDuration()
	}
	if c := f.GetStatusOnError().GetCode(); c != 0 {
		x.statusOnError = int(c)
	}
	x.dec.setMode(f.GetProcessingMode(), decoding)
	x.enc.setMode(f.GetProcessingMode(), encoding)
	for _, rt := range p.opts.Routes {
		if rt.matches(r.URL.Path) {
			x.route = rt
			x.rec.RouteName = rt.Name
			break
		}
	}
	x.applyPerRoute(mergePerRoute(p.vhost, perRouteFrom(x.route.ExtProc)))
	return x
}

// applyPerRoute is Envoy's mergePerRouteConfig.
func (x *exchange) applyPerRoute(pr *perRoute) {
	if pr == nil {
		return
	}
	if pr.disabled {
		off := &extprocv3.ProcessingMode{RequestHeaderMode: extprocv3.ProcessingMode_SKIP, ResponseHeaderMode: extprocv3.ProcessingMode_SKIP}
		x.dec.setMode(off, decoding)
		x.enc.setMode(off, encoding)
		return
	}
	if pr.mode != nil {
		x.dec.setMode(pr.mode, decoding)
		x.enc.setMode(pr.mode, encoding)
	}
	if name := pr.grpc.GetEnvoyGrpc().GetClusterName(); name != "" {
		x.cluster = name
	}
	if pr.receivingSet {
		x.receiving = pr.receiving
	}
	if pr.forwardingSet {
		x.forwarding = pr.forwarding
	}
	if pr.failureModeAllow != nil {
		x.failureModeAllow = *pr.failureModeAllow
	}
}

// open starts the ext_proc stream on first use, as Envoy's openStream does.
func (x *exchange) open() flow {
	if x.complete.Load() {
		return flowSkip
	}
	if x.stream != nil {
		return flowAnswer
	}
	conn, err := x.p.conn(x.cluster)
	if err == nil {
		x.stream, err = openStream(conn)
	}
	if err != nil {
		return x.grpcError(14, err.Error())
	}
	return flowAnswer
}

// send decorates and sends one message.
func (x *exchange) send(req *extprocsvc.ProcessingRequest, dir direction) flow {
	if f := x.open(); f != flowAnswer {
		return f
	}
	x.decorate(req, dir)
	x.rec.MessagesSent++
	// A failed Send shows up as the stream's error on the next receive.
	_ = x.stream.send(req, x.timeout)
	return flowAnswer
}

// decorate adds what Envoy adds to every message: the protocol config on the
// first one, the attributes on the first one of each direction, and the
// forwarded metadata namespaces.
func (x *exchange) decorate(req *extprocsvc.ProcessingRequest, dir direction) {
	if !x.protocolSent {
		req.ProtocolConfig = &extprocsvc.ProtocolConfiguration{RequestBodyMode: x.dec.body, ResponseBodyMode: x.enc.body}
		x.protocolSent = true
	}
	st := &x.dec
	names := x.p.opts.Filter.GetRequestAttributes()
	if dir == encoding {
		st, names = &x.enc, x.p.opts.Filter.GetResponseAttributes()
	}
	if !st.attrsSent && len(names) > 0 {
		st.attrsSent = true
		req.Attributes = map[string]*structpb.Struct{ExtProcFilterName: x.attributes(names)}
	}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	for _, ns := range x.forwarding {
		if s, ok := x.rec.DynamicMetadata[ns]; ok {
			md.FilterMetadata[ns] = s
		}
	}
	req.MetadataContext = md
}

// attributes evaluates the attribute names Envoy's CEL activation knows
// that matter here; others are left out, as Envoy leaves out expressions
// that fail to evaluate.
func (x *exchange) attributes(names []string) *structpb.Struct {
	h := x.rec.requestHeaders
	get := func(k string) string { v, _ := h.get(k); return v }
	out := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, n := range names {
		var v *structpb.Value
		switch n {
		case "xds.route_name":
			v = structpb.NewStringValue(x.rec.RouteName)
		case "request.path":
			v = structpb.NewStringValue(get(":path"))
		case "request.url_path":
			p, _, _ := strings.Cut(get(":path"), "?")
			v = structpb.NewStringValue(p)
		case "request.method":
			v = structpb.NewStringValue(get(":method"))
		case "request.host":
			v = structpb.NewStringValue(get(":authority"))
		case "request.scheme":
			v = structpb.NewStringValue(get(":scheme"))
		case "request.id":
			v = structpb.NewStringValue(get("x-request-id"))
		case "request.protocol":
			v = structpb.NewStringValue(x.r.Proto)
		case "source.address":
			v = structpb.NewStringValue(x.r.RemoteAddr)
		case "response.code":
			v = structpb.NewNumberValue(float64(x.rec.ResponseCode))
		default:
			continue
		}
		out.Fields[n] = v
	}
	return out
}

// awaitKind is the answer a message expects.
type awaitKind int

const (
	wantRequestHeaders awaitKind = iota
	wantRequestBody
	wantResponseHeaders
	wantResponseBody
)

// await waits for the answer to the last message and deals with everything
// that is not that answer the way Envoy's onReceiveMessage does.
func (x *exchange) await(want awaitKind) (*extprocsvc.ProcessingResponse, flow) {
	if x.complete.Load() || x.stream == nil {
		return nil, flowSkip
	}
	o := x.stream.await(x.r.Context().Done(), x.maxOverride)
	switch o.kind {
	case streamClosed:
		// A server that ends the stream with OK is done with the request:
		// Envoy carries on unprocessed, whatever failure_mode_allow says.
		x.complete.Store(true)
		x.closeStream()
		return nil, flowSkip
	case streamFailed:
		return nil, x.grpcError(grpcCode(o.err), o.err.Error())
	case timedOut:
		if x.failureModeAllow {
			x.complete.Store(true)
			x.closeStream()
			return nil, flowSkip
		}
		x.complete.Store(true)
		x.closeStream()
		return nil, x.localReply(http.StatusGatewayTimeout, nil, nil, "ext_proc_error_per-message_timeout_exceeded")
	case downstreamGone:
		return nil, x.downstreamGone()
	}
	resp := o.resp
	x.rec.MessagesReceived++
	inHeaders := want == wantRequestHeaders || want == wantResponseHeaders
	if x.p.opts.Filter.GetAllowModeOverride() && inHeaders && resp.GetModeOverride() != nil {
		x.overrideMode(resp.GetModeOverride())
	}
	matches := false
	switch resp.GetResponse().(type) {
	case *extprocsvc.ProcessingResponse_RequestHeaders:
		matches = want == wantRequestHeaders
	case *extprocsvc.ProcessingResponse_RequestBody:
		matches = want == wantRequestBody
	case *extprocsvc.ProcessingResponse_ResponseHeaders:
		matches = want == wantResponseHeaders
	case *extprocsvc.ProcessingResponse_ResponseBody:
		matches = want == wantResponseBody
	case *extprocsvc.ProcessingResponse_ImmediateResponse:
		if x.p.opts.Filter.GetDisableImmediateResponse() {
			return nil, x.spurious("unhandled immediate response due to config disabled it")
		}
		x.setMetadata(resp)
		x.complete.Store(true)
		x.closeStream()
		ir := resp.GetImmediateResponse()
		code := int(ir.GetStatus().GetCode())
		if code < 200 {
			code = http.StatusOK
		}
		details := strings.Join(strings.Fields(ir.GetDetails()), "_")
		return nil, x.localReply(code, ir.GetBody(), ir.GetHeaders(), details)
	}
	if !matches {
		return nil, x.spurious("spurious message")
	}
	x.setMetadata(resp)
	return resp, flowAnswer
}

// overrideMode applies a mode_override from a headers answer: body modes are
// taken as given (so an override that names only response_body_mode also
// sets request_body_mode to NONE), DEFAULT header and trailer modes keep the
// filter's, and an allowed_override_modes list, when set, must contain it.
func (x *exchange) overrideMode(mo *extprocv3.ProcessingMode) {
	base := x.p.opts.Filter.GetProcessingMode()
	eff := &extprocv3.ProcessingMode{
		RequestHeaderMode:   pick(mo.GetRequestHeaderMode(), base.GetRequestHeaderMode()),
		ResponseHeaderMode:  pick(mo.GetResponseHeaderMode(), base.GetResponseHeaderMode()),
		RequestTrailerMode:  pick(mo.GetRequestTrailerMode(), base.GetRequestTrailerMode()),
		ResponseTrailerMode: pick(mo.GetResponseTrailerMode(), base.GetResponseTrailerMode()),
		RequestBodyMode:     mo.GetRequestBodyMode(),
		ResponseBodyMode:    mo.GetResponseBodyMode(),
	}
	if allowed := x.p.opts.Filter.GetAllowedOverrideModes(); len(allowed) > 0 {
		ok := false
		for _, a := range allowed {
			ok = ok || (a.GetRequestBodyMode() == eff.GetRequestBodyMode() && a.GetRequestTrailerMode() == eff.GetRequestTrailerMode() &&
				a.GetResponseHeaderMode() == eff.GetResponseHeaderMode() && a.GetResponseBodyMode() == eff.GetResponseBodyMode() &&
				a.GetResponseTrailerMode() == eff.GetResponseTrailerMode())
		}
		if !ok {
			return
		}
	}
	x.dec.setMode(eff, decoding)
	x.enc.setMode(eff, encoding)
}

func pick(v, def extprocv3.ProcessingMode_HeaderSendMode) extprocv3.ProcessingMode_HeaderSendMode {
	if v == extprocv3.ProcessingMode_DEFAULT {
		return def
	}
	return v
}

// setMetadata keeps the answer's dynamic metadata for the namespaces the
// filter receives, merging keys into what earlier answers set.
func (x *exchange) setMetadata(resp *extprocsvc.ProcessingResponse) {
	for ns, v := range resp.GetDynamicMetadata().GetFields() {
		allowed := false
		for _, r := range x.receiving {
			allowed = allowed || r == ns
		}
		if !allowed {
			continue
		}
		dst, ok := x.rec.DynamicMetadata[ns]
		if !ok {
			dst = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			x.rec.DynamicMetadata[ns] = dst
		}
		for k, fv := range v.GetStructValue().GetFields() {
			dst.Fields[k] = fv
		}
	}
}

// spurious handles an answer that does not fit the protocol state: a 500
// (status_on_error), or carrying on unprocessed with failure_mode_allow.
func (x *exchange) spurious(details string) flow {
	x.complete.Store(true)
	x.closeStream()
	if x.failureModeAllow {
		return flowSkip
	}
	return x.localReply(x.statusOnError, nil, nil, details)
}

// grpcError handles a failed or unreachable stream.
func (x *exchange) grpcError(code uint32, msg string) flow {
	x.complete.Store(true)
	x.closeStream()
	if x.failureModeAllow {
		return flowSkip
	}
	return x.localReply(x.statusOnError, nil, nil, fmt.Sprintf("ext_proc_error_gRPC_error_%d{%s}", code, msg))
}

// mutationError handles a mutation Envoy refuses: always a local reply.
func (x *exchange) mutationError(err error) flow {
	x.complete.Store(true)
	x.closeStream()
	return x.localReply(x.statusOnError, nil, nil, err.Error())
}

func (x *exchange) downstreamGone() flow {
	x.ended = true
	x.rec.ResponseFlags = "DC"
	if x.rec.ResponseCodeDetails == "" {
		x.rec.ResponseCodeDetails = "downstream_remote_disconnect"
	}
	x.complete.Store(true)
	x.closeStream()
	return flowEnd
}

func (x *exchange) closeStream() {
	if x.stream != nil {
		x.stream.close()
	}
}
