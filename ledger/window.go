package ledger

import (
	"fmt"
	"sort"
	"time"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

// Sliding windows
//
// A window of Size is cut into n buckets of width w = ceil(Size/n): 10
// buckets for windows up to a second (100 ms each for a second), 60 for
// windows up to an hour (1 s for a minute, 1 min for an hour) and 96 for
// longer ones (15 min for a day). Time is the store's clock in
// microseconds; bucket i holds what was admitted during [i·w, (i+1)·w).
//
// An admission at time t falls in bucket b = floor(t/w). It sums the
// buckets b−n … b, the buckets overlapping [t−n·w, t] ⊇ [t−Size, t], with
// the oldest one counted whole although only part of it overlaps. It is
// admitted only when that sum plus its own amount is at most Limit, and is
// then added to bucket b. Every admission made in an interval [a, a+Size]
// lies in a bucket ≥ floor(a/w) ≥ b−n of the last admission made in it, so
// that last admission saw all the others in its sum: whatever interval of
// length Size is looked at, and however it straddles bucket edges, what was
// admitted in it is at most Limit. Counting the oldest bucket whole makes
// the window refuse up to one bucket width early, never late.
//
// Each window is stored as a running total, the index of the oldest bucket
// that may still hold something, and one field per non-empty bucket. Each
// operation first drops the buckets that have left the window, from the
// oldest index on, subtracting them from the total: every bucket is added
// once and dropped once, so an operation costs O(1) amortized, and never
// more than n+1 steps (past that everything is dropped at once). The key
// expires (n+1)·w after its last write, when its newest bucket has left the
// window.
//
// A refused request learns RetryAfter: the time until enough of the oldest
// buckets leave the window for it to fit (bucket i leaves at (i+n+1)·w). A
// request whose amount alone is more than Limit never fits and is refused
// with TooLarge and no RetryAfter.
//
// A settlement corrects the bucket its reservation was charged to by
// (actual − reserved) while that bucket is still in the window. Once the
// bucket has left the window, a positive excess goes to the current bucket
// (so it still counts against the next Size of admissions, erring on the
// safe side) and a negative one is dropped (the window no longer counts the
// reservation anyway).

// bucketing returns the number of buckets and their width in microseconds
// for a window of size.
func bucketing(size time.Duration) (n, width int64) {
	switch {
	case size <= time.Second:
		n = 10
	case size <= time.Hour:
		n = 60
	default:
		n = 96
	}
	us := size.Microseconds()
	width = (us + n - 1) / n
	if width < 1 {
		width = 1
	}
	return n, width
}

// windowTTL is how long a window's key outlives its last write.
func windowTTL(n, width int64) time.Duration {
	return time.Duration((n+1)*width) * time.Microsecond
}

func validateReservation(r *Reservation) error {
	if r == nil {
		return fmt.Errorf("%w: nil reservation", ErrInvalid)
	}
	if r.Input < 0 || r.Output < 0 {
		return fmt.Errorf("%w: negative token counts %d/%d", ErrInvalid, r.Input, r.Output)
	}
	for i := range r.Windows {
		w := &r.Windows[i]
		switch {
		case w.Key == "":
			return fmt.Errorf("%w: windows[%d] has no key", ErrInvalid, i)
		case w.Size < time.Microsecond:
			return fmt.Errorf("%w: windows[%d] (%s) has size %v", ErrInvalid, i, w.Key, w.Size)
		case w.Limit < 0:
			return fmt.Errorf("%w: windows[%d] (%s) has limit %d", ErrInvalid, i, w.Key, w.Limit)
		}
	}
	if r.Balance != nil && r.Balance.Key == "" {
		return fmt.Errorf("%w: balance has no key", ErrInvalid)
	}
	return validateSlots(r.ID, r.Slots)
}

func validateSettlement(s *Settlement) error {
	if s == nil {
		return fmt.Errorf("%w: nil settlement", ErrInvalid)
	}
	if s.ID == "" {
		return fmt.Errorf("%w: settlement without id", ErrInvalid)
	}
	if s.Consumer == "" || s.Day == "" {
		return fmt.Errorf("%w: settlement %s without consumer or day", ErrInvalid, s.ID)
	}
	if s.Reservation != nil {
		if err := validateReservation(s.Reservation); err != nil {
			return err
		}
	}
	return nil
}

// balanceCosts returns what a reservation costs its balance in full and for
// its input alone.
func balanceCosts(r *Reservation) (full, input int64) {
	w := r.Balance.Weights
	full = w.Cost(usageOf(r.Input, r.Output))
	input = w.Cost(usageOf(r.Input, 0))
	return full, input
}

// windowOutcome is one window's answer to an admission.
type windowOutcome struct {
	refused  bool
	tooLarge bool
	retry    time.Duration
}

// decide fills the refusal fields of d from per-window and per-slot
// outcomes: the refusing window reported is the one that makes the request
// wait longest (one that can never fit first); a refusing window wins over
// slots because it says how long to wait, and a refusing balance wins over
// both because only a top-up helps it.
func (d *Decision) decide(balanceRefused bool, out []windowOutcome, slotRefused []bool) {
	d.Allowed = true
	d.Refused, d.RefusedSlot = -1, -1
	d.RetryAfter, d.TooLarge = 0, false
	for i, o := range out {
		if !o.refused {
			continue
		}
		d.Allowed = false
		switch {
		case d.TooLarge:
		case o.tooLarge:
			d.Refused, d.TooLarge, d.RetryAfter = i, true, 0
		case d.Refused < 0 || o.retry > d.RetryAfter:
			d.Refused, d.RetryAfter = i, o.retry
		}
	}
	for i, refused := range slotRefused {
		if refused {
			d.Allowed = false
			if d.Refused < 0 && d.RefusedSlot < 0 {
				d.RefusedSlot = i
			}
		}
	}
	if balanceRefused {
		d.Allowed, d.Refused, d.RefusedSlot, d.RetryAfter, d.TooLarge = false, -1, -1, 0, false
	}
}

func usageOf(in, out int64) usage.Usage { return usage.Usage{Input: in, Output: out} }

// usageFields lists the usage totals of u under the metric names of the
// totals hash, in a fixed order.
func usageFields(u usage.Usage) [8]int64 {
	est := int64(0)
	if u.Estimated {
		est = 1
	}
	return [8]int64{1, u.Input, u.Output, u.CachedInput, u.CacheCreation, u.Reasoning, u.Total(), est}
}

// metricNames are the metric parts of the totals hash fields
// ("<metric>:<model>"), in the order of usageFields.
var metricNames = [8]string{"requests", "input", "output", "cached_input", "cache_creation", "reasoning", "total", "estimated"}

func (t *DayTotals) add(metric int, v int64) {
	switch metric {
	case 0:
		t.Requests += v
	case 1:
		t.Input += v
	case 2:
		t.Output += v
	case 3:
		t.CachedInput += v
	case 4:
		t.CacheCreation += v
	case 5:
		t.Reasoning += v
	case 6:
		t.Total += v
	case 7:
		t.Estimated += v
	}
}

// maxTotalsDays bounds the days one Totals query may span.
const maxTotalsDays = 400

// queryDays returns the days q spans, oldest first.
func queryDays(q TotalsQuery) ([]string, error) {
	if q.Consumer == "" {
		return nil, fmt.Errorf("%w: totals query without consumer", ErrInvalid)
	}
	from, err := time.Parse(time.DateOnly, q.From)
	if err != nil {
		return nil, fmt.Errorf("%w: totals query from: %w", ErrInvalid, err)
	}
	to, err := time.Parse(time.DateOnly, q.To)
	if err != nil {
		return nil, fmt.Errorf("%w: totals query to: %w", ErrInvalid, err)
	}
	if to.Before(from) {
		return nil, fmt.Errorf("%w: totals query to %s is before from %s", ErrInvalid, q.To, q.From)
	}
	if to.Sub(from) > maxTotalsDays*24*time.Hour {
		return nil, fmt.Errorf("%w: totals query spans more than %d days", ErrInvalid, maxTotalsDays)
	}
	var days []string
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(time.DateOnly))
	}
	return days, nil
}

func sortStrings(s []string) { sort.Strings(s) }
