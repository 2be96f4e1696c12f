package limiter

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/tollgate-ai/tollgate/ledger"
)

// problems collects every configuration problem, each naming its field path.
type problems struct{ errs []error }

func (p *problems) add(path, format string, args ...any) {
	p.errs = append(p.errs, errors.New(path+": "+fmt.Sprintf(format, args...)))
}

func (p *problems) err() error { return errors.Join(p.errs...) }

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// Validate reports every problem of c at once, each prefixed by its field
// path under path (empty when the lists sit at the top level).
func (c *Config) Validate(path string) error {
	_, err := build(c, path)
	return err
}

// Compile validates c and turns it into the immutable form the request path
// matches against. The result is safe for concurrent use.
func Compile(c Config) (*Rules, error) {
	r, err := build(&c, "")
	if err != nil {
		return nil, fmt.Errorf("invalid rate-limit rules: %w", err)
	}
	return r, nil
}

// build checks c and compiles it in the same walk, so that what Validate
// accepts is exactly what Compile can compile.
func build(c *Config, path string) (*Rules, error) {
	var p problems
	out := &Rules{byName: map[string]*rule{}}
	seen := map[string]string{}
	lists := []struct {
		field  string
		rules  []Rule
		tokens bool
	}{
		{"token_ratelimit", c.TokenRules, true},
		{"request_ratelimit", c.RequestRules, false},
	}
	for _, l := range lists {
		for i := range l.rules {
			rp := index(join(path, l.field), i)
			ru := buildRule(&p, rp, &l.rules[i], l.tokens)
			name := l.rules[i].RuleName
			if name != "" {
				if prev, dup := seen[name]; dup {
					p.add(rp, "duplicate rule_name %q (also %s)", name, prev)
				} else {
					seen[name] = rp
				}
			}
			out.rules = append(out.rules, ru)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	for i := range out.rules {
		out.byName[out.rules[i].name] = &out.rules[i]
	}
	return out, nil
}

func validRuleName(s string) bool {
	if len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

func buildRule(p *problems, path string, r *Rule, tokens bool) rule {
	for _, f := range r.unknown {
		p.add(path, "unknown field %q", f)
	}
	ru := rule{name: r.RuleName, scope: scope{all: true}}
	switch {
	case r.RuleName == "":
		p.add(path, "rule_name is required")
	case !validRuleName(r.RuleName):
		p.add(join(path, "rule_name"), "%q: use at most 128 letters, digits, '_', '-' and '.'", r.RuleName)
	}
	if r.GlobalThreshold == nil && len(r.RuleItems) == 0 {
		p.add(path, "set rule_items, global_threshold or both")
	}
	ru.rejection = Rejection{Code: 429, Message: r.RejectedMsg, Custom: r.RejectedMsg != ""}
	if r.RejectedCode != 0 {
		if r.RejectedCode < 200 || r.RejectedCode > 599 {
			p.add(join(path, "rejected_code"), "%d is not an HTTP status between 200 and 599", r.RejectedCode)
		}
		ru.rejection.Code = r.RejectedCode
	}
	switch r.OnExceeded {
	case "", "reject":
		if r.OnExceeded == "reject" && r.Downgrade != nil {
			p.add(join(path, "downgrade"), "set with on_exceeded: reject; use on_exceeded: downgrade or drop it")
		}
	case "downgrade":
		if r.Downgrade == nil {
			p.add(join(path, "on_exceeded"), "downgrade needs downgrade: {model: <cheaper model>}")
		}
	default:
		p.add(join(path, "on_exceeded"), "%q is not reject or downgrade", r.OnExceeded)
	}
	if r.Downgrade != nil {
		if r.Downgrade.Model == "" {
			p.add(join(path, "downgrade.model"), "must name the model to use instead")
		}
		ru.rejection.Downgrade = r.Downgrade.Model
	}
	if r.Match != nil {
		ru.scope = buildScope(p, join(path, "match"), r.Match)
	}
	if r.GlobalThreshold != nil {
		gp := join(path, "global_threshold")
		for _, ws := range r.GlobalThreshold.windows(p, gp, tokens) {
			w := ledger.Window{
				Key:   keyPrefix + "g:" + r.RuleName + windowTail(ws, r.RuleName, "global"),
				Limit: ws.limit, Size: ws.size, Unit: ws.unit, TokenType: ws.tokenType, Rule: r.RuleName,
			}
			ru.global = append(ru.global, w)
			ru.globalTokens = ru.globalTokens || ws.unit == ledger.Tokens
		}
	}
	for i := range r.RuleItems {
		ru.items = append(ru.items, buildItem(p, index(join(path, "rule_items"), i), &r.RuleItems[i], r.RuleName, tokens))
	}
	return ru
}

func buildScope(p *problems, path string, m *Match) scope {
	for _, f := range m.unknown {
		p.add(path, "unknown field %q", f)
	}
	s := scope{pathPrefix: m.PathPrefix, route: m.Route}
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		p.add(join(path, "path_prefix"), "%q must start with '/'", m.PathPrefix)
	}
	if m.Host != "" {
		h := strings.ToLower(m.Host)
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			s.hostSuffix = h[1:]
			h = rest
		} else {
			s.host = h
		}
		if h == "" || strings.ContainsAny(h, "*/: \t") {
			p.add(join(path, "host"), "%q: want a host name, or *.<domain> for its subdomains", m.Host)
		}
	}
	if m.Model != "" {
		pat, err := parsePattern(m.Model)
		if err != nil {
			p.add(join(path, "model"), "%v", err)
		}
		s.model = &pat
	}
	s.all = s.pathPrefix == "" && s.host == "" && s.hostSuffix == "" && s.route == "" && s.model == nil
	return s
}

// sourceFields lists the LimitBy fields with what each reads.
var sourceFields = []struct {
	field string
	kind  kind
	per   bool
	get   func(*RuleItem) *string
}{
	{"limit_by_header", kindHeader, false, func(it *RuleItem) *string { return it.LimitByHeader }},
	{"limit_by_param", kindParam, false, func(it *RuleItem) *string { return it.LimitByParam }},
	{"limit_by_cookie", kindCookie, false, func(it *RuleItem) *string { return it.LimitByCookie }},
	{"limit_by_consumer", kindConsumer, false, func(it *RuleItem) *string { return it.LimitByConsumer }},
	{"limit_by_model", kindModel, false, func(it *RuleItem) *string { return it.LimitByModel }},
	{"limit_by_per_header", kindHeader, true, func(it *RuleItem) *string { return it.LimitByPerHeader }},
	{"limit_by_per_param", kindParam, true, func(it *RuleItem) *string { return it.LimitByPerParam }},
	{"limit_by_per_cookie", kindCookie, true, func(it *RuleItem) *string { return it.LimitByPerCookie }},
	{"limit_by_per_consumer", kindConsumer, true, func(it *RuleItem) *string { return it.LimitByPerConsumer }},
	{"limit_by_per_model", kindModel, true, func(it *RuleItem) *string { return it.LimitByPerModel }},
	{"limit_by_per_ip", kindIP, true, func(it *RuleItem) *string { return it.LimitByPerIP }},
}

func validName(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c == 0x7f || c == '{' || c == '}' {
			return false
		}
	}
	return s != ""
}

