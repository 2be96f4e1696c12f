package envoy_test

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	istionet "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// Envoy Gateway's kinds are decoded into these mirrors of its v1alpha1 API
// (api/v1alpha1 in envoyproxy/gateway: EnvoyExtensionPolicy, ExtProc,
// ClusterSettings.circuitBreaker, Backend, BackendTrafficPolicy.requestBuffer),
// limited to the fields the manifests use; the module itself would pull in
// most of Kubernetes. Field names follow the API's JSON tags exactly, and an
// unknown field is an error.
type egTargetRef struct {
	Group       string `json:"group"`
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	SectionName string `json:"sectionName,omitempty"`
}

type egBackendRef struct {
	Group     *string `json:"group,omitempty"`
	Kind      *string `json:"kind,omitempty"`
	Name      string  `json:"name"`
	Namespace *string `json:"namespace,omitempty"`
	Port      *int32  `json:"port,omitempty"`
	Fallback  *bool   `json:"fallback,omitempty"`
}

type egModeOptions struct {
	Body       *string  `json:"body,omitempty"`
	Attributes []string `json:"attributes,omitempty"`
}

type egExtProc struct {
	BackendRefs     []egBackendRef `json:"backendRefs"`
	BackendSettings *struct {
		CircuitBreaker *struct {
			MaxConnections           *int64 `json:"maxConnections,omitempty"`
			MaxPendingRequests       *int64 `json:"maxPendingRequests,omitempty"`
			MaxParallelRequests      *int64 `json:"maxParallelRequests,omitempty"`
			MaxParallelRetries       *int64 `json:"maxParallelRetries,omitempty"`
			MaxRequestsPerConnection *int64 `json:"maxRequestsPerConnection,omitempty"`
		} `json:"circuitBreaker,omitempty"`
	} `json:"backendSettings,omitempty"`
	Stage          *string `json:"stage,omitempty"`
	MessageTimeout *string `json:"messageTimeout,omitempty"`
	FailOpen       *bool   `json:"failOpen,omitempty"`
	ProcessingMode *struct {
		Request           *egModeOptions `json:"request,omitempty"`
		Response          *egModeOptions `json:"response,omitempty"`
		AllowModeOverride bool           `json:"allowModeOverride,omitempty"`
	} `json:"processingMode,omitempty"`
	Metadata *struct {
		AccessibleNamespaces []string `json:"accessibleNamespaces,omitempty"`
		WritableNamespaces   []string `json:"writableNamespaces,omitempty"`
	} `json:"metadata,omitempty"`
}

type egExtensionPolicy struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		TargetRefs []egTargetRef `json:"targetRefs"`
		ExtProc    []egExtProc   `json:"extProc"`
	} `json:"spec"`
}

type egBackend struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Endpoints []struct {
			FQDN *struct {
				Hostname string `json:"hostname"`
				Port     int32  `json:"port"`
			} `json:"fqdn,omitempty"`
		} `json:"endpoints"`
		AppProtocols []string `json:"appProtocols,omitempty"`
	} `json:"spec"`
}

type egTrafficPolicy struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		TargetRefs    []egTargetRef `json:"targetRefs"`
		RequestBuffer *struct {
			Limit resource.Quantity `json:"limit"`
			Mode  string            `json:"mode,omitempty"`
		} `json:"requestBuffer,omitempty"`
	} `json:"spec"`
}

// grpcServicePort is the Service port that reaches tollgate's gRPC listener.
func grpcServicePort(b *bundle) (corev1.ServicePort, error) {
	c := container(b)
	want, err := containerPort(c, intstr.FromString("grpc"))
	if err != nil {
		return corev1.ServicePort{}, err
	}
	for _, sp := range b.svc.Spec.Ports {
		if p, err := containerPort(c, sp.TargetPort); err == nil && p == want {
			return sp, nil
		}
	}
	return corev1.ServicePort{}, fmt.Errorf("the Service has no port to the container's grpc port %d", want)
}

// maxBodyLimit is the largest buffered request body envoy.yaml's routes take.
func maxBodyLimit(b *bundle) int64 {
	var n int64
	for _, r := range b.envoy.Routes {
		n = max(n, r.RequestBodyLimit)
	}
	return n
}

