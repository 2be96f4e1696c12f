package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The admin API's operations on the Redis store: balances and usage totals.

// GetBalance implements [Store].
func (r *Redis) GetBalance(ctx context.Context, b *Balance) (int64, error) {
	v, err := r.client.Get(ctx, r.key(b.Key)).Result()
	if errors.Is(err, redis.Nil) {
		return b.Allotment, nil
	}
	if err != nil {
		return 0, unavailable("cannot read balance", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("balance %s holds %q: %w", b.Key, v, ErrUnavailable)
	}
	return n, nil
}

// SetBalance implements [Store].
func (r *Redis) SetBalance(ctx context.Context, b *Balance, v int64) error {
	_, err := r.balanceOp(ctx, b, "set", v)
	return err
}

// AddBalance implements [Store].
func (r *Redis) AddBalance(ctx context.Context, b *Balance, delta int64) (int64, error) {
	return r.balanceOp(ctx, b, "add", delta)
}

func (r *Redis) balanceOp(ctx context.Context, b *Balance, op string, v int64) (int64, error) {
	reply, err := r.run(ctx, []scriptCall{{
		script: balanceScript,
		keys:   []string{r.key(b.Key)},
		args:   []any{op, v, b.Allotment, ceilMillis(b.TTL)},
	}})
	if err != nil {
		return 0, unavailable("cannot update balance", err)
	}
	n, err := parseInt(reply[0])
	if err != nil {
		return 0, unavailable("cannot update balance", err)
	}
	return n, nil
}

// Totals implements [Store].
func (r *Redis) Totals(ctx context.Context, q TotalsQuery) ([]DayTotals, error) {
	days, err := queryDays(q)
	if err != nil {
		return nil, err
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(days))
	for i, d := range days {
		cmds[i] = pipe.HGetAll(ctx, r.usageKey(q.Consumer, d))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("cannot read usage totals", err)
	}
	var res []DayTotals
	for i, cmd := range cmds {
		t, err := parseTotals(days[i], cmd.Val(), q.Model)
		if err != nil {
			return nil, unavailable("cannot read usage totals", err)
		}
		res = append(res, t...)
	}
	return res, nil
}
