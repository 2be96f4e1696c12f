package limiter

import (
	"reflect"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Config is the rate-limit part of tollgate's configuration. Its two lists
// sit at the top level of the configuration file (the binary inlines this
// struct), each in the shape of one Higress plugin config per list element.
type Config struct {
	// TokenRules limit tokens, in the shape of Higress's ai-token-ratelimit.
	TokenRules []Rule `yaml:"token_ratelimit,omitempty"`
	// RequestRules limit requests, in the shape of Higress's
	// cluster-key-rate-limit.
	RequestRules []Rule `yaml:"request_ratelimit,omitempty"`
}

// Rule is one named rate-limit rule: a Higress plugin configuration.
type Rule struct {
	// RuleName names the rule in window keys, refusals and metrics. Unique
	// across both lists.
	RuleName string `yaml:"rule_name"`
	// RuleItems are tried in order; the first item that matches the request
	// applies (see the package documentation).
	RuleItems []RuleItem `yaml:"rule_items,omitempty"`
	// GlobalThreshold, when set, is one set of windows shared by every
	// request in the rule's scope.
	GlobalThreshold *Threshold `yaml:"global_threshold,omitempty"`
	// RejectedCode is the HTTP status of a refusal by this rule; 429 when 0.
	RejectedCode int `yaml:"rejected_code,omitempty"`
	// RejectedMsg, when set, is the body of a refusal, sent as written.
	RejectedMsg string `yaml:"rejected_msg,omitempty"`
	// Match restricts the rule to some requests; a rule without Match
	// applies to every request.
	Match *Match `yaml:"match,omitempty"`
	// OnExceeded is "reject" (the default) or "downgrade": a request over
	// the rule goes on with Downgrade.Model instead, charged to that model.
	OnExceeded string `yaml:"on_exceeded,omitempty"`
	// Downgrade names the cheaper model; setting it implies on_exceeded:
	// downgrade.
	Downgrade *Downgrade `yaml:"downgrade,omitempty"`

	// Redis and ShowLimitQuotaHeader are accepted so that a Higress plugin
	// configuration can be pasted as it is; tollgate ignores them (Redis is
	// configured once for the whole process, and rate-limit headers are
	// always sent).
	Redis                any  `yaml:"redis,omitempty"`
	ShowLimitQuotaHeader bool `yaml:"show_limit_quota_header,omitempty"`

	unknown []string
}

// Match scopes a rule to a route. Every field that is set must match.
type Match struct {
	// PathPrefix matches requests whose path starts with it.
	PathPrefix string `yaml:"path_prefix,omitempty"`
	// Host matches the request's host (port ignored, case-insensitive):
	// either exactly, or, written "*.example.com", any subdomain.
	Host string `yaml:"host,omitempty"`
	// Route matches the Envoy route name exactly.
	Route string `yaml:"route,omitempty"`
	// Model matches the requested model: exactly, "*" for any model, or
	// "regexp:<re>".
	Model string `yaml:"model,omitempty"`

	unknown []string
}

// RuleItem selects where a request's key comes from and which limits apply
// to which values. Exactly one LimitBy field is set.
type RuleItem struct {
	// Shared counters: every request whose value matches one limit key
	// counts against that key's single counter.
	LimitByHeader   *string `yaml:"limit_by_header,omitempty"`
	LimitByParam    *string `yaml:"limit_by_param,omitempty"`
	LimitByCookie   *string `yaml:"limit_by_cookie,omitempty"`
	LimitByConsumer *string `yaml:"limit_by_consumer,omitempty"`
	LimitByModel    *string `yaml:"limit_by_model,omitempty"`

	// Per-value counters: every distinct value matching a limit key has its
	// own counter with that key's limits.
	LimitByPerHeader   *string `yaml:"limit_by_per_header,omitempty"`
	LimitByPerParam    *string `yaml:"limit_by_per_param,omitempty"`
	LimitByPerCookie   *string `yaml:"limit_by_per_cookie,omitempty"`
	LimitByPerConsumer *string `yaml:"limit_by_per_consumer,omitempty"`
	LimitByPerModel    *string `yaml:"limit_by_per_model,omitempty"`
	// LimitByPerIP is "from-remote-addr" (or empty) for the peer address,
	// or "from-header-<name>" for the first address in that header.
	LimitByPerIP *string `yaml:"limit_by_per_ip,omitempty"`

	// LimitKeys are tried in order; the first key matching the value applies.
	LimitKeys []LimitKey `yaml:"limit_keys,omitempty"`

	unknown []string
}

// LimitKey is a value (or pattern of values) and the limits that apply to it.
type LimitKey struct {
	// Key is an exact value, "*" for any value, "regexp:<re>" (RE2,
	// unanchored), or for limit_by_per_ip an IP address or CIDR prefix.
	Key string `yaml:"key"`
	// Threshold holds the key's windows, written beside key.
	Threshold Threshold `yaml:",inline"`

	unknown []string
}

// Threshold is a set of windows. Every window that is set applies.
type Threshold struct {
	// LimitType is "token" (the default) or "request"; in token_ratelimit a
	// "request" key counts requests with its token_per_* numbers, as in
	// Higress's ai-token-ratelimit. Not allowed in request_ratelimit.
	LimitType string `yaml:"limit_type,omitempty"`
	// TokenType is "total" (the default), "input" or "output": which tokens
	// the token windows count.
	TokenType string `yaml:"token_type,omitempty"`

	TokenPerSecond *int64 `yaml:"token_per_second,omitempty"`
	TokenPerMinute *int64 `yaml:"token_per_minute,omitempty"`
	TokenPerHour   *int64 `yaml:"token_per_hour,omitempty"`
	TokenPerDay    *int64 `yaml:"token_per_day,omitempty"`

	QueryPerSecond *int64 `yaml:"query_per_second,omitempty"`
	QueryPerMinute *int64 `yaml:"query_per_minute,omitempty"`
	QueryPerHour   *int64 `yaml:"query_per_hour,omitempty"`
	QueryPerDay    *int64 `yaml:"query_per_day,omitempty"`

	unknown []string
}

// The UnmarshalYAML methods below do two things the plain decoder cannot:
// remember misspelt fields, so that Validate reports them with their path
// whatever decoder options the binary uses, and treat "limit_by_consumer:"
// written without a value as set (Higress configs write it as '' or not at
// all).

// UnmarshalYAML implements [yaml.Unmarshaler].
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	type plain Rule
	if err := decodeRecording(n, (*plain)(r), &r.unknown); err != nil {
		return err
	}
	// Threshold has no UnmarshalYAML of its own: yaml.v3 would then no
	// longer inline it into LimitKey. Its misspelt fields are found here.
	if g := mappingValue(n, "global_threshold"); g != nil && r.GlobalThreshold != nil {
		r.GlobalThreshold.unknown = unknownKeys(g, knownFields(reflect.TypeFor[Threshold]()))
	}
	return nil
}

