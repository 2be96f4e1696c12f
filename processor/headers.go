package processor

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// headers is a read-only view of the headers Envoy sent. Envoy sends names
// in lower case, and values in raw_value (value only when configured for
// it), so both are read.
type headers struct {
	list []*corev3.HeaderValue
}

func (h headers) get(name string) (string, bool) {
	for _, hv := range h.list {
		if hv.GetKey() == name {
			return headerValue(hv), true
		}
	}
	return "", false
}

// raw returns the header's value without copying it: it is valid as long
// as the message holding the headers.
func (h headers) raw(name string) []byte {
	for _, hv := range h.list {
		if hv.GetKey() == name {
			if raw := hv.GetRawValue(); len(raw) > 0 {
				return raw
			}
			return []byte(hv.GetValue())
		}
	}
	return nil
}

func (h headers) value(name string) string {
	v, _ := h.get(name)
	return v
}

func headerValue(hv *corev3.HeaderValue) string {
	if raw := hv.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return hv.GetValue()
}

// cookie returns the value of cookie name from the cookie headers.
func (h headers) cookie(name string) (string, bool) {
	for _, hv := range h.list {
		if hv.GetKey() != "cookie" {
			continue
		}
		for part := range strings.SplitSeq(headerValue(hv), ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return v, true
			}
		}
	}
	return "", false
}

// mutation collects header changes for one response to Envoy.
type mutation struct {
	set    []*corev3.HeaderValueOption
	remove []string
}

// setHeader replaces the header. Envoy's ext_proc reads only the value's
// raw_value and only the old append flag (false, the default, overwrites);
// it ignores append_action.
func (m *mutation) setHeader(name, value string) {
	m.setRaw(name, []byte(value))
}

// setHeaderInt sets the header to a decimal integer.
func (m *mutation) setHeaderInt(name string, v int64) {
	var b [20]byte
	m.setRaw(name, append([]byte(nil), strconv.AppendInt(b[:0], v, 10)...))
}

// setRaw sets the header to value, which the mutation keeps. The option and
// its header are one allocation, and the list starts with room for a
// response's usual few: a request's headers cost few allocations.
func (m *mutation) setRaw(name string, value []byte) {
	e := &headerEntry{}
	e.hv.Key, e.hv.RawValue = name, value
	e.opt.Header = &e.hv
	if m.set == nil {
		m.set = make([]*corev3.HeaderValueOption, 0, 4)
	}
	m.set = append(m.set, &e.opt)
}

// headerEntry holds a header to set and its option together.
type headerEntry struct {
	opt corev3.HeaderValueOption
	hv  corev3.HeaderValue
}

func (m *mutation) removeHeader(name string) {
	for _, r := range m.remove {
		if r == name {
			return
		}
	}
	m.remove = append(m.remove, name)
}

func (m *mutation) empty() bool { return len(m.set) == 0 && len(m.remove) == 0 }

func (m *mutation) proto() *extprocv3.HeaderMutation {
	if m.empty() {
		return nil
	}
	return &extprocv3.HeaderMutation{SetHeaders: m.set, RemoveHeaders: m.remove}
}

// isReservedHeader reports whether a client-sent header must be removed
// before anything else: tollgate's own headers and Higress's consumer
// header, which upstream services trust.
func isReservedHeader(name string) bool {
	return strings.HasPrefix(name, "x-tollgate-") || name == "x-mse-consumer"
}
