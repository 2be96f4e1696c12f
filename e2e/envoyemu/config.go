package envoyemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"

	// Every typed extension that tollgate's envoy.yaml names must be
	// registered, or protojson cannot resolve its "@type" and the file
	// fails to load, exactly as it would fail in Envoy.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// ExtProcFilterName is the name Envoy gives the ext_proc HTTP filter; it keys
// typed_per_filter_config and ProcessingRequest.attributes.
const ExtProcFilterName = "envoy.filters.http.ext_proc"

// Config is what the emulator takes from an Envoy bootstrap: the ext_proc
// filter and the route table in front of it.
type Config struct {
	// Filter is the listener's ext_proc filter configuration.
	Filter *extprocv3.ExternalProcessor
	// Routes is the first virtual host's route table, in matching order.
	Routes []Route
	// VirtualHostExtProc is the virtual host's ExtProcPerRoute, merged under
	// each route's own (nil when the virtual host has none).
	VirtualHostExtProc *extprocv3.ExtProcPerRoute
	// AccessLogFormat is the json_format of the connection manager's stdout
	// access log, nil when there is none.
	AccessLogFormat *structpb.Struct
}

// Route is one entry of the route table.
type Route struct {
	// Name is the route's name, what the xds.route_name attribute carries.
	Name string
	// Prefix matches paths starting with it; empty when Path is set.
	Prefix string
	// Path matches this exact path.
	Path string
	// ExtProc is the route's ExtProcPerRoute, nil when it has none.
	ExtProc *extprocv3.ExtProcPerRoute
	// DirectResponse, when set, answers the request without an upstream.
	DirectResponse *DirectResponse
	// Timeout bounds the upstream response from the end of the request to
	// the end of the response; zero disables it, as in Envoy.
	Timeout time.Duration
	// RequestBodyLimit caps a buffered request body; zero means Envoy's
	// default per-connection buffer limit.
	RequestBodyLimit int64
}

// DirectResponse is a route's direct_response action.
type DirectResponse struct {
	Status int
	Body   string
}

// matches reports whether path selects this route.
func (r Route) matches(path string) bool {
	if r.Path != "" {
		return path == r.Path
	}
	return len(path) >= len(r.Prefix) && path[:len(r.Prefix)] == r.Prefix
}

// LoadBootstrap reads an Envoy v3 bootstrap from a YAML file the way Envoy
// does: unknown fields, unknown "@type"s and values that break the API's
// validation rules (including inside every typed_config) are errors.
func LoadBootstrap(path string) (*bootstrapv3.Bootstrap, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read Envoy bootstrap: %w", err)
	}
	b, err := ParseBootstrap(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// ParseBootstrap is LoadBootstrap for YAML already in memory.
func ParseBootstrap(raw []byte) (*bootstrapv3.Bootstrap, error) {
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("cannot parse YAML: %w", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("cannot convert YAML to JSON: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("cannot decode bootstrap: %w", err)
	}
	if err := validateDeep(&b); err != nil {
		return nil, err
	}
	return &b, nil
}

// validator is implemented by every go-control-plane message (protoc-gen-validate).
type validator interface{ ValidateAll() error }

// validateDeep runs the API's validation rules on m and on the message packed
// in every Any below it: the generated ValidateAll stops at an Any, so a
// typo'd value inside a typed_config would otherwise pass unnoticed.
func validateDeep(m proto.Message) error {
	var errs []error
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot unpack %s: %w", a.GetTypeUrl(), err))
			return
		}
		if err := validateDeep(inner); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.GetTypeUrl(), err))
		}
	})
	return errors.Join(errs...)
}

// walkAnys calls fn for every google.protobuf.Any directly reachable from m
// (not inside another Any: validateDeep recurses into those itself).
func walkAnys(m protoreflect.Message, fn func(*anypb.Any)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				visitMessage(mv.Message(), fn)
				return true
			})
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visitMessage(l.Get(i).Message(), fn)
			}
		case fd.Message() != nil:
			visitMessage(v.Message(), fn)
		}
		return true
	})
}

func visitMessage(m protoreflect.Message, fn func(*anypb.Any)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		fn(a)
		return
	}
	walkAnys(m, fn)
}

// LoadFilterConfig returns the ext_proc filter settings of the Envoy bootstrap
// at path, so that the emulator runs with the configuration tollgate ships.
func LoadFilterConfig(path string) (*extprocv3.ExternalProcessor, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return cfg.Filter, nil
}