func buildItem(p *problems, path string, it *RuleItem, ruleName string, tokens bool) item {
	for _, f := range it.unknown {
		p.add(path, "unknown field %q", f)
	}
	var set []string
	var out item
	for _, sf := range sourceFields {
		v := sf.get(it)
		if v == nil {
			continue
		}
		set = append(set, sf.field)
		if len(set) > 1 {
			continue
		}
		out.kind, out.per, out.name = sf.kind, sf.per, *v
		fp := join(path, sf.field)
		switch sf.kind {
		case kindHeader:
			out.name = strings.ToLower(*v)
			out.source = "header=" + out.name
		case kindParam:
			out.source = "param=" + *v
		case kindCookie:
			out.source = "cookie=" + *v
		case kindConsumer:
			out.source, out.name = "consumer", ""
		case kindModel:
			out.source, out.name = "model", ""
		case kindIP:
			switch {
			case *v == "" || *v == "from-remote-addr":
				out.name, out.source = "", "ip=remote"
			case strings.HasPrefix(*v, "from-header-"):
				out.name = strings.ToLower(strings.TrimPrefix(*v, "from-header-"))
				out.source = "ip=" + out.name
				if !validName(out.name) {
					p.add(fp, "%q: want from-header-<header name>", *v)
				}
			default:
				p.add(fp, "%q: want from-remote-addr or from-header-<header name>", *v)
			}
		}
		if sf.kind == kindHeader || sf.kind == kindParam || sf.kind == kindCookie {
			if !validName(*v) {
				p.add(fp, "%q: want a non-empty name without spaces, control characters or braces", *v)
			}
		}
	}
	switch {
	case len(set) == 0:
		p.add(path, "set one limit_by_* field (limit_by_header, limit_by_param, limit_by_cookie, limit_by_consumer, limit_by_model, or their limit_by_per_* forms, or limit_by_per_ip)")
		return out
	case len(set) > 1:
		p.add(path, "only one limit_by_* field per item, found %s", strings.Join(set, ", "))
		return out
	}
	if len(it.LimitKeys) == 0 {
		p.add(path, "limit_keys is empty")
	}
	for i := range it.LimitKeys {
		kp := index(join(path, "limit_keys"), i)
		out.keys = append(out.keys, buildKey(p, kp, &it.LimitKeys[i], &out, ruleName, tokens))
		checkReachable(p, kp, out.keys, it.LimitKeys)
	}
	return out
}

