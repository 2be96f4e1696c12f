package limiter

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/tollgate-ai/tollgate/ledger"
)

// Request holds the attributes of one request that rules match on. The
// processor fills it; a nil func reads as "absent".
type Request struct {
	// Consumer is the authenticated consumer's name, empty when anonymous.
	Consumer string
	// Model is the model named in the request body.
	Model string
	// Path is the request's :path (a query string, if any, is part of it).
	Path string
	// Host is the request's :authority; a port is ignored.
	Host string
	// Route is the name of the Envoy route that took the request.
	Route string
	// IP is the peer address (for limit_by_per_ip: from-remote-addr).
	IP netip.Addr
	// Header returns a request header by its lower-case name.
	Header func(name string) (string, bool)
	// Query returns the first value of a query parameter, URL-decoded.
	Query func(name string) (string, bool)
	// Cookie returns the value of a cookie.
	Cookie func(name string) (string, bool)
}

// Rules is a compiled Config. It is immutable and safe for concurrent use.
type Rules struct {
	rules  []rule
	byName map[string]*rule
}

// Rejection is how a refusal by a rule is answered.
type Rejection struct {
	// Code is the HTTP status: the rule's rejected_code, 429 by default.
	Code int
	// Message is the rule's rejected_msg or, when it has none, a sentence
	// naming the rule, the window and its limit.
	Message string
	// Custom tells that Message is the operator's rejected_msg, to be sent
	// as the response body as it is (Higress sends it so; it may be JSON).
	// Otherwise Message belongs inside an OpenAI-style error object.
	Custom bool
	// Downgrade, when set, is the cheaper model the request goes on with
	// instead of being refused (if that model's limits allow it).
	Downgrade string
}

type rule struct {
	name         string
	scope        scope
	global       []ledger.Window
	globalTokens bool
	items        []item
	rejection    Rejection
}

type kind uint8

const (
	kindHeader kind = iota
	kindParam
	kindCookie
	kindConsumer
	kindModel
	kindIP
)

type item struct {
	kind kind
	per  bool
	// name is the header, parameter or cookie read; for kindIP the header
	// holding the address, or empty for the peer address.
	name string
	// source names what is read, in keys and digests: "header=x-api-key".
	source string
	keys   []limitKey
}

type limitKey struct {
	pat    pattern
	prefix netip.Prefix // kindIP only; invalid when pat.any
	specs  []windowSpec
	// fixed holds the windows when their keys do not depend on the value:
	// an exact key, or a pattern whose matches share one counter.
	fixed  []ledger.Window
	tokens bool
}

type pattern struct {
	any   bool
	re    *regexp.Regexp
	exact string
}

func (p *pattern) isExact() bool { return !p.any && p.re == nil }

func (p *pattern) matches(v string) bool {
	switch {
	case p.any:
		return true
	case p.re != nil:
		return p.re.MatchString(v)
	default:
		return v == p.exact
	}
}

type scope struct {
	all        bool
	pathPrefix string
	host       string // lower case
	hostSuffix string // ".example.com" for "*.example.com"
	route      string
	model      *pattern
}

func (s *scope) matches(req *Request) bool {
	if s.all {
		return true
	}
	if s.pathPrefix != "" && !strings.HasPrefix(req.Path, s.pathPrefix) {
		return false
	}
	if s.route != "" && req.Route != s.route {
		return false
	}
	if s.host != "" || s.hostSuffix != "" {
		h := hostOnly(req.Host)
		if s.host != "" && !strings.EqualFold(h, s.host) {
			return false
		}
		if s.hostSuffix != "" && (len(h) <= len(s.hostSuffix) || !strings.EqualFold(h[len(h)-len(s.hostSuffix):], s.hostSuffix)) {
			return false
		}
	}
	if s.model != nil && (req.Model == "" || !s.model.matches(req.Model)) {
		return false
	}
	return true
}

// hostOnly drops the port of an authority.
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			return h[1:end]
		}
		return h
	}
	if i := strings.IndexByte(h, ':'); i >= 0 && strings.LastIndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

// Empty reports whether there are no rules.
func (r *Rules) Empty() bool { return r == nil || len(r.rules) == 0 }

