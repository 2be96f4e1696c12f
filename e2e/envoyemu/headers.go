package envoyemu

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// maxHeaders is Envoy's default max_request_headers_count; ext_proc refuses
// mutations that would exceed it.
const maxHeaders = 100

// header is one header line; keys are lower-case, as Envoy keeps them.
type header struct{ key, value string }

// headerMap is an ordered header list with HTTP/2 pseudo-headers (":path",
// ":status", ...) as ordinary entries, as in Envoy's HeaderMap.
type headerMap []header

func (h headerMap) get(k string) (string, bool) {
	for _, e := range h {
		if e.key == k {
			return e.value, true
		}
	}
	return "", false
}

func (h headerMap) has(k string) bool { _, ok := h.get(k); return ok }

// set replaces every value of k with v, keeping the position of the first.
func (h *headerMap) set(k, v string) {
	out := (*h)[:0]
	done := false
	for _, e := range *h {
		if e.key != k {
			out = append(out, e)
		} else if !done {
			out = append(out, header{k, v})
			done = true
		}
	}
	if !done {
		out = append(out, header{k, v})
	}
	*h = out
}

func (h *headerMap) add(k, v string) { *h = append(*h, header{k, v}) }

func (h *headerMap) del(k string) {
	out := (*h)[:0]
	for _, e := range *h {
		if e.key != k {
			out = append(out, e)
		}
	}
	*h = out
}

// proto encodes the headers as Envoy sends them: values in raw_value bytes
// (the send_header_raw_value behaviour, on by default).
func (h headerMap) proto() *corev3.HeaderMap {
	out := &corev3.HeaderMap{}
	for _, e := range h {
		out.Headers = append(out.Headers, &corev3.HeaderValue{Key: e.key, RawValue: []byte(e.value)})
	}
	return out
}

// The header mutation checker follows Envoy's mutation_rules Checker: with no
// rules configured, "host", ":authority", ":method", ":scheme" and x-envoy-*
// headers may not be changed (the change is ignored), pseudo-headers may not
// be appended to, and "host" and pseudo-headers may never be removed.
type checker struct {
	allowAllRouting, allowEnvoy, disallowSystem, disallowAll, disallowIsError bool
	allow, disallow                                                           *regexp.Regexp
}

type checkOp int

const (
	opSet checkOp = iota
	opAppend
	opRemove
)

type checkResult int

const (
	resOK checkResult = iota
	resIgnore
	resFail
)

func newChecker(r *mutationrulesv3.HeaderMutationRules) (*checker, error) {
	c := &checker{
		allowAllRouting: r.GetAllowAllRouting().GetValue(),
		allowEnvoy:      r.GetAllowEnvoy().GetValue(),
		disallowSystem:  r.GetDisallowSystem().GetValue(),
		disallowAll:     r.GetDisallowAll().GetValue(),
		disallowIsError: r.GetDisallowIsError().GetValue(),
	}
	var err error
	if re := r.GetAllowExpression().GetRegex(); re != "" {
		if c.allow, err = regexp.Compile(re); err != nil {
			return nil, fmt.Errorf("mutation_rules.allow_expression: %w", err)
		}
	}
	if re := r.GetDisallowExpression().GetRegex(); re != "" {
		if c.disallow, err = regexp.Compile(re); err != nil {
			return nil, fmt.Errorf("mutation_rules.disallow_expression: %w", err)
		}
	}
	return c, nil
}

func (c *checker) check(op checkOp, name, value string) checkResult {
	if c.allowed(op, name) && (op == opRemove || validValue(name, value)) {
		return resOK
	}
	if c.disallowIsError {
		return resFail
	}
	return resIgnore
}

func (c *checker) allowed(op checkOp, name string) bool {
	if op == opRemove && (strings.HasPrefix(name, ":") || name == "host") {
		return false
	}
	if c.disallow != nil && fullMatch(c.disallow, name) {
		return false
	}
	if c.allow != nil && fullMatch(c.allow, name) {
		return true
	}
	if c.disallowAll {
		return false
	}
	switch name {
	case "host", ":authority", ":method", ":scheme":
		if !c.allowAllRouting {
			return false
		}
	}
	if strings.HasPrefix(name, ":") && (op == opAppend || c.disallowSystem) {
		return false
	}
	if !c.allowEnvoy && strings.HasPrefix(name, "x-envoy") {
		return false
	}
	return true
}

// fullMatch is Envoy's regex match: the whole string, not a substring.
func fullMatch(re *regexp.Regexp, s string) bool {
	loc := re.FindStringIndex(s)
	return loc != nil && loc[0] == 0 && loc[1] == len(s)
}

func validValue(name, value string) bool {
	if !strings.HasPrefix(name, ":") && !headerValueIsValid(value) {
		return false
	}
	switch name {
	case "host", ":authority":
		return value != "" && !strings.ContainsAny(value, " \t/?#@")
	case ":scheme":
		return value == "http" || value == "https"
	case ":status":
		n, err := strconv.Atoi(value)
		return err == nil && n >= 200
	}
	return true
}