// LoadConfig reads the ext_proc filter, the route table and the access log
// format of the first HTTP connection manager that has an ext_proc filter.
func LoadConfig(path string) (*Config, error) {
	b, err := LoadBootstrap(path)
	if err != nil {
		return nil, err
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(&hcm) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					return nil, fmt.Errorf("%s: cannot unpack http_connection_manager: %w", path, err)
				}
				cfg, err := configFromHCM(&hcm)
				if err != nil {
					return nil, fmt.Errorf("%s: listener %q: %w", path, l.GetName(), err)
				}
				if cfg != nil {
					return cfg, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%s: no http_connection_manager with an %s filter", path, ExtProcFilterName)
}

func configFromHCM(hcm *hcmv3.HttpConnectionManager) (*Config, error) {
	var cfg Config
	for _, hf := range hcm.GetHttpFilters() {
		var ep extprocv3.ExternalProcessor
		if hf.GetTypedConfig() == nil || !hf.GetTypedConfig().MessageIs(&ep) {
			continue
		}
		if err := hf.GetTypedConfig().UnmarshalTo(&ep); err != nil {
			return nil, fmt.Errorf("cannot unpack ext_proc filter: %w", err)
		}
		cfg.Filter = &ep
	}
	if cfg.Filter == nil {
		return nil, nil
	}
	vhosts := hcm.GetRouteConfig().GetVirtualHosts()
	if len(vhosts) == 0 {
		return nil, errors.New("route_config has no virtual host")
	}
	vh := vhosts[0]
	pr, err := perRouteExtProc(vh.GetTypedPerFilterConfig())
	if err != nil {
		return nil, fmt.Errorf("virtual host %q: %w", vh.GetName(), err)
	}
	cfg.VirtualHostExtProc = pr
	vhLimit := int64(vh.GetRequestBodyBufferLimit().GetValue())
	for i, r := range vh.GetRoutes() {
		route, err := routeFrom(r, vhLimit)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		cfg.Routes = append(cfg.Routes, route)
	}
	for _, al := range hcm.GetAccessLog() {
		var so streamv3.StdoutAccessLog
		if al.GetTypedConfig() != nil && al.GetTypedConfig().MessageIs(&so) {
			if err := al.GetTypedConfig().UnmarshalTo(&so); err != nil {
				return nil, fmt.Errorf("cannot unpack stdout access log: %w", err)
			}
			cfg.AccessLogFormat = so.GetLogFormat().GetJsonFormat()
		}
	}
	return &cfg, nil
}

func routeFrom(r *routev3.Route, vhLimit int64) (Route, error) {
	out := Route{
		Name:             r.GetName(),
		Prefix:           r.GetMatch().GetPrefix(),
		Path:             r.GetMatch().GetPath(),
		RequestBodyLimit: vhLimit,
	}
	if out.Prefix == "" && out.Path == "" {
		return out, fmt.Errorf("route %q: only prefix and path matches are emulated", r.GetName())
	}
	pr, err := perRouteExtProc(r.GetTypedPerFilterConfig())
	if err != nil {
		return out, fmt.Errorf("route %q: %w", r.GetName(), err)
	}
	out.ExtProc = pr
	if l := r.GetRequestBodyBufferLimit(); l != nil {
		out.RequestBodyLimit = int64(l.GetValue())
	}
	if d := r.GetDirectResponse(); d != nil {
		out.DirectResponse = &DirectResponse{Status: int(d.GetStatus()), Body: d.GetBody().GetInlineString()}
	}
	if t := r.GetRoute().GetTimeout(); t != nil {
		out.Timeout = t.AsDuration()
	} else if r.GetRoute() != nil {
		// Envoy's default route timeout.
		out.Timeout = 15 * time.Second
	}
	return out, nil
}

func perRouteExtProc(m map[string]*anypb.Any) (*extprocv3.ExtProcPerRoute, error) {
	a, ok := m[ExtProcFilterName]
	if !ok {
		return nil, nil
	}
	var pr extprocv3.ExtProcPerRoute
	if err := a.UnmarshalTo(&pr); err != nil {
		return nil, fmt.Errorf("cannot unpack %s per-route config: %w", ExtProcFilterName, err)
	}
	return &pr, nil
}