// UnmarshalYAML implements [yaml.Unmarshaler].
func (m *Match) UnmarshalYAML(n *yaml.Node) error {
	type plain Match
	return decodeRecording(n, (*plain)(m), &m.unknown)
}

// UnmarshalYAML implements [yaml.Unmarshaler].
func (k *LimitKey) UnmarshalYAML(n *yaml.Node) error {
	type plain LimitKey
	return decodeRecording(n, (*plain)(k), &k.unknown)
}

// UnmarshalYAML implements [yaml.Unmarshaler].
func (it *RuleItem) UnmarshalYAML(n *yaml.Node) error {
	type plain RuleItem
	if err := decodeRecording(n, (*plain)(it), &it.unknown); err != nil {
		return err
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i+1].ShortTag() != "!!null" {
			continue
		}
		if p := it.source(n.Content[i].Value); p != nil && *p == nil {
			*p = new("")
		}
	}
	return nil
}

// source returns the LimitBy field named by a YAML key, or nil.
func (it *RuleItem) source(name string) **string {
	switch name {
	case "limit_by_header":
		return &it.LimitByHeader
	case "limit_by_param":
		return &it.LimitByParam
	case "limit_by_cookie":
		return &it.LimitByCookie
	case "limit_by_consumer":
		return &it.LimitByConsumer
	case "limit_by_model":
		return &it.LimitByModel
	case "limit_by_per_header":
		return &it.LimitByPerHeader
	case "limit_by_per_param":
		return &it.LimitByPerParam
	case "limit_by_per_cookie":
		return &it.LimitByPerCookie
	case "limit_by_per_consumer":
		return &it.LimitByPerConsumer
	case "limit_by_per_model":
		return &it.LimitByPerModel
	case "limit_by_per_ip":
		return &it.LimitByPerIP
	}
	return nil
}

func decodeRecording[T any](n *yaml.Node, out *T, unknown *[]string) error {
	if err := n.Decode(out); err != nil {
		return err
	}
	*unknown = unknownKeys(n, knownFields(reflect.TypeFor[T]()))
	return nil
}

func unknownKeys(n *yaml.Node, known map[string]bool) []string {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		// "<<" merges an anchored mapping; its fields are the ones checked.
		if k := n.Content[i].Value; !known[k] && k != "<<" {
			out = append(out, k)
		}
	}
	return out
}

// mappingValue returns the value of key in mapping n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var knownCache sync.Map // reflect.Type → map[string]bool

// knownFields returns the YAML field names of struct type t, including
// those of inlined structs.
func knownFields(t reflect.Type) map[string]bool {
	if v, ok := knownCache.Load(t); ok {
		return v.(map[string]bool)
	}
	m := map[string]bool{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			for k := range knownFields(f.Type) {
				m[k] = true
			}
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = true
	}
	knownCache.Store(t, m)
	return m
}

// Downgrade is what a request over a limit becomes instead of a refusal.
type Downgrade struct {
	// Model replaces the request's model.
	Model string `yaml:"model" json:"model"`
}