func checkEnvoyFilters(b *bundle) error {
	if len(b.envoyFilters) == 0 {
		return errors.New("no EnvoyFilter in envoy/istio")
	}
	sp, err := grpcServicePort(b)
	if err != nil {
		return err
	}
	host := fmt.Sprintf("%s.%s.svc.cluster.local", b.svc.Name, b.svc.Namespace)
	wantCluster := fmt.Sprintf("outbound|%d||%s", sp.Port, host)
	var errs []error
	names := make([]string, 0, len(b.envoyFilters))
	for name := range b.envoyFilters {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := b.envoyFilters[name]
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
		}
		// In the root namespace an EnvoyFilter without a selector patches
		// every proxy of the mesh.
		if len(f.GetWorkloadSelector().GetLabels()) == 0 {
			bad("no workloadSelector: it would patch every proxy")
		}
		var filter *extprocv3.ExternalProcessor
		var vhost *routev3.VirtualHost
		for i, p := range f.GetConfigPatches() {
			js, err := protojson.Marshal(p.GetPatch().GetValue())
			if err != nil {
				bad("configPatches[%d]: %v", i, err)
				continue
			}
			switch p.GetApplyTo() {
			case istionet.EnvoyFilter_HTTP_FILTER:
				l := p.GetMatch().GetListener().GetFilterChain().GetFilter()
				if l.GetName() != "envoy.filters.network.http_connection_manager" || l.GetSubFilter().GetName() != "envoy.filters.http.router" ||
					p.GetPatch().GetOperation() != istionet.EnvoyFilter_Patch_INSERT_BEFORE {
					bad("configPatches[%d] does not insert before the router of the HTTP connection manager", i)
				}
				var hf hcmv3.HttpFilter
				filter = &extprocv3.ExternalProcessor{}
				if err := protojson.Unmarshal(js, &hf); err != nil {
					bad("configPatches[%d]: not an Envoy HTTP filter: %v", i, err)
				} else if err := hf.ValidateAll(); err != nil {
					bad("configPatches[%d]: %v", i, err)
				} else if hf.GetName() != "envoy.filters.http.ext_proc" || hf.GetTypedConfig().UnmarshalTo(filter) != nil {
					bad("configPatches[%d] is not the ext_proc filter", i)
				} else if err := filter.ValidateAll(); err != nil {
					bad("configPatches[%d]: %v", i, err)
				}
			case istionet.EnvoyFilter_VIRTUAL_HOST:
				vhost = &routev3.VirtualHost{}
				if err := protojson.Unmarshal(js, vhost); err != nil {
					bad("configPatches[%d]: not an Envoy virtual host: %v", i, err)
				}
			}
		}
		if filter == nil {
			bad("no HTTP_FILTER patch")
			continue
		}
		// Field for field envoy.yaml's filter, but for the gRPC service.
		want := proto.Clone(b.envoy.Filter).(*extprocv3.ExternalProcessor)
		got := proto.Clone(filter).(*extprocv3.ExternalProcessor)
		want.GrpcService, got.GrpcService = nil, nil
		if !proto.Equal(want, got) {
			bad("ext_proc settings differ from envoy.yaml's:\n  got  %s\n  want %s", prototext.Format(got), prototext.Format(want))
		}
		g := filter.GetGrpcService()
		if c := g.GetEnvoyGrpc().GetClusterName(); c != wantCluster {
			bad("ext_proc cluster %q, want the tollgate Service's %q", c, wantCluster)
		}
		if a := g.GetEnvoyGrpc().GetAuthority(); a != "" && strings.TrimSuffix(a, fmt.Sprintf(":%d", sp.Port)) != host {
			bad("ext_proc authority %q is not the tollgate Service %s", a, host)
		}
		if g.GetTimeout() != nil {
			bad("grpc_service.timeout is set: it would cut streams of long LLM responses")
		}
		if lim := int64(vhost.GetRequestBodyBufferLimit().GetValue()); lim < maxBodyLimit(b) {
			bad("request_body_buffer_limit %d is below envoy.yaml's %d: large prompts would get 413", lim, maxBodyLimit(b))
		}
	}
	return errors.Join(errs...)
}

var egBodyModes = map[extprocv3.ProcessingMode_BodySendMode]string{
	extprocv3.ProcessingMode_BUFFERED:             "Buffered",
	extprocv3.ProcessingMode_STREAMED:             "Streamed",
	extprocv3.ProcessingMode_BUFFERED_PARTIAL:     "BufferedPartial",
	extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED: "FullDuplexStreamed",
}

// egMode checks one direction of Envoy Gateway's processingMode against
// envoy.yaml's: present means headers are sent, body maps to body_mode.
func egMode(dir string, o *egModeOptions, header extprocv3.ProcessingMode_HeaderSendMode, body extprocv3.ProcessingMode_BodySendMode, attrs []string) error {
	if (o != nil) != (header == extprocv3.ProcessingMode_SEND) {
		return fmt.Errorf("processingMode.%s present = %v, envoy.yaml's header mode is %v", dir, o != nil, header)
	}
	if o == nil {
		return nil
	}
	var got string
	if o.Body != nil {
		got = *o.Body
	}
	if got != egBodyModes[body] {
		return fmt.Errorf("processingMode.%s.body %q, envoy.yaml's body mode is %v", dir, got, body)
	}
	if !slices.Equal(o.Attributes, attrs) {
		return fmt.Errorf("processingMode.%s.attributes %v, envoy.yaml's are %v", dir, o.Attributes, attrs)
	}
	return nil
}

