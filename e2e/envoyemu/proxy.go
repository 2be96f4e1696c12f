// Package envoyemu stands in for Envoy in tollgate's end-to-end tests: an
// HTTP reverse proxy that, for every downstream request, runs one ext_proc
// gRPC stream the way Envoy's envoy.filters.http.ext_proc filter does.
//
// It reads the filter's settings from tollgate's own envoy/envoy.yaml (see
// [LoadConfig]) and copies the filter's behaviour as found in Envoy's source
// and docs: which messages are sent and when, header mutation rules,
// per-chunk body mutation, content-length handling, immediate responses
// (a reset once the response has started), mode overrides, per-message
// timeouts, failure handling, dynamic metadata namespaces, attributes and
// per-route overrides. Each behaviour has a test against a scripted ext_proc
// server in this package that cites the Envoy behaviour it copies.
package envoyemu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// defaultBufferLimit is Envoy's default per_connection_buffer_limit_bytes,
// the cap on a buffered body when nothing else is configured.
const defaultBufferLimit = 1 << 20

// defaultMessageTimeout is message_timeout when unset.
const defaultMessageTimeout = 200 * time.Millisecond

// Options configures a Proxy.
type Options struct {
	// Filter is the ext_proc filter configuration, normally from
	// [LoadFilterConfig] on envoy/envoy.yaml.
	Filter *extprocv3.ExternalProcessor
	// ExtProcAddr is the address (host:port) of the cluster the filter's
	// grpc_service names.
	ExtProcAddr string
	// Clusters maps other cluster names, used by per-route grpc_service
	// overrides, to addresses.
	Clusters map[string]string
	// Upstream is the base URL requests are forwarded to.
	Upstream *url.URL
	// Transport reaches the upstream; a transport that neither asks for nor
	// undoes compression when nil (Envoy passes encodings through).
	Transport http.RoundTripper
	// Routes is the route table, first match wins; typically
	// [Config].Routes. With no routes every request takes RouteName.
	Routes []Route
	// RouteName names requests that match no route (xds.route_name).
	RouteName string
	// VirtualHostExtProc is merged under every route's ExtProcPerRoute.
	VirtualHostExtProc *extprocv3.ExtProcPerRoute
	// HonorAppendAction applies HeaderValueOption.append_action in
	// mutations. Envoy's ext_proc ignores it (envoyproxy/envoy#36982), so
	// leave it false to test against Envoy's behaviour.
	HonorAppendAction bool
	// AccessLogFormat is rendered into Record.AccessLog; typically
	// [Config].AccessLogFormat.
	AccessLogFormat *structpb.Struct
	// OnComplete receives a Record when each request ends, like an access
	// log entry.
	OnComplete func(Record)
	// Logger gets the rendered access log lines; slog.Default when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Proxy is the Envoy stand-in. It implements [http.Handler].
type Proxy struct {
	opts    Options
	checker *checker
	client  *http.Client
	vhost   *perRoute

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	addrs map[string]string
}

// New validates opts and returns a Proxy. gRPC connections are made lazily,
// so an unreachable ext_proc server shows up per request, as in Envoy.
func New(opts Options) (*Proxy, error) {
	var errs []error
	if opts.Filter == nil {
		errs = append(errs, errors.New("Filter is required"))
	}
	if opts.Upstream == nil {
		errs = append(errs, errors.New("Upstream is required"))
	}
	f := opts.Filter
	pm := f.GetProcessingMode()
	if pm.GetRequestTrailerMode() == extprocv3.ProcessingMode_SEND || pm.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND {
		errs = append(errs, errors.New("processing_mode: trailer mode SEND is not emulated"))
	}
	for _, m := range []extprocv3.ProcessingMode_BodySendMode{pm.GetRequestBodyMode(), pm.GetResponseBodyMode()} {
		if m == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED || m == extprocv3.ProcessingMode_GRPC {
			errs = append(errs, fmt.Errorf("processing_mode: body mode %v is not emulated", m))
		}
	}
	if f.GetObservabilityMode() || f.GetHttpService() != nil || f.GetSendBodyWithoutWaitingForHeaderResponse() {
		errs = append(errs, errors.New("observability_mode, http_service and send_body_without_waiting_for_header_response are not emulated"))
	}
	c, err := newChecker(f.GetMutationRules())
	if err != nil {
		errs = append(errs, err)
	}
	addrs := map[string]string{}
	for k, v := range opts.Clusters {
		addrs[k] = v
	}
	if name := f.GetGrpcService().GetEnvoyGrpc().GetClusterName(); name != "" {
		addrs[name] = opts.ExtProcAddr
	}
	if opts.ExtProcAddr == "" {
		errs = append(errs, errors.New("ExtProcAddr is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("envoyemu: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tr := opts.Transport
	if tr == nil {
		tr = &http.Transport{DisableCompression: true, Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	}
	return &Proxy{
		opts:    opts,
		checker: c,
		client:  &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		vhost:   perRouteFrom(opts.VirtualHostExtProc),
		conns:   map[string]*grpc.ClientConn{},
		addrs:   addrs,
	}, nil
}

// conn returns the (shared, like Envoy's HTTP/2 connection pool) gRPC
// connection to a cluster.
func (p *Proxy) conn(cluster string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[cluster]; ok {
		return c, nil
	}
	addr, ok := p.addrs[cluster]
	if !ok {
		return nil, fmt.Errorf("unknown cluster %q", cluster)
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to cluster %q: %w", cluster, err)
	}
	p.conns[cluster] = c
	return c, nil
}

// Close closes the gRPC connections.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	p.conns = map[string]*grpc.ClientConn{}
	return errors.Join(errs...)
}

// ServeHTTP implements [http.Handler].
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := p.newExchange(w, r)
	defer x.finish()
	x.serve()
}

// Record describes one finished request, like an access log entry.
type Record struct {
	Start     time.Time
	Duration  time.Duration
	RouteName string
	Method    string
	Path      string
	// RequestID is the x-request-id Envoy gave the request.
	RequestID string
	// ResponseCode is the status sent downstream; 0 when none was.
	ResponseCode int
	// ResponseCodeDetails says who answered: "via_upstream", an ext_proc
	// error ("ext_proc_error_per-message_timeout_exceeded", ...), or an
	// immediate response's details.
	ResponseCodeDetails string
	// ResponseFlags is Envoy's short form of what went wrong ("DC" client
	// disconnect, "UF" upstream failure, "UT" upstream timeout, "UR" upstream
	// reset), "-" when nothing did.
	ResponseFlags string
	// Reset is true when the downstream stream was reset mid-response.
	Reset bool
	// DynamicMetadata holds what the ext_proc server set in the receiving
	// namespaces; other namespaces were dropped.
	DynamicMetadata map[string]*structpb.Struct
	// MessagesSent and MessagesReceived count ext_proc messages.
	MessagesSent, MessagesReceived int
	// AccessLog is Options.AccessLogFormat rendered for this request.
	AccessLog map[string]any

	requestHeaders headerMap
	upstreamHost   string
}

// perRoute is an ExtProcPerRoute after Envoy's parsing: unset fields stay
// nil so that merging can tell them from empty ones.
type perRoute struct {
	disabled         bool
	mode             *extprocv3.ProcessingMode
	grpc             *corev3.GrpcService
	receiving        []string
	receivingSet     bool
	forwarding       []string
	forwardingSet    bool
	failureModeAllow *bool
}

func perRouteFrom(pr *extprocv3.ExtProcPerRoute) *perRoute {
	if pr == nil {
		return nil
	}
	out := &perRoute{disabled: pr.GetDisabled()}
	ov := pr.GetOverrides()
	if ov == nil {
		return out
	}
	if !out.disabled && ov.GetProcessingMode() != nil {
		out.mode = ov.GetProcessingMode()
	}
	out.grpc = ov.GetGrpcService()
	if mo := ov.GetMetadataOptions(); mo != nil {
		if mo.GetReceivingNamespaces() != nil {
			out.receiving, out.receivingSet = mo.GetReceivingNamespaces().GetUntyped(), true
		}
		if mo.GetForwardingNamespaces() != nil {
			out.forwarding, out.forwardingSet = mo.GetForwardingNamespaces().GetUntyped(), true
		}
	}
	if v := ov.GetFailureModeAllow(); v != nil {
		b := v.GetValue()
		out.failureModeAllow = &b
	}
	return out
}

// mergePerRoute merges a less specific (virtual host) config with a more
// specific (route) one as Envoy's FilterConfigPerRoute does: "disabled" comes
// from the more specific one, which also wins every field it sets.
func mergePerRoute(less, more *perRoute) *perRoute {
	switch {
	case less == nil:
		return more
	case more == nil:
		return less
	}
	out := *more
	if out.mode == nil && !more.disabled {
		out.mode = less.mode
	}
	if out.grpc == nil {
		out.grpc = less.grpc
	}
	if !out.receivingSet {
		out.receiving, out.receivingSet = less.receiving, less.receivingSet
	}
	if !out.forwardingSet {
		out.forwarding, out.forwardingSet = less.forwarding, less.forwardingSet
	}
	if out.failureModeAllow == nil {
		out.failureModeAllow = less.failureModeAllow
	}
	return &out
}
