package ledger

import (
	"context"
	"fmt"
)

// slotKeyTTL is how long, in milliseconds, a slot's key is kept after a
// lease of s is taken or renewed.
func slotKeyTTL(s *Slot) int64 { return ceilMillis(s.Lease + slotKeyMargin) }

// Renew implements [Store]: one renew script per hash tag group of the
// slots, all in one pipeline.
func (r *Redis) Renew(ctx context.Context, res *Reservation, h Hold) error {
	if err := validateReservation(res); err != nil {
		return err
	}
	if len(res.Slots) == 0 || !h.taken() || h.Local {
		return nil
	}
	var tags []string
	var members [][]int
	for i := range res.Slots {
		tag := tagOf(r.key(res.Slots[i].Key))
		g := -1
		for k, t := range tags {
			if t == tag {
				g = k
				break
			}
		}
		if g < 0 {
			tags, members = append(tags, tag), append(members, nil)
			g = len(tags) - 1
		}
		members[g] = append(members[g], i)
	}
	now := r.nowArg()
	calls := make([]scriptCall, len(tags))
	for g, idx := range members {
		c := &calls[g]
		c.script = renewScript
		c.keys = make([]string, 0, len(idx))
		c.args = make([]any, 0, 2+2*len(idx))
		c.args = append(c.args, now, res.ID)
		for _, i := range idx {
			s := &res.Slots[i]
			c.keys = append(c.keys, r.key(s.Key))
			c.args = append(c.args, s.Lease.Microseconds(), slotKeyTTL(s))
		}
	}
	replies, err := r.run(ctx, calls)
	if err != nil {
		return unavailable("cannot renew "+res.ID, err)
	}
	var lost []string
	for g, idx := range members {
		flags, err := parseInts(replies[g], len(idx))
		if err != nil {
			return unavailable("cannot renew "+res.ID, err)
		}
		for k, i := range idx {
			if flags[k] != 1 {
				lost = append(lost, res.Slots[i].Key)
			}
		}
	}
	return leaseLost(res.ID, lost)
}

// parseInts reads an array reply of n integers.
func parseInts(v any, n int) ([]int64, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", v)
	}
	if len(arr) != n {
		return nil, fmt.Errorf("reply has %d values, want %d", len(arr), n)
	}
	ints := make([]int64, n)
	for i, e := range arr {
		x, err := parseInt(e)
		if err != nil {
			return nil, fmt.Errorf("reply value %d: %w", i, err)
		}
		ints[i] = x
	}
	return ints, nil
}