func checkEnvoyGateway(b *bundle) error {
	var policies []*egExtensionPolicy
	for _, o := range b.egObjects {
		if p, ok := o.obj.(*egExtensionPolicy); ok {
			policies = append(policies, p)
		}
	}
	if len(policies) != 1 || len(policies[0].Spec.ExtProc) != 1 {
		return errors.New("want one EnvoyExtensionPolicy with one extProc")
	}
	pol, ep := policies[0], policies[0].Spec.ExtProc[0]
	ns := pol.Metadata.Namespace
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// The backend is the tollgate Service's gRPC port.
	sp, err := grpcServicePort(b)
	if err != nil {
		return err
	}
	if len(ep.BackendRefs) != 1 {
		return fmt.Errorf("extProc has %d backendRefs, want the tollgate Service", len(ep.BackendRefs))
	}
	ref := ep.BackendRefs[0]
	refNS := ns
	if ref.Namespace != nil {
		refNS = *ref.Namespace
	}
	if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Service") || ref.Name != b.svc.Name ||
		refNS != b.svc.Namespace || ref.Port == nil || *ref.Port != sp.Port {
		bad("extProc backendRef %s/%s port %v is not the tollgate Service %s/%s port %d", refNS, ref.Name, deref(ref.Port), b.svc.Namespace, b.svc.Name, sp.Port)
	}
	if sp.AppProtocol == nil || *sp.AppProtocol != "kubernetes.io/h2c" {
		bad("Service port %s has no appProtocol kubernetes.io/h2c", sp.Name)
	}
	if refNS != ns && !referenceGranted(b, ns, refNS, ref.Name) {
		bad("no ReferenceGrant in %s lets EnvoyExtensionPolicies in %s reach Service %s", refNS, ns, ref.Name)
	}

	// The filter settings are envoy.yaml's.
	f := b.envoy.Filter
	pm := f.GetProcessingMode()
	if ep.ProcessingMode == nil {
		return errors.Join(append(errs, errors.New("no processingMode: Envoy Gateway would send nothing to tollgate"))...)
	}
	var req, resp *egModeOptions = ep.ProcessingMode.Request, ep.ProcessingMode.Response
	if err := egMode("request", req, pm.GetRequestHeaderMode(), pm.GetRequestBodyMode(), f.GetRequestAttributes()); err != nil {
		errs = append(errs, err)
	}
	if err := egMode("response", resp, pm.GetResponseHeaderMode(), pm.GetResponseBodyMode(), f.GetResponseAttributes()); err != nil {
		errs = append(errs, err)
	}
	if pm.GetRequestTrailerMode() == extprocv3.ProcessingMode_SEND || pm.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND {
		bad("envoy.yaml sends trailers, which Envoy Gateway's processingMode cannot")
	}
	if ep.ProcessingMode.AllowModeOverride != f.GetAllowModeOverride() {
		bad("allowModeOverride %v, envoy.yaml's allow_mode_override is %v", ep.ProcessingMode.AllowModeOverride, f.GetAllowModeOverride())
	}
	if open := ep.FailOpen != nil && *ep.FailOpen; open != f.GetFailureModeAllow() {
		bad("failOpen %v, envoy.yaml's failure_mode_allow is %v", open, f.GetFailureModeAllow())
	}
	var timeout time.Duration = 200 * time.Millisecond // Envoy Gateway's default
	if ep.MessageTimeout != nil {
		if timeout, err = time.ParseDuration(*ep.MessageTimeout); err != nil {
			bad("messageTimeout: %v", err)
		}
	}
	if want := f.GetMessageTimeout().AsDuration(); timeout != want {
		bad("messageTimeout %v, envoy.yaml's message_timeout is %v", timeout, want)
	}
	var writable, accessible []string
	if ep.Metadata != nil {
		writable, accessible = ep.Metadata.WritableNamespaces, ep.Metadata.AccessibleNamespaces
	}
	mo := f.GetMetadataOptions()
	if !slices.Equal(writable, mo.GetReceivingNamespaces().GetUntyped()) || !slices.Equal(accessible, mo.GetForwardingNamespaces().GetUntyped()) {
		bad("metadata writable %v / accessible %v, envoy.yaml receives %v and forwards %v", writable, accessible,
			mo.GetReceivingNamespaces().GetUntyped(), mo.GetForwardingNamespaces().GetUntyped())
	}
	// Every call in flight holds one stream: the cluster's limits must be
	// as high as envoy.yaml's tollgate cluster's.
	th := tollgateCluster(b).GetCircuitBreakers().GetThresholds()[0]
	if ep.BackendSettings == nil || ep.BackendSettings.CircuitBreaker == nil {
		bad("no backendSettings.circuitBreaker: the 1025th concurrent call would fail")
	} else {
		cb := ep.BackendSettings.CircuitBreaker
		for _, l := range []struct {
			name string
			got  *int64
			want uint32
		}{
			{"maxConnections", cb.MaxConnections, th.GetMaxConnections().GetValue()},
			{"maxPendingRequests", cb.MaxPendingRequests, th.GetMaxPendingRequests().GetValue()},
			{"maxParallelRequests", cb.MaxParallelRequests, th.GetMaxRequests().GetValue()},
		} {
			if l.got == nil || *l.got < int64(l.want) {
				bad("circuitBreaker.%s %v is below envoy.yaml's tollgate cluster (%d)", l.name, deref(l.got), l.want)
			}
		}
	}
	errs = append(errs, checkEnvoyGatewayRoutes(b, pol))
	return errors.Join(errs...)
}

