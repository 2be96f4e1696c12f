package limiter

import (
	"fmt"

	"github.com/tollgate-ai/tollgate/ledger"
)

// ConsumerRule is the rule name of the windows a consumer carries itself
// (from its own limits or its tier's), beside the configured rules. Rule
// names in the config cannot start with "@", so it never collides.
const ConsumerRule = "@consumer"

// Limits are the windows a tier or a consumer carries itself: each set
// field is one window counted per consumer, whatever else applies.
type Limits struct {
	TokenPerSecond *int64 `yaml:"token_per_second,omitempty" json:"token_per_second,omitempty"`
	TokenPerMinute *int64 `yaml:"token_per_minute,omitempty" json:"token_per_minute,omitempty"`
	TokenPerHour   *int64 `yaml:"token_per_hour,omitempty" json:"token_per_hour,omitempty"`
	TokenPerDay    *int64 `yaml:"token_per_day,omitempty" json:"token_per_day,omitempty"`
	QueryPerSecond *int64 `yaml:"query_per_second,omitempty" json:"query_per_second,omitempty"`
	QueryPerMinute *int64 `yaml:"query_per_minute,omitempty" json:"query_per_minute,omitempty"`
	QueryPerHour   *int64 `yaml:"query_per_hour,omitempty" json:"query_per_hour,omitempty"`
	QueryPerDay    *int64 `yaml:"query_per_day,omitempty" json:"query_per_day,omitempty"`
	// TokenType is total (default), input or output: which tokens the
	// token windows count.
	TokenType string `yaml:"token_type,omitempty" json:"token_type,omitempty"`
	// MaxInFlight caps the consumer's requests between admission and
	// settle, across replicas.
	MaxInFlight *int64 `yaml:"max_in_flight,omitempty" json:"max_in_flight,omitempty"`
}

// Over returns l with every unset field taken from base: a consumer's own
// limits over its tier's.
func (l Limits) Over(base Limits) Limits {
	pick := func(a, b *int64) *int64 {
		if a != nil {
			return a
		}
		return b
	}
	out := Limits{
		TokenPerSecond: pick(l.TokenPerSecond, base.TokenPerSecond),
		TokenPerMinute: pick(l.TokenPerMinute, base.TokenPerMinute),
		TokenPerHour:   pick(l.TokenPerHour, base.TokenPerHour),
		TokenPerDay:    pick(l.TokenPerDay, base.TokenPerDay),
		QueryPerSecond: pick(l.QueryPerSecond, base.QueryPerSecond),
		QueryPerMinute: pick(l.QueryPerMinute, base.QueryPerMinute),
		QueryPerHour:   pick(l.QueryPerHour, base.QueryPerHour),
		QueryPerDay:    pick(l.QueryPerDay, base.QueryPerDay),
		TokenType:      l.TokenType,
		MaxInFlight:    pick(l.MaxInFlight, base.MaxInFlight),
	}
	if out.TokenType == "" {
		out.TokenType = base.TokenType
	}
	return out
}

// IsZero reports whether no window is set.
func (l Limits) IsZero() bool {
	t, q := l.token(), l.query()
	return !anySet(t.tokenFields()) && !anySet(q.queryFields()) && l.MaxInFlight == nil
}

func (l Limits) token() Threshold {
	return Threshold{TokenType: l.TokenType, TokenPerSecond: l.TokenPerSecond, TokenPerMinute: l.TokenPerMinute,
		TokenPerHour: l.TokenPerHour, TokenPerDay: l.TokenPerDay}
}

func (l Limits) query() Threshold {
	return Threshold{QueryPerSecond: l.QueryPerSecond, QueryPerMinute: l.QueryPerMinute,
		QueryPerHour: l.QueryPerHour, QueryPerDay: l.QueryPerDay}
}

// Validate reports every problem of l, each prefixed by path.
func (l Limits) Validate(path string) error {
	_, err := l.build(path, "x")
	return err
}

// ConsumerWindows returns the windows l gives consumer, keyed under the
// consumer's hash tag so they sit with its quota and totals.
func ConsumerWindows(consumer string, l Limits) ([]ledger.Window, error) {
	return l.build("limits", consumer)
}

func (l Limits) build(path, consumer string) ([]ledger.Window, error) {
	var p problems
	var specs []windowSpec
	t, q := l.token(), l.query()
	if anySet(t.tokenFields()) {
		specs = append(specs, t.windows(&p, path, true)...)
	} else if l.TokenType != "" {
		p.add(path, "token_type is set but no token_per_* window")
	}
	if anySet(q.queryFields()) {
		specs = append(specs, q.windows(&p, path, false)...)
	}
	if l.MaxInFlight != nil && *l.MaxInFlight <= 0 {
		p.add(path, "max_in_flight must be > 0, got %d", *l.MaxInFlight)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	tag := appendConsumerTag(nil, consumer)
	out := make([]ledger.Window, 0, len(specs))
	for _, ws := range specs {
		out = append(out, ws.window(keyPrefix+string(tag)+windowTail(ws, ConsumerRule, "consumer"), ConsumerRule))
	}
	return out, nil
}

// String describes the limits for people, e.g. in the console.
func (l Limits) String() string {
	var s string
	add := func(v *int64, what string) {
		if v != nil {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%d %s", *v, what)
		}
	}
	add(l.TokenPerSecond, "tokens/s")
	add(l.TokenPerMinute, "tokens/min")
	add(l.TokenPerHour, "tokens/h")
	add(l.TokenPerDay, "tokens/day")
	add(l.QueryPerSecond, "requests/s")
	add(l.QueryPerMinute, "requests/min")
	add(l.QueryPerHour, "requests/h")
	add(l.QueryPerDay, "requests/day")
	add(l.MaxInFlight, "in flight")
	if s == "" {
		return "none"
	}
	return s
}
