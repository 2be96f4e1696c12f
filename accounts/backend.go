package accounts

import (
	"context"
	"errors"
	"sync"
)

// backend keeps the raw records. Changes are compare-and-set on the
// version: a change validated against version v commits only while the
// store is still at v, so concurrent changes on other replicas are never
// overwritten unseen.
type backend interface {
	// load returns every record and the version they are at.
	load(ctx context.Context) (*raw, error)
	// version returns the current version and epoch, cheaply.
	version(ctx context.Context) (int64, string, error)
	// commit applies ops if the store is at version base, increments the
	// version and announces it; errStale when the version moved.
	commit(ctx context.Context, base int64, ops []op) (int64, error)
	// subscribe returns a channel that receives a value when another
	// change may have been committed, until ctx is done.
	subscribe(ctx context.Context) <-chan struct{}
}

var errStale = errors.New("accounts changed since they were read")

// memory is the backend of a single replica: records live until the
// process stops.
type memory struct {
	mu   sync.Mutex
	r    *raw
	subs map[chan struct{}]struct{}
}

func newMemory() *memory {
	r := newRaw()
	r.epoch = "memory"
	return &memory{r: r, subs: map[chan struct{}]struct{}{}}
}

func (m *memory) load(context.Context) (*raw, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.r.clone(), nil
}

func (m *memory) version(context.Context) (int64, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.r.version, m.r.epoch, nil
}

func (m *memory) commit(_ context.Context, base int64, ops []op) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.r.version != base {
		return m.r.version, errStale
	}
	m.r.apply(ops)
	m.r.version++
	for ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default: // a notification is already pending
		}
	}
	return m.r.version, nil
}

func (m *memory) subscribe(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs[ch] = struct{}{}
	m.mu.Unlock()
	context.AfterFunc(ctx, func() {
		m.mu.Lock()
		delete(m.subs, ch)
		m.mu.Unlock()
	})
	return ch
}