func buildKey(p *problems, path string, k *LimitKey, it *item, ruleName string, tokens bool) limitKey {
	for _, f := range k.unknown {
		p.add(path, "unknown field %q", f)
	}
	var lk limitKey
	if k.Key == "" {
		p.add(path, "key is required")
	} else if it.kind == kindIP {
		if k.Key == "*" {
			lk.pat.any = true
		} else if pfx, err := parsePrefix(k.Key); err != nil {
			p.add(path, "key %q is not an IP address or CIDR prefix", k.Key)
		} else {
			lk.prefix = pfx
		}
	} else {
		pat, err := parsePattern(k.Key)
		if err != nil {
			p.add(path, "%v", err)
		}
		lk.pat = pat
	}
	for _, ws := range k.Threshold.windows(p, path, tokens) {
		ws.tail = windowTail(ws, ruleName, it.source)
		lk.specs = append(lk.specs, ws)
		lk.tokens = lk.tokens || ws.unit == ledger.Tokens
	}
	// A counter that does not depend on the request is keyed once, here.
	var tag []byte
	switch {
	case it.kind == kindIP:
	case it.kind == kindConsumer && lk.pat.isExact():
		tag = appendConsumerTag(nil, lk.pat.exact)
	case lk.pat.isExact():
		tag = appendRuleTag(nil, ruleName, modeValue, it.source, lk.pat.exact)
	case !it.per:
		tag = appendRuleTag(nil, ruleName, modePattern, it.source, k.Key)
	}
	if tag != nil {
		for _, ws := range lk.specs {
			lk.fixed = append(lk.fixed, ws.window(keyPrefix+string(tag)+ws.tail, ruleName))
		}
	}
	return lk
}

func (ws *windowSpec) window(key, rule string) ledger.Window {
	return ledger.Window{Key: key, Limit: ws.limit, Size: ws.size, Unit: ws.unit, TokenType: ws.tokenType, Rule: rule}
}

// checkReachable reports the last of keys when an earlier key matches
// everything it matches: with first-match it could never apply, which is
// almost always a mistake in the order of limit_keys.
func checkReachable(p *problems, path string, keys []limitKey, raw []LimitKey) {
	last := len(keys) - 1
	k := keys[last]
	for i, e := range keys[:last] {
		first := fmt.Sprintf("limit_keys[%d] %q", i, raw[i].Key)
		msg := ""
		switch {
		case raw[i].Key == "" || raw[last].Key == "":
		case raw[i].Key == raw[last].Key:
			msg = "duplicate key: " + first + " has it already"
		case e.pat.any:
			msg = "unreachable: " + first + " matches every value first"
		case e.prefix.IsValid() && k.prefix.IsValid() && e.prefix.Bits() <= k.prefix.Bits() && e.prefix.Contains(k.prefix.Addr()):
			msg = "unreachable: " + first + " covers it and comes first"
		case e.pat.re != nil && k.pat.isExact() && e.pat.re.MatchString(k.pat.exact):
			msg = "unreachable: " + first + " matches it first"
		}
		if msg != "" {
			p.add(path, "key %q: %s", raw[last].Key, msg)
			return
		}
	}
}

func parsePattern(s string) (pattern, error) {
	if s == "*" {
		return pattern{any: true}, nil
	}
	if expr, ok := strings.CutPrefix(s, "regexp:"); ok {
		re, err := regexp.Compile(expr)
		if err != nil {
			return pattern{}, fmt.Errorf("bad regexp %q: %w", expr, err)
		}
		return pattern{re: re}, nil
	}
	return pattern{exact: s}, nil
}

// parsePrefix reads an IP address (a prefix of one address) or a CIDR
// prefix, whose host bits are cleared.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), max(pfx.Bits()-96, 0))
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}
