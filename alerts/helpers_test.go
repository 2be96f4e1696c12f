package alerts

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// hookServer is a webhook receiver that records every attempt.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	attempts []attempt
	// status answers the nth attempt (from 0); default 204.
	status func(n int) int
	// hold, when set, blocks every attempt until it is closed or the
	// request is abandoned.
	hold chan struct{}
}

type attempt struct {
	n      Notification
	header http.Header
	status int
}

func newHookServer(t testing.TB) *hookServer {
	t.Helper()
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	if h.hold != nil {
		select {
		case <-h.hold:
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	var n Notification
	if r.Method != http.MethodPost || json.Unmarshal(body, &n) != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		return
	}
	h.mu.Lock()
	idx := len(h.attempts)
	status := http.StatusNoContent
	if h.status != nil {
		status = h.status(idx)
	}
	h.attempts = append(h.attempts, attempt{n: n, header: r.Header.Clone(), status: status})
	h.mu.Unlock()
	w.WriteHeader(status)
}

// delivered returns the notifications the webhook accepted.
func (h *hookServer) delivered() []Notification {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Notification
	for _, a := range h.attempts {
		if a.status >= 200 && a.status < 300 {
			out = append(out, a.n)
		}
	}
	return out
}

func (h *hookServer) all() []attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]attempt(nil), h.attempts...)
}

// quickRetry keeps retries in tests short.
var quickRetry = Retry{Attempts: 4, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func newAlerts(t *testing.T, o Options) *Alerts {
	t.Helper()
	a, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a
}

// drain waits until every queued notification has been handled. The
// deadline only stops a broken test from hanging; it measures nothing.
func drain(t *testing.T, as ...*Alerts) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		idle := true
		for _, a := range as {
			s := a.Stats()
			if s.Queued != s.Sent+s.Suppressed+s.Failed {
				idle = false
			}
		}
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications still in flight: %+v", as[0].Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func countBy[T comparable](ns []Notification, key func(Notification) T) map[T]int {
	m := map[T]int{}
	for _, n := range ns {
		m[key(n)]++
	}
	return m
}
