package envoyemu

import (
	"net/http"
	"strings"
	"testing"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestRequestHeaderMutations checks what an ext_proc server may change on
// the request, as the upstream sees it.
//
// Envoy: mutation_utils.cc applyHeaderMutations with the default
// HeaderMutationRules (mutation_rules.cc): "host", ":authority", ":method",
// ":scheme" and x-envoy-* changes are ignored (":method" is allowed with
// CONTINUE_AND_REPLACE); pseudo-headers and "host" cannot be removed or
// appended to; only the deprecated "append" (default false) is read, not
// append_action (envoyproxy/envoy#36982); values are read from raw_value
// only, so a value-only HeaderValue sets an empty header
// (envoyproxy/envoy#31555); both set, or an invalid character, is an error
// answered 500.
func TestRequestHeaderMutations(t *testing.T) {
	hv := func(k string, v string) *corev3.HeaderValueOption { return setHeader(k, v) }
	tests := []struct {
		name       string
		mutation   *extprocsvc.HeaderMutation
		replace    bool
		honor      bool
		wantStatus int
		check      func(t *testing.T, r *http.Request)
	}{
		{name: "set new header and replace credential", mutation: &extprocsvc.HeaderMutation{
			SetHeaders:    []*corev3.HeaderValueOption{hv("x-tollgate-consumer", "alice"), hv("authorization", "Bearer sk-provider")},
			RemoveHeaders: []string{"x-api-key"}},
			check: func(t *testing.T, r *http.Request) {
				if r.Header.Get("X-Tollgate-Consumer") != "alice" || r.Header.Get("Authorization") != "Bearer sk-provider" || r.Header.Get("X-Api-Key") != "" {
					t.Errorf("upstream headers %v", r.Header)
				}
			}},
		{name: "append true adds a value", mutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			{Header: &corev3.HeaderValue{Key: "x-tag", RawValue: []byte("b")}, Append: wrapperspb.Bool(true)}}},
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Values("X-Tag"); strings.Join(got, ",") != "a,b" {
					t.Errorf("x-tag = %v", got)
				}
			}},
		{name: "append_action is ignored: ADD_IF_ABSENT overwrites", mutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			{Header: &corev3.HeaderValue{Key: "x-tag", RawValue: []byte("b")}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT}}},
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Values("X-Tag"); strings.Join(got, ",") != "b" {
					t.Errorf("x-tag = %v", got)
				}
			}},
		{name: "append_action honoured on request", honor: true, mutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			{Header: &corev3.HeaderValue{Key: "x-tag", RawValue: []byte("b")}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT}}},
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Values("X-Tag"); strings.Join(got, ",") != "a" {
					t.Errorf("x-tag = %v", got)
				}
			}},
		{name: "protected headers are ignored", mutation: &extprocsvc.HeaderMutation{
			SetHeaders:    []*corev3.HeaderValueOption{hv("x-envoy-upstream-rq-timeout-ms", "1"), hv(":method", "DELETE"), hv(":authority", "evil.example"), hv("host", "evil.example")},
			RemoveHeaders: []string{":path", "host"}},
			check: func(t *testing.T, r *http.Request) {
				if r.Method != http.MethodPost || r.Header.Get("X-Envoy-Upstream-Rq-Timeout-Ms") != "" || r.URL.Path != "/v1/chat/completions" {
					t.Errorf("upstream got %s %s %v", r.Method, r.URL.Path, r.Header)
				}
			}},
		{name: ":method may change with CONTINUE_AND_REPLACE", replace: true, mutation: &extprocsvc.HeaderMutation{
			SetHeaders: []*corev3.HeaderValueOption{hv(":method", "PUT")}},
			check: func(t *testing.T, r *http.Request) {
				if r.Method != http.MethodPut {
					t.Errorf("method = %s", r.Method)
				}
			}},
		{name: ":path may change", mutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{hv(":path", "/v1/responses?a=b")}},
			check: func(t *testing.T, r *http.Request) {
				if r.URL.Path != "/v1/responses" || r.URL.RawQuery != "a=b" {
					t.Errorf("upstream path = %s?%s", r.URL.Path, r.URL.RawQuery)
				}
			}},
		{name: "value without raw_value sets an empty header", mutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			{Header: &corev3.HeaderValue{Key: "x-tollgate-consumer", Value: "alice"}}}},
			check: func(t *testing.T, r *http.Request) {
				if v, ok := r.Header["X-Tollgate-Consumer"]; !ok || v[0] != "" {
					t.Errorf("x-tollgate-consumer = %q, %v", v, ok)
				}
			}},
		{name: "value and raw_value both set is an error", wantStatus: 500, mutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			{Header: &corev3.HeaderValue{Key: "x-a", Value: "1", RawValue: []byte("1")}}}}},
		{name: "invalid character is an error", wantStatus: 500, mutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{hv("x-a", "a\r\nb")}}},
		{name: "invalid name in remove is an error", wantStatus: 500, mutation: &extprocsvc.HeaderMutation{RemoveHeaders: []string{"bad name"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstreamRecorder{}
			e := newEnv(t, shippedFilter(t), func(s *serverStream) error {
				return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					if req.GetRequestHeaders() == nil {
						return nil
					}
					cr := &extprocsvc.CommonResponse{HeaderMutation: tt.mutation}
					if tt.replace {
						cr.Status = extprocsvc.CommonResponse_CONTINUE_AND_REPLACE
					}
					return answer(req, cr)
				})
			}, up, func(o *Options) { o.HonorAppendAction = tt.honor })
			resp, _, err := e.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`,
				http.Header{"X-Tag": {"a"}, "X-Api-Key": {"tg-key"}})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantStatus
			if want == 0 {
				want = 200
			}
			if resp.StatusCode != want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, want)
			}
			if want != 200 {
				if up.count() != 0 {
					t.Error("request with a refused mutation reached the upstream")
				}
				return
			}
			r, _ := up.last(t)
			tt.check(t, r)
		})
	}
}

// TestResponseHeaderMutations checks mutations of the response headers,
// including :status, and that content-length cannot be set in STREAMED mode.
//
// Envoy: the same mutation rules apply to responses; ":status" must be a
// number >= 200 (Checker::isValidValue); mutations drop content-length when
// shouldRemoveContentLength (remove_content_length in applyHeaderMutations).
func TestResponseHeaderMutations(t *testing.T) {
	e := newEnv(t, shippedFilter(t), func(s *serverStream) error {
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if req.GetResponseHeaders() == nil {
				return nil
			}
			return answer(req, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{setHeader(":status", "201"), setHeader("x-ratelimit-remaining-tokens", "42"),
					setHeader("content-length", "999")},
				RemoveHeaders: []string{"x-upstream-secret"}}})
		})
	}, &upstreamRecorder{reply: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Upstream-Secret", "s")
		_, _ = w.Write([]byte("hello"))
	}})
	resp, body, err := e.do(t, http.MethodGet, "/v1/models", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || resp.Header.Get("X-Ratelimit-Remaining-Tokens") != "42" || resp.Header.Get("X-Upstream-Secret") != "" {
		t.Errorf("client got %d %v", resp.StatusCode, resp.Header)
	}
	if body != "hello" || resp.Header.Get("Content-Length") == "999" {
		t.Errorf("body %q with content-length %q", body, resp.Header.Get("Content-Length"))
	}
}

// TestMutationRulesConfigured checks configured mutation_rules are applied:
// disallow_is_error turns an ignored mutation into a 500.
//
// Envoy: Checker::check returns FAIL instead of IGNORE with
// disallow_is_error, and applyHeaderMutations answers it with an error.
func TestMutationRulesConfigured(t *testing.T) {
	f := shippedFilter(t)
	f.MutationRules = &mutationrulesv3.HeaderMutationRules{DisallowIsError: wrapperspb.Bool(true)}
	e := newEnv(t, f, func(s *serverStream) error {
		return s.answerAll(func(req *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if req.GetRequestHeaders() == nil {
				return nil
			}
			return answer(req, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{setHeader("x-envoy-foo", "1")}}})
		})
	}, &upstreamRecorder{})
	if resp, _, err := e.do(t, http.MethodGet, "/v1/models", "", nil); err != nil || resp.StatusCode != 500 {
		t.Fatalf("%v %v", resp, err)
	}
}