// deref formats an optional field.
func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func referenceGranted(b *bundle, fromNS, toNS, service string) bool {
	for _, o := range b.egObjects {
		g, ok := o.obj.(*gwapiv1beta1.ReferenceGrant)
		if !ok || g.Namespace != toNS {
			continue
		}
		from := slices.ContainsFunc(g.Spec.From, func(f gwapiv1beta1.ReferenceGrantFrom) bool {
			return f.Group == "gateway.envoyproxy.io" && f.Kind == "EnvoyExtensionPolicy" && string(f.Namespace) == fromNS
		})
		to := slices.ContainsFunc(g.Spec.To, func(t gwapiv1beta1.ReferenceGrantTo) bool {
			return t.Group == "" && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == service)
		})
		if from && to {
			return true
		}
	}
	return false
}

// checkEnvoyGatewayRoutes checks the routes the policy targets: they exist,
// let the longest stream finish and buffer a body as large as envoy.yaml does.
func checkEnvoyGatewayRoutes(b *bundle, pol *egExtensionPolicy) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	ns := pol.Metadata.Namespace
	if len(pol.Spec.TargetRefs) == 0 {
		bad("the EnvoyExtensionPolicy targets nothing")
	}
	for _, t := range pol.Spec.TargetRefs {
		if t.Group != "gateway.networking.k8s.io" || t.Kind != "HTTPRoute" {
			bad("targetRef %s/%s: only HTTPRoutes are checked here", t.Kind, t.Name)
			continue
		}
		o, err := find(b.egObjects, "HTTPRoute", t.Name)
		if err != nil || o.namespace != ns {
			bad("targetRef HTTPRoute %s: not in %s: %v", t.Name, ns, err)
			continue
		}
		route := o.obj.(*gwapiv1.HTTPRoute)
		for i, r := range route.Spec.Rules {
			var d time.Duration
			if r.Timeouts != nil && r.Timeouts.Request != nil {
				d, _ = time.ParseDuration(string(*r.Timeouts.Request))
			}
			if longest := longestStream(b); d < longest {
				bad("HTTPRoute %s rules[%d] timeouts.request %v is below envoy.yaml's %v: long generations would be cut", t.Name, i, d, longest)
			}
			for _, br := range r.BackendRefs {
				if br.Kind != nil && *br.Kind == "Backend" {
					if _, err := find(b.egObjects, "Backend", string(br.Name)); err != nil {
						bad("HTTPRoute %s: backendRef: %v", t.Name, err)
					}
				}
			}
		}
		for _, pr := range route.Spec.ParentRefs {
			if _, err := find(b.egObjects, "Gateway", string(pr.Name)); err != nil {
				bad("HTTPRoute %s: parentRef: %v", t.Name, err)
			}
		}
		var limit int64
		for _, o := range b.egObjects {
			if p, ok := o.obj.(*egTrafficPolicy); ok && p.Metadata.Namespace == ns && p.Spec.RequestBuffer != nil &&
				slices.ContainsFunc(p.Spec.TargetRefs, func(r egTargetRef) bool { return r == t }) {
				limit = p.Spec.RequestBuffer.Limit.Value()
			}
		}
		if limit < maxBodyLimit(b) {
			bad("HTTPRoute %s: request buffer limit %d is below envoy.yaml's %d: large prompts would get 413", t.Name, limit, maxBodyLimit(b))
		}
	}
	return errors.Join(errs...)
}
