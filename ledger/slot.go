package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Concurrency slots
//
// A slot counts the requests between admission and settlement. Each holds a
// lease named by its reservation ID, expiring Lease after it was taken or
// last renewed, in the store's clock. An admission first drops the expired
// leases, is refused when Max live leases remain (unless it already holds
// one: leases are by ID, so the same ID never counts twice), and otherwise
// takes its lease in the same atomic step as its windows and balance.
// Settle releases the lease by ID, which makes settling twice harmless; a
// lease whose request was never settled (its replica died, its Settle was
// lost) stops counting when it expires. In Redis a slot is a sorted set,
// member the reservation ID and score the lease's expiry in microseconds;
// the key itself expires slotKeyMargin after its last lease, so an abandoned
// slot leaves nothing behind.

// slotKeyMargin is how long a slot's key outlives its latest lease. Leases
// are dropped by their scores; the key's own expiry only collects keys no
// request touches again, so any margin above clock rounding does.
const slotKeyMargin = time.Second

// validateSlots checks the slots of a reservation whose leases are named id.
func validateSlots(id string, slots []Slot) error {
	if len(slots) > 0 && id == "" {
		return fmt.Errorf("%w: a reservation with slots needs an id to name its leases", ErrInvalid)
	}
	for i := range slots {
		s := &slots[i]
		switch {
		case s.Key == "":
			return fmt.Errorf("%w: slots[%d] has no key", ErrInvalid, i)
		case s.Max < 0:
			return fmt.Errorf("%w: slots[%d] (%s) has max %d", ErrInvalid, i, s.Key, s.Max)
		case s.Lease < time.Millisecond:
			return fmt.Errorf("%w: slots[%d] (%s) has lease %v, want at least 1ms", ErrInvalid, i, s.Key, s.Lease)
		}
	}
	return nil
}

// leaseLost returns the error of a renewal that found the leases of the
// slots lost no longer held, or nil when it found them all.
func leaseLost(id string, lost []string) error {
	if len(lost) == 0 {
		return nil
	}
	return fmt.Errorf("cannot renew %s on %s: %w", id, strings.Join(lost, ", "), ErrLeaseLost)
}

// memSlot is a slot of the memory store.
type memSlot struct {
	leases  map[string]int64 // reservation ID → lease expiry, µs
	expires int64            // the latest lease expiry: the slot is empty after it
	// next is at most the earliest lease expiry, so that admissions scan
	// the leases for expired ones only once one may have expired: about
	// once per Lease while requests end before their lease does.
	next int64
}

// slot returns the slot at key with its expired leases dropped, creating
// it when it does not exist.
func (m *Memory) slot(key string, now int64) *memSlot {
	ms := m.slots[key]
	if ms == nil {
		ms = &memSlot{leases: map[string]int64{}, expires: now, next: now}
		m.slots[key] = ms
		return ms
	}
	if now < ms.next {
		return ms
	}
	ms.next = ms.expires
	for id, exp := range ms.leases {
		if exp <= now {
			delete(ms.leases, id)
		} else {
			ms.next = min(ms.next, exp)
		}
	}
	return ms
}

// take gives id a lease until exp.
func (ms *memSlot) take(id string, exp int64) {
	if len(ms.leases) == 0 {
		ms.next = exp
	}
	ms.leases[id] = exp
	ms.expires = max(ms.expires, exp)
	ms.next = min(ms.next, exp)
}

// Renew implements [Store].
func (m *Memory) Renew(_ context.Context, r *Reservation, h Hold) error {
	if err := validateReservation(r); err != nil {
		return err
	}
	if len(r.Slots) == 0 || !h.taken() {
		return nil
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var lost []string
	for i := range r.Slots {
		s := &r.Slots[i]
		ms := m.slots[s.Key]
		if ms == nil {
			lost = append(lost, s.Key)
			continue
		}
		if exp, ok := ms.leases[r.ID]; !ok || exp <= now {
			delete(ms.leases, r.ID)
			lost = append(lost, s.Key)
			continue
		}
		ms.take(r.ID, now+s.Lease.Microseconds())
	}
	return leaseLost(r.ID, lost)
}
