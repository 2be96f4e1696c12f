package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// scriptCall is one script run of a pipeline.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// run sends every call in one pipeline, by EVALSHA. Calls that find their
// script missing from a node's cache (after a restart or SCRIPT FLUSH) are
// sent again by EVAL in a second pipeline; NOSCRIPT means they did not run.
// It returns each call's reply (nil for failed ones) and the errors of the
// failed ones.
func (r *Redis) run(ctx context.Context, calls []scriptCall) ([]any, error) {
	replies := make([]any, len(calls))
	cmds := make([]*redis.Cmd, len(calls))
	pipe := r.client.Pipeline()
	for i := range calls {
		c := &calls[i]
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	var errs []error
	var missing []int
	for i, cmd := range cmds {
		v, err := cmd.Result()
		switch {
		case err == nil:
			replies[i] = v
		case redis.HasErrorPrefix(err, "NOSCRIPT"):
			missing = append(missing, i)
		default:
			errs = append(errs, err)
		}
	}
	if len(missing) > 0 {
		pipe = r.client.Pipeline()
		for _, i := range missing {
			c := &calls[i]
			cmds[i] = c.script.Eval(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx)
		for _, i := range missing {
			v, err := cmds[i].Result()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			replies[i] = v
		}
	}
	return replies, errors.Join(errs...)
}

type reserveReply struct {
	allowed        bool
	now            int64
	balance        int64
	balanceRefused bool
	reserved       int64
	windows        []windowReply
	slots          []slotReply
}

type slotReply struct {
	inFlight int64
	refused  bool
}

type windowReply struct {
	remaining int64
	reset     int64
	outcome   windowOutcome
}

// parseReserve reads the reply of reserve.lua for nw windows and ns slots.
func parseReserve(v any, nw, ns int) (reserveReply, error) {
	var rep reserveReply
	arr, ok := v.([]any)
	if !ok {
		return rep, fmt.Errorf("unexpected reserve reply %T", v)
	}
	if want := 5 + 5*nw + 2*ns; len(arr) != want {
		return rep, fmt.Errorf("reserve reply has %d values, want %d", len(arr), want)
	}
	ints := make([]int64, len(arr))
	for i, e := range arr {
		n, err := parseInt(e)
		if err != nil {
			return rep, fmt.Errorf("reserve reply value %d: %w", i, err)
		}
		ints[i] = n
	}
	rep.allowed = ints[0] == 1
	rep.now = ints[1]
	rep.balance = ints[2]
	rep.balanceRefused = ints[3] == 1
	rep.reserved = ints[4]
	rep.windows = make([]windowReply, nw)
	for k := range nw {
		w := ints[5+5*k:]
		rep.windows[k] = windowReply{
			remaining: w[0],
			reset:     w[1],
			outcome:   windowOutcome{refused: w[2] == 1, tooLarge: w[3] == 1, retry: micros(w[4])},
		}
	}
	rep.slots = make([]slotReply, ns)
	for k := range ns {
		s := ints[5+5*nw+2*k:]
		rep.slots[k] = slotReply{inFlight: s[0], refused: s[1] == 1}
	}
	return rep, nil
}

// parseInt reads an integer reply, also when it came as a string.
func parseInt(v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not an integer: %q", n)
		}
		return i, nil
	default:
		return 0, fmt.Errorf("unexpected reply type %T", v)
	}
}

// parseTotals reads an HGETALL of a day's usage hash into per-model totals.
func parseTotals(day string, fields map[string]string, model string) ([]DayTotals, error) {
	byModel := map[string]*DayTotals{}
	var order []string
	for f, v := range fields {
		metric, m, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("unexpected usage field %q", f)
		}
		if model != "" && m != model {
			continue
		}
		idx := -1
		for i, name := range metricNames {
			if name == metric {
				idx = i
				break
			}
		}
		if idx < 0 {
			continue // a metric this version does not know
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("usage field %q: not an integer: %q", f, v)
		}
		t := byModel[m]
		if t == nil {
			t = &DayTotals{Day: day, Model: m}
			byModel[m] = t
			order = append(order, m)
		}
		t.add(idx, n)
	}
	sortStrings(order)
	res := make([]DayTotals, 0, len(order))
	for _, m := range order {
		res = append(res, *byModel[m])
	}
	return res, nil
}