// Match appends to dst every window that applies to req and returns the
// extended slice. Windows come in rule order (token_ratelimit, then
// request_ratelimit, each as written); within a rule the global threshold
// comes first, then the matched key's windows from the shortest.
//
// Keys that do not depend on the request are built at Compile time; the
// keys of per-value counters all share one string, so a call allocates at
// most once besides growing dst.
func (r *Rules) Match(req *Request, dst []ledger.Window) []ledger.Window {
	if r == nil {
		return dst
	}
	for i := range r.rules {
		ru := &r.rules[i]
		if !ru.scope.matches(req) {
			continue
		}
		dst = append(dst, ru.global...)
		it, k, v, ok := ru.find(req)
		if !ok {
			continue
		}
		if it.keys[k].fixed == nil {
			return r.matchPerValue(req, dst, i, it, &it.keys[k], &v)
		}
		dst = append(dst, it.keys[k].fixed...)
	}
	return dst
}

// matchPerValue goes on with Match from rule i, whose matched key lk counts
// per value. It stays out of Match so that requests matching only
// precomputed keys do not pay for its buffers.
//
// Per-value windows are appended with an empty Key while their tags are
// gathered back to back in tags; fillKeys then writes every key into one
// string. The buffers start on this frame's stack, which is why they are
// passed around by value rather than held in a struct.
func (r *Rules) matchPerValue(req *Request, dst []ledger.Window, i int, it *item, lk *limitKey, v *value) []ledger.Window {
	var pendBuf [16]pending
	var tagBuf [1024]byte
	pend, tags := pendBuf[:0], tagBuf[:0]
	dst, pend, tags = addPending(dst, pend, tags, r.rules[i].name, it, lk, v)
	for i++; i < len(r.rules); i++ {
		ru := &r.rules[i]
		if !ru.scope.matches(req) {
			continue
		}
		dst = append(dst, ru.global...)
		it, k, v, ok := ru.find(req)
		if !ok {
			continue
		}
		if it.keys[k].fixed == nil {
			dst, pend, tags = addPending(dst, pend, tags, ru.name, it, &it.keys[k], &v)
			continue
		}
		dst = append(dst, it.keys[k].fixed...)
	}
	fillKeys(dst, pend, tags)
	return dst
}

// pending is a per-value key whose windows wait for their Key.
type pending struct {
	at               int // index in dst of the first window
	lk               *limitKey
	tagStart, tagEnd int // the tag in the gathered tags
}

func addPending(dst []ledger.Window, pend []pending, tags []byte, rule string, it *item, lk *limitKey, v *value) ([]ledger.Window, []pending, []byte) {
	start := len(tags)
	tags = it.appendTag(tags, rule, v)
	pend = append(pend, pending{at: len(dst), lk: lk, tagStart: start, tagEnd: len(tags)})
	for j := range lk.specs {
		dst = append(dst, lk.specs[j].window("", rule))
	}
	return dst, pend, tags
}

