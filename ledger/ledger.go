// Package ledger keeps the counters tollgate charges: rate-limit windows,
// quota balances, concurrency slots and daily usage totals. An admission
// reserves tokens and a request in every matching window, the balance and a
// lease on every concurrency slot at once; the settlement later replaces
// that reservation with the usage the provider reported and gives the
// leases back, exactly once per request id.
//
// Two stores implement [Store]: an in-memory one (the embedded default, and
// the per-replica fallback when Redis fails open) and a Redis one that every
// replica shares (single node, Sentinel or Cluster).
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

// ErrUnavailable is returned (wrapped) when the store cannot be reached or
// did not answer. Callers decide between failing closed and failing open.
var ErrUnavailable = errors.New("store unavailable")

// ErrLeaseLost is returned (wrapped) by Renew when a lease of the
// reservation is no longer held: it expired before the renewal, or the
// reservation was settled. The lease is not taken again (that could push
// the slot over its Max); the request goes on without counting against the
// slot, and the caller should log it.
var ErrLeaseLost = errors.New("concurrency lease lost")

// ErrInvalid is returned (wrapped) for a reservation or settlement that no
// store could carry out, such as a window without a size; it is a bug in the
// caller, not a refusal.
var ErrInvalid = errors.New("invalid ledger request")

