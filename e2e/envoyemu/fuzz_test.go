package envoyemu

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// FuzzApplyHeaderMutation feeds arbitrary HeaderMutation messages to the
// mutation code and checks the invariants Envoy's default rules guarantee:
// routing pseudo-headers and x-envoy-* stay as they were, no invalid value
// gets in, and the header count stays within the limit.
func FuzzApplyHeaderMutation(f *testing.F) {
	seeds := []*extprocsvc.HeaderMutation{
		{SetHeaders: []*corev3.HeaderValueOption{setHeader("x-a", "1"), setHeader(":method", "DELETE")}, RemoveHeaders: []string{":path", "host", "x-b"}},
		{SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-a", RawValue: []byte("v")}, Append: wrapperspb.Bool(true)}}},
		{SetHeaders: []*corev3.HeaderValueOption{setHeader("x-envoy-x", "1"), setHeader("x-c", "a\r\nb")}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	c, err := newChecker(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m extprocsvc.HeaderMutation
		if proto.Unmarshal(raw, &m) != nil {
			return
		}
		h := headerMap{{":authority", "api.example"}, {":path", "/v1/x"}, {":method", "POST"}, {":scheme", "http"}, {"x-b", "2"}}
		if err := applyHeaderMutation(&m, &h, c, mutateOptions{}); err != nil {
			return
		}
		for k, want := range map[string]string{":authority": "api.example", ":method": "POST", ":scheme": "http"} {
			if got, _ := h.get(k); got != want {
				t.Fatalf("%s changed to %q", k, got)
			}
		}
		if len(h) > maxHeaders {
			t.Fatalf("%d headers", len(h))
		}
		for _, e := range h {
			if strings.HasPrefix(e.key, "x-envoy") {
				t.Fatalf("%s set", e.key)
			}
			if !strings.HasPrefix(e.key, ":") && !headerValueIsValid(e.value) {
				t.Fatalf("invalid value %q for %s", e.value, e.key)
			}
		}
	})
}