func fillKeys(dst []ledger.Window, pend []pending, tags []byte) {
	n := 0
	for _, p := range pend {
		for j := range p.lk.specs {
			n += len(keyPrefix) + p.tagEnd - p.tagStart + len(p.lk.specs[j].tail)
		}
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, p := range pend {
		for j := range p.lk.specs {
			sb.WriteString(keyPrefix)
			sb.Write(tags[p.tagStart:p.tagEnd])
			sb.WriteString(p.lk.specs[j].tail)
		}
	}
	all := sb.String()
	for _, p := range pend {
		for j := range p.lk.specs {
			l := len(keyPrefix) + p.tagEnd - p.tagStart + len(p.lk.specs[j].tail)
			dst[p.at+j].Key = all[:l]
			all = all[l:]
		}
	}
}

// NeedsTokens reports whether any token window applies to req. When none
// does, the request's tokens need not be counted for rate limiting.
func (r *Rules) NeedsTokens(req *Request) bool {
	if r == nil {
		return false
	}
	for i := range r.rules {
		ru := &r.rules[i]
		if !ru.scope.matches(req) {
			continue
		}
		if ru.globalTokens {
			return true
		}
		if it, k, _, ok := ru.find(req); ok && it.keys[k].tokens {
			return true
		}
	}
	return false
}

// Rejection returns how to answer a request refused by w.
func (r *Rules) Rejection(w *ledger.Window) Rejection {
	rej := Rejection{Code: 429}
	if r != nil {
		if ru, ok := r.byName[w.Rule]; ok {
			rej = ru.rejection
		}
	}
	if !rej.Custom {
		rej.Message = defaultMessage(w)
	}
	return rej
}

func defaultMessage(w *ledger.Window) string {
	whose := "rule " + w.Rule
	if w.Rule == ConsumerRule {
		whose = "this consumer's own limit"
	}
	return "Rate limit reached for " + WindowName(w) + " (" + whose + "): limit " +
		strconv.FormatInt(w.Limit, 10) + ". Please try again later."
}

// value is what an item read from a request.
type value struct {
	s  string
	ip netip.Addr
}

// find returns the first item of ru that has a limit key matching req,
// with the index of that key and the value read.
func (ru *rule) find(req *Request) (*item, int, value, bool) {
	for i := range ru.items {
		it := &ru.items[i]
		v, ok := it.read(req)
		if !ok {
			continue
		}
		for k := range it.keys {
			lk := &it.keys[k]
			var hit bool
			if it.kind == kindIP {
				hit = lk.pat.any || lk.prefix.Contains(v.ip)
			} else {
				hit = lk.pat.matches(v.s)
			}
			if hit {
				return it, k, v, true
			}
		}
	}
	return nil, 0, value{}, false
}

// read returns the item's value in req; an absent or empty value does not
// match any key.
func (it *item) read(req *Request) (value, bool) {
	var s string
	var ok bool
	switch it.kind {
	case kindHeader:
		s, ok = lookup(req.Header, it.name)
	case kindParam:
		s, ok = lookup(req.Query, it.name)
	case kindCookie:
		s, ok = lookup(req.Cookie, it.name)
	case kindConsumer:
		s, ok = req.Consumer, true
	case kindModel:
		s, ok = req.Model, true
	case kindIP:
		ip := req.IP
		if it.name != "" {
			h, found := lookup(req.Header, it.name)
			if !found {
				return value{}, false
			}
			ip = parseForwarded(h)
		}
		if !ip.IsValid() {
			return value{}, false
		}
		return value{ip: ip.Unmap().WithZone("")}, true
	}
	if !ok || s == "" {
		return value{}, false
	}
	return value{s: s}, true
}

func lookup(f func(string) (string, bool), name string) (string, bool) {
	if f == nil {
		return "", false
	}
	return f(name)
}

// parseForwarded reads the first address of an X-Forwarded-For style list,
// with or without a port.
func parseForwarded(h string) netip.Addr {
	if i := strings.IndexByte(h, ','); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSpace(h)
	if a, err := netip.ParseAddr(h); err == nil {
		return a
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr()
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil {
			return a
		}
	}
	return netip.Addr{}
}

// appendTag appends the tag (without braces) of the counter of value v.
func (it *item) appendTag(dst []byte, ruleName string, v *value) []byte {
	switch it.kind {
	case kindConsumer:
		return appendConsumerTag(dst, v.s)
	case kindIP:
		var ipBuf [64]byte
		return appendRuleTag(dst, ruleName, modeValue, it.source, v.ip.AppendTo(ipBuf[:0]))
	default:
		return appendRuleTag(dst, ruleName, modeValue, it.source, v.s)
	}
}

// Scope is a compiled Match, for other packages that scope their own
// settings the way rules are scoped (quotas per route).
type Scope struct{ s scope }

// CompileMatch validates m, naming problems under path, and compiles it.
func CompileMatch(path string, m Match) (*Scope, error) {
	var p problems
	s := buildScope(&p, path, &m)
	if err := p.err(); err != nil {
		return nil, err
	}
	return &Scope{s: s}, nil
}

// Matches reports whether req is in the scope.
func (s *Scope) Matches(req *Request) bool { return s.s.matches(req) }