// headerNameIsValid is RFC 9110's token for ordinary names; pseudo-header
// names must be lower-case tokens after the colon.
func headerNameIsValid(k string) bool {
	name := strings.TrimPrefix(k, ":")
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok && len(k) == len(name) {
			ok = c >= 'A' && c <= 'Z'
		}
		if !ok {
			return false
		}
	}
	return true
}

// headerValueIsValid rejects NUL, CR, LF and other control characters but
// horizontal tab, as nghttp2 does.
func headerValueIsValid(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// errMutation marks a mutation Envoy refuses with an error (answered with a
// local reply), as opposed to one it silently ignores.
var errMutation = errors.New("invalid mutation")

// mutateOptions are the facts of the current message that change how a
// mutation applies.
type mutateOptions struct {
	// replacing is true for a CONTINUE_AND_REPLACE answer, which may set
	// ":method".
	replacing bool
	// dropContentLength skips any content-length the server sets, in the
	// body modes where Envoy cannot vouch for it.
	dropContentLength bool
	// honorAppendAction applies HeaderValueOption.append_action; Envoy's
	// ext_proc ignores it and reads only the deprecated append (default
	// false, i.e. overwrite).
	honorAppendAction bool
}

// applyHeaderMutation changes h as Envoy's ext_proc mutation_utils does.
func applyHeaderMutation(m *extprocsvc.HeaderMutation, h *headerMap, c *checker, o mutateOptions) error {
	if m == nil {
		return nil
	}
	if len(m.GetRemoveHeaders()) > maxHeaders || len(m.GetSetHeaders()) > maxHeaders {
		return fmt.Errorf("%w: header mutation exceeds the header count limit", errMutation)
	}
	for _, name := range m.GetRemoveHeaders() {
		if !headerNameIsValid(name) {
			return fmt.Errorf("%w: invalid character in remove_headers mutation", errMutation)
		}
		k := strings.ToLower(name)
		switch c.check(opRemove, k, "") {
		case resOK:
			h.del(k)
		case resFail:
			return fmt.Errorf("%w: invalid attempt to remove %s", errMutation, k)
		}
	}
	for _, sh := range m.GetSetHeaders() {
		hv := sh.GetHeader()
		if hv == nil {
			continue
		}
		k := strings.ToLower(hv.GetKey())
		if o.dropContentLength && k == "content-length" {
			continue
		}
		if hv.GetValue() != "" && len(hv.GetRawValue()) != 0 {
			return fmt.Errorf("%w: only one of value or raw_value in the HeaderValue message should be set", errMutation)
		}
		// Envoy reads raw_value only: a mutation that fills in value alone
		// sets the header to the empty string (envoyproxy/envoy#31555).
		v := string(hv.GetRawValue())
		if !headerNameIsValid(hv.GetKey()) || !headerValueIsValid(v) {
			return fmt.Errorf("%w: invalid character in set_headers mutation", errMutation)
		}
		add, present := appendMode(sh, h.has(k), o.honorAppendAction)
		if !present {
			continue
		}
		op := opSet
		if add && h.has(k) {
			op = opAppend
		}
		res := c.check(op, k, v)
		if o.replacing && k == ":method" {
			res = resOK
		}
		switch res {
		case resOK:
			if add {
				h.add(k, v)
			} else {
				h.set(k, v)
			}
		case resFail:
			return fmt.Errorf("%w: invalid attempt to modify %s", errMutation, k)
		}
	}
	if len(*h) > maxHeaders {
		return fmt.Errorf("%w: header mutation leaves %d headers, over the limit of %d", errMutation, len(*h), maxHeaders)
	}
	return nil
}

// appendMode returns whether the value is added next to existing ones (else
// it replaces them), and whether the option applies at all.
func appendMode(sh *corev3.HeaderValueOption, exists, honorAppendAction bool) (add, applies bool) {
	if !honorAppendAction || sh.GetAppend() != nil {
		return sh.GetAppend().GetValue(), true
	}
	switch sh.GetAppendAction() {
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		return true, !exists
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		return false, exists
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		return false, true
	default:
		return true, true
	}
}

// applyBodyMutation returns data changed by m, and false when m is a
// streamed_response, which only FULL_DUPLEX_STREAMED accepts.
func applyBodyMutation(m *extprocsvc.BodyMutation, data []byte) ([]byte, bool) {
	switch mu := m.GetMutation().(type) {
	case *extprocsvc.BodyMutation_Body:
		return mu.Body, true
	case *extprocsvc.BodyMutation_ClearBody:
		if mu.ClearBody {
			return nil, true
		}
	case *extprocsvc.BodyMutation_StreamedResponse:
		return data, false
	}
	return data, true
}
