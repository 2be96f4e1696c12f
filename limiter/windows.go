package limiter

import (
	"fmt"
	"strconv"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
)

// windowSpec is one window of a threshold before it is bound to a key.
type windowSpec struct {
	size      time.Duration
	limit     int64
	unit      ledger.Unit
	tokenType ledger.TokenType
	// tail is the key after the tag: "}:<unit>:<rule>:<source>:<size>".
	tail string
}

// sizes lists the window lengths in the order windows of one key are
// emitted, with their names in configuration fields and keys.
var sizes = [...]struct {
	d     time.Duration
	field string // after "token_per_" / "query_per_"
	short string // in keys
}{
	{time.Second, "second", "1s"},
	{time.Minute, "minute", "1m"},
	{time.Hour, "hour", "1h"},
	{24 * time.Hour, "day", "1d"},
}

func (t *Threshold) tokenFields() [4]*int64 {
	return [4]*int64{t.TokenPerSecond, t.TokenPerMinute, t.TokenPerHour, t.TokenPerDay}
}

func (t *Threshold) queryFields() [4]*int64 {
	return [4]*int64{t.QueryPerSecond, t.QueryPerMinute, t.QueryPerHour, t.QueryPerDay}
}

// windows checks t and returns its windows, smallest first. tokens tells
// whether t belongs to a token_ratelimit rule.
func (t *Threshold) windows(p *problems, path string, tokens bool) []windowSpec {
	for _, f := range t.unknown {
		p.add(path, "unknown field %q", f)
	}
	unit := ledger.Requests
	var tokenType ledger.TokenType
	own, other := t.queryFields(), t.tokenFields()
	ownPrefix, otherPrefix := "query_per_", "token_per_"
	if tokens {
		own, other = other, own
		ownPrefix, otherPrefix = otherPrefix, ownPrefix
		switch t.LimitType {
		case "", "token":
			unit = ledger.Tokens
		case "request":
			if t.TokenType != "" {
				p.add(path, "token_type %q does not apply to limit_type request", t.TokenType)
			}
		default:
			p.add(path, "unknown limit_type %q (want token or request)", t.LimitType)
		}
		switch t.TokenType {
		case "", "total":
			tokenType = ledger.TotalTokens
		case "input":
			tokenType = ledger.InputTokens
		case "output":
			tokenType = ledger.OutputTokens
		default:
			p.add(path, "unknown token_type %q (want total, input or output)", t.TokenType)
		}
	} else {
		if t.LimitType != "" {
			p.add(path, "limit_type is a token_ratelimit field; request_ratelimit always counts requests")
		}
		if t.TokenType != "" {
			p.add(path, "token_type is a token_ratelimit field; request_ratelimit counts requests")
		}
	}
	for i, v := range other {
		if v != nil {
			if tokens {
				p.add(path, "%s%s is a request_ratelimit field; in token_ratelimit write %s%s with limit_type: request",
					otherPrefix, sizes[i].field, ownPrefix, sizes[i].field)
			} else {
				p.add(path, "%s%s is a token_ratelimit field; request_ratelimit takes %s%s",
					otherPrefix, sizes[i].field, ownPrefix, sizes[i].field)
			}
		}
	}
	var out []windowSpec
	for i, v := range own {
		if v == nil {
			continue
		}
		if *v <= 0 {
			p.add(path, "%s%s must be > 0, got %d", ownPrefix, sizes[i].field, *v)
			continue
		}
		out = append(out, windowSpec{size: sizes[i].d, limit: *v, unit: unit, tokenType: tokenType})
	}
	if len(out) == 0 && !anySet(own) {
		p.add(path, "no window set: set at least one of %ssecond, %[1]sminute, %[1]shour, %[1]sday", ownPrefix)
	}
	return out
}

func anySet(vs [4]*int64) bool {
	for _, v := range vs {
		if v != nil {
			return true
		}
	}
	return false
}

// unitName is how a window's unit appears in keys and window names.
func unitName(u ledger.Unit, t ledger.TokenType) string {
	if u == ledger.Requests {
		return "requests"
	}
	switch t {
	case ledger.InputTokens:
		return "input tokens"
	case ledger.OutputTokens:
		return "output tokens"
	default:
		return "tokens"
	}
}

func unitKey(u ledger.Unit, t ledger.TokenType) string {
	if u == ledger.Requests {
		return "requests"
	}
	switch t {
	case ledger.InputTokens:
		return "input_tokens"
	case ledger.OutputTokens:
		return "output_tokens"
	default:
		return "tokens"
	}
}

func sizeKey(d time.Duration) string {
	for _, s := range sizes {
		if s.d == d {
			return s.short
		}
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// WindowName describes a window for people: "tokens per minute",
// "input tokens per day", "requests per second".
func WindowName(w *ledger.Window) string {
	per := ""
	for _, s := range sizes {
		if s.d == w.Size {
			per = s.field
		}
	}
	if per == "" {
		per = w.Size.String()
	}
	return fmt.Sprintf("%s per %s", unitName(w.Unit, w.TokenType), per)
}