// Store is what the request path and the admin API need from a ledger.
type Store interface {
	// Reserve checks every window, the balance and every slot of r and,
	// only when each has room, takes r's amounts from all of them and a
	// lease on each slot. It is atomic per hash tag group (see [Window.Key])
	// and costs one round trip to a remote store. A refusal is a Decision
	// with Allowed false, not an error.
	Reserve(ctx context.Context, r *Reservation) (*Decision, error)

	// Settle replaces a reservation by the actual usage, releases its slot
	// leases and adds the usage to the daily totals, in the same round trip.
	// It is idempotent by s.ID: settling the same id again changes nothing
	// and returns nil.
	Settle(ctx context.Context, s *Settlement) error

	// Renew extends every slot lease of an admitted reservation to Lease
	// from now, in one round trip; h is the Decision.Hold of the admission.
	// Renewing again is harmless. A lease that is no longer held (expired,
	// or released by Settle) is not taken again: the others are renewed and
	// the error wraps [ErrLeaseLost]. A reservation without slots, or a hold
	// that took nothing, renews nothing and returns nil. Renewal is best
	// effort: a failure is returned (wrapping ErrUnavailable), never retried
	// or spooled.
	Renew(ctx context.Context, r *Reservation, h Hold) error

	// GetBalance returns the remaining balance of b (its allotment when the
	// period has not been touched yet).
	GetBalance(ctx context.Context, b *Balance) (int64, error)
	// SetBalance sets the remaining balance of b to v.
	SetBalance(ctx context.Context, b *Balance, v int64) error
	// AddBalance adds delta (which may be negative) to the balance of b and
	// returns the new balance.
	AddBalance(ctx context.Context, b *Balance, delta int64) (int64, error)

	// Totals returns the daily usage totals of one consumer for the days
	// in [from, to] (YYYY-MM-DD, inclusive), optionally only for one model.
	Totals(ctx context.Context, q TotalsQuery) ([]DayTotals, error)

	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// Unit is what a window counts.
type Unit uint8

const (
	// Requests counts one per admitted request.
	Requests Unit = iota
	// Tokens counts tokens of the TokenType of the window.
	Tokens
)

// TokenType selects which tokens a token window counts.
type TokenType uint8

const (
	// TotalTokens counts input and output tokens.
	TotalTokens TokenType = iota
	// InputTokens counts prompt tokens only.
	InputTokens
	// OutputTokens counts completion tokens only.
	OutputTokens
)

// Window is one rate-limit counter over a sliding window of Size.
type Window struct {
	// Key identifies the counter. It contains exactly one Redis hash tag
	// ("{...}"); every key sharing a tag is updated by one atomic script.
	// Keys of windows scoped to a consumer use the tag "{c:<consumer>}" so
	// they group with that consumer's balance and totals.
	Key string `json:"key"`
	// Limit is the most the window may hold.
	Limit int64 `json:"limit"`
	// Size is the length of the window: a second, minute, hour or day.
	Size time.Duration `json:"size"`
	// Unit is what the window counts.
	Unit Unit `json:"unit"`
	// TokenType selects the tokens counted when Unit is Tokens.
	TokenType TokenType `json:"token_type,omitempty"`
	// Rule names the rule the window comes from, for refusals and metrics.
	Rule string `json:"rule"`
}

// Amount returns what a request with in input and out output tokens takes
// from w.
func (w *Window) Amount(in, out int64) int64 {
	if w.Unit == Requests {
		return 1
	}
	switch w.TokenType {
	case InputTokens:
		return in
	case OutputTokens:
		return out
	default:
		return in + out
	}
}

// Slot is a concurrency limit: at most Max requests hold a lease on it at
// once. A request takes a lease at admission and gives it back when it is
// settled; a lease that is neither renewed nor released within Lease is
// dropped, so the slots of a replica that died come back on their own.
type Slot struct {
	// Key identifies the slot and contains exactly one hash tag, like
	// [Window.Key]: a consumer's slot uses [ConsumerTag] so that it is
	// checked by the same script as the consumer's windows and balance.
	Key string `json:"key"`
	// Max is the most leases held at once; 0 refuses every request.
	Max int64 `json:"max"`
	// Lease is how long a lease lives without a renewal (at least a
	// millisecond). A request that may run longer calls Renew about every
	// Lease/3.
	Lease time.Duration `json:"lease"`
	// Rule names what the slot comes from, for refusals and metrics.
	Rule string `json:"rule"`
}

// Weights are the cost of each kind of token in balance units. A zero
// Weights counts every input and output token as one unit; otherwise every
// field is a price: cached and cache-creation tokens are priced by their own
// weight instead of Input's, reasoning tokens by theirs instead of Output's.
type Weights struct {
	Input         float64 `json:"input,omitempty"`
	Output        float64 `json:"output,omitempty"`
	CachedInput   float64 `json:"cached_input,omitempty"`
	CacheCreation float64 `json:"cache_creation,omitempty"`
	Reasoning     float64 `json:"reasoning,omitempty"`
}

// IsZero reports whether no weight is set.
func (w Weights) IsZero() bool { return w == Weights{} }

// Cost returns the balance units u costs, rounded up.
func (w Weights) Cost(u usage.Usage) int64 {
	if w.IsZero() {
		return u.Input + u.Output
	}
	plainIn := float64(u.Input - u.CachedInput - u.CacheCreation)
	plainOut := float64(u.Output - u.Reasoning)
	cost := w.Input*plainIn + w.CachedInput*float64(u.CachedInput) + w.CacheCreation*float64(u.CacheCreation) +
		w.Output*plainOut + w.Reasoning*float64(u.Reasoning)
	return int64(math.Ceil(cost - 1e-9))
}

// Balance is a quota account: a number of balance units that admissions
// reserve from and settlements charge.
type Balance struct {
	// Key identifies the balance, including its period (e.g. a month) and a
	// hash tag "{c:<consumer>}".
	Key string `json:"key"`
	// Allotment is the balance a period starts with. When the key does not
	// exist yet it is created with this value; 0 for balances without a
	// period, which start empty and are topped up by hand.
	Allotment int64 `json:"allotment"`
	// TTL, when set, expires the key this long after it is created, a while
	// after its period ends.
	TTL time.Duration `json:"ttl,omitempty"`
	// Weights prices tokens in balance units.
	Weights Weights `json:"weights"`
}

// Reservation is what one request asks for at admission.
type Reservation struct {
	// ID is the request id; settlements of the reservation carry it.
	ID string `json:"id"`
	// Windows are every window that applies to the request.
	Windows []Window `json:"windows,omitempty"`
	// Balance is the quota account charged, or nil.
	Balance *Balance `json:"balance,omitempty"`
	// Input is the estimated number of prompt tokens.
	Input int64 `json:"input"`
	// Output is the number of completion tokens reserved.
	Output int64 `json:"output"`
	// Slots are the concurrency limits the request holds a lease on from
	// admission to settlement. The lease is named by ID: an ID admitted
	// again while it holds a lease keeps that one lease, and a refusal of
	// the second admission may release it, so a new request needs a new ID.
	Slots []Slot `json:"slots,omitempty"`
}

// Decision is the outcome of a Reserve.
type Decision struct {
	// Allowed is true when every window, the balance and every slot had
	// room and the reservation was taken.
	Allowed bool
	// A refusal names one cause, by precedence: the balance (only a top-up
	// or the next period helps), then a window (it says how long to wait),
	// then a slot (it frees when any request in flight ends). When Allowed
	// is false: Refused ≥ 0 names the window, else RefusedSlot ≥ 0 names
	// the slot, else (both -1) the balance refused.
	//
	// Refused is the index in Reservation.Windows of the refusing window,
	// or -1.
	Refused int
	// RefusedSlot is the index in Reservation.Slots of the refusing slot, or
	// -1 (always -1 when Allowed, or when a window or the balance refused).
	RefusedSlot int
	// RetryAfter is how long until the refusing window has room for the
	// request (0 when a balance refused: only a top-up or the next period
	// helps; 0 when TooLarge; 0 when a slot refused, which frees whenever a
	// request in flight ends).
	RetryAfter time.Duration
	// TooLarge is true when the request alone is more than the Limit of the
	// refusing window: it will never be admitted, however long it waits.
	TooLarge bool
	// Windows holds, in the order of Reservation.Windows, each window's
	// state after this admission (or at the refusal).
	Windows []WindowState
	// Balance is the remaining balance after the reservation (or at the
	// refusal); meaningful only when the reservation had a Balance.
	Balance int64
	// Slots holds, in the order of Reservation.Slots, each slot's state
	// after this admission (or at the refusal).
	Slots []SlotState
	// Hold is what Settle needs to replace the reservation.
	Hold Hold
}

// WindowState is a window's limit and room as seen by one admission.
type WindowState struct {
	// Limit is the window's limit.
	Limit int64
	// Remaining is what is left of Limit in the window.
	Remaining int64
	// Reset is how long until the window has room for its full limit again.
	Reset time.Duration
}

// SlotState is a slot's use as seen by one admission.
type SlotState struct {
	// Max is the slot's limit.
	Max int64
	// InFlight is the number of live leases on the slot, this request's
	// included when it was admitted.
	InFlight int64
}

// Hold records where a reservation was taken, so that settling it corrects
// exactly the counters it charged.
type Hold struct {
	// At is the store's time of the admission, in microseconds since the
	// Unix epoch; each window's charge went to the bucket holding At.
	At int64 `json:"at"`
	// WindowAt, when set, holds the admission time of each window (in the
	// order of Reservation.Windows) and overrides At. A reservation spread
	// over several hash tags is charged by several scripts, each reading its
	// own node's clock, so each window keeps the time its bucket was chosen by.
	WindowAt []int64 `json:"window_at,omitempty"`
	// Balance is the number of balance units reserved.
	Balance int64 `json:"balance"`
	// Local is true when the reservation was taken by the per-replica
	// in-memory fallback while the shared store failed open; settling it
	// corrects that fallback and still sends the usage totals to the shared
	// store.
	Local bool `json:"local,omitempty"`
}

// taken reports whether the hold comes from an admission that charged
// the store; the store's clock is never at the epoch.
func (h *Hold) taken() bool { return h.At != 0 || len(h.WindowAt) > 0 }

// windowAt returns the admission time of window i.
func (h *Hold) windowAt(i int) int64 {
	if i < len(h.WindowAt) {
		return h.WindowAt[i]
	}
	return h.At
}

// Settlement replaces one reservation with the actual usage.
type Settlement struct {
	// ID is the request id of the reservation; Settle is idempotent by it.
	ID string `json:"id"`
	// Consumer and Model key the usage totals.
	Consumer string `json:"consumer"`
	Model    string `json:"model"`
	// Day is the day (YYYY-MM-DD) the usage is added to in the totals.
	Day string `json:"day"`
	// Reservation is what the admission reserved, or nil when the request
	// was not admitted through Reserve (its usage still goes to the totals).
	Reservation *Reservation `json:"reservation,omitempty"`
	// Hold is the Decision.Hold of the admission. The zero Hold (that of a
	// refused or failed admission) corrects no counter and releases no
	// lease: only the totals change.
	Hold Hold `json:"hold"`
	// Usage is what the request actually used.
	Usage usage.Usage `json:"usage"`
	// Event is the usage record (protobuf JSON of tollgate.v1.UsageRecord)
	// the Redis store appends to its usage-event stream, once per ID.
	Event json.RawMessage `json:"event,omitempty"`
}

// TotalsQuery selects usage totals.
type TotalsQuery struct {
	Consumer string
	// Model, when set, restricts the totals to one model.
	Model string
	// From and To are days (YYYY-MM-DD), inclusive.
	From, To string
}

// DayTotals is one consumer's usage of one model on one day.
type DayTotals struct {
	Day           string `json:"day"`
	Model         string `json:"model"`
	Requests      int64  `json:"requests"`
	Input         int64  `json:"input_tokens"`
	Output        int64  `json:"output_tokens"`
	CachedInput   int64  `json:"cached_input_tokens"`
	CacheCreation int64  `json:"cache_creation_tokens"`
	Reasoning     int64  `json:"reasoning_tokens"`
	Total         int64  `json:"total_tokens"`
	// Estimated counts the requests whose usage tollgate had to estimate.
	Estimated int64 `json:"estimated_requests"`
}

// inlineStates is how many window states a Decision holds in its own
// allocation.
const inlineStates = 4

// newDecision returns a Decision with room for the states of windows
// windows and slots slots. A request keeps its Decision until it settles,
// and most need few states: those come in the Decision's allocation, since
// each small object a request in flight keeps pins more of the heap than
// its size.
func newDecision(windows, slots int) *Decision {
	var slotStates []SlotState
	if slots > 0 {
		slotStates = make([]SlotState, slots)
	}
	if windows > inlineStates {
		return &Decision{Windows: make([]WindowState, windows), Slots: slotStates}
	}
	a := new(struct {
		d Decision
		w [inlineStates]WindowState
	})
	a.d.Windows, a.d.Slots = a.w[:windows:windows], slotStates
	return &a.d
}
