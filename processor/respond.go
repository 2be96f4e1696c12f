package processor

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tollgate-ai/tollgate/processor/usage"
	"github.com/tollgate-ai/tollgate/telemetry"
)

// apiError is a refusal tollgate answers itself, in the error format of the
// API the client called, so that SDKs surface it as they would the
// provider's own error.
type apiError struct {
	status int
	// kind is the error type: OpenAI's "type" (e.g. invalid_request_error,
	// insufficient_quota) and, mapped, Anthropic's.
	kind string
	// code is OpenAI's machine-readable "code".
	code    string
	message string
	headers mutation
	// raw, when set, is sent as the body instead: an operator's own JSON
	// refusal (Higress sends rejected_msg as written).
	raw []byte
	// decision and rule are what telemetry records of the refusal.
	decision telemetry.Decision
	rule     string
	// downgrade is the cheaper model the refused request may go on with.
	downgrade string
}

func (e *apiError) body(api usage.API) []byte {
	if e.raw != nil {
		return e.raw
	}
	var v any
	if api == usage.APIAnthropicMessages {
		v = map[string]any{"type": "error", "error": map[string]string{"type": anthropicKind(e.status), "message": e.message}}
	} else {
		v = map[string]any{"error": map[string]any{"message": e.message, "type": e.kind, "code": e.code, "param": nil}}
	}
	b, _ := json.Marshal(v)
	return b
}

// anthropicKind maps a status to the error type Anthropic's API uses for it.
func anthropicKind(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 503, 529:
		return "overloaded_error"
	default:
		return "api_error"
	}
}

func immediate(status int, contentType string, body []byte, m *mutation) *extprocv3.ProcessingResponse {
	if m == nil {
		m = &mutation{}
	}
	m.setHeader("content-type", contentType)
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ImmediateResponse{
			ImmediateResponse: &extprocv3.ImmediateResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
				Headers: m.proto(),
				Body:    body,
				Details: "tollgate",
			},
		},
	}
}

func (e *apiError) response(api usage.API) *extprocv3.ProcessingResponse {
	return immediate(e.status, "application/json", e.body(api), &e.headers)
}

func errUnauthenticated(msg string) *apiError {
	e := &apiError{status: 401, kind: "invalid_request_error", code: "invalid_api_key", message: msg, decision: telemetry.Unauthenticated}
	e.headers.setHeader("www-authenticate", `Bearer realm="tollgate"`)
	return e
}

func errBadRequest(msg string) *apiError {
	return &apiError{status: 400, kind: "invalid_request_error", code: "invalid_request", message: msg, decision: telemetry.BadRequest}
}

// retryAfter formats a delay as whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// resetFormat writes a delay the way OpenAI's x-ratelimit-reset-* headers
// do ("1s", "6m0s", "20ms").
func resetFormat(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return d.Round(time.Millisecond).String()
}
