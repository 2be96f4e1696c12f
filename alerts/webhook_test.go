package alerts

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crossing is an observation that crosses the single 100% threshold of
// the configs below.
func crossing(consumer string) Observation {
	return Observation{Consumer: consumer, HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 0, QuotaPeriod: "2026-11"}
}

func TestDeliveryRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int // answers in turn; the last repeats
		// attempts the webhook sees, and whether it ends up delivered.
		attempts  int
		delivered bool
	}{
		{"500 then success", []int{500, 500, 200}, 3, true},
		{"429 then success", []int{429, 204}, 2, true},
		{"503 then 502 then success", []int{503, 502, 201}, 3, true},
		{"400 is not retried", []int{400, 200}, 1, false},
		{"404 is not retried", []int{404, 200}, 1, false},
		{"redirect is not followed", []int{302, 200}, 1, false},
		{"attempts run out", []int{500}, quickRetry.Attempts, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHookServer(t)
			h.status = func(n int) int { return tt.statuses[min(n, len(tt.statuses)-1)] }
			a := newAlerts(t, Options{Config: Config{Webhook: Webhook{URL: h.URL, Retry: quickRetry}, QuotaThresholds: []float64{1}}})
			a.Observe(crossing("team-a"))
			drain(t, a)
			all := h.all()
			if len(all) != tt.attempts {
				t.Fatalf("webhook saw %d attempts, want %d", len(all), tt.attempts)
			}
			for _, at := range all {
				if at.n.ID != all[0].n.ID || at.header.Get("X-Tollgate-Alert-Id") != all[0].n.ID {
					t.Errorf("a retry changed the alert id: %q vs %q", at.n.ID, all[0].n.ID)
				}
			}
			s := a.Stats()
			if got := len(h.delivered()) == 1; got != tt.delivered || (s.Sent == 1) != tt.delivered || (s.Failed == 1) == tt.delivered {
				t.Errorf("delivered %v (stats %+v), want %v", got, s, tt.delivered)
			}
			if s.Retries != uint64(tt.attempts-1) {
				t.Errorf("stats count %d retries, want %d", s.Retries, tt.attempts-1)
			}
		})
	}
}

// A notification the webhook could not take after every attempt is not
// lost: the next request that sees the crossing sends it again, a minute
// later. One the webhook rejected (4xx) is not sent again.
func TestFailedDeliveryIsRetriedByALaterRequest(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fail    int
		resends bool
	}{
		{"unavailable", http.StatusServiceUnavailable, true},
		{"rejected", http.StatusBadRequest, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHookServer(t)
			failing := true
			h.status = func(int) int {
				if failing {
					return tt.fail
				}
				return http.StatusOK
			}
			clk := newClock(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC))
			a := newAlerts(t, Options{Config: Config{Webhook: Webhook{URL: h.URL, Retry: quickRetry}, QuotaThresholds: []float64{1}}, Clock: clk.Now})
			a.Observe(crossing("team-a"))
			drain(t, a)
			h.mu.Lock()
			failing = false
			h.mu.Unlock()

			a.Observe(crossing("team-a")) // too soon: held back
			drain(t, a)
			if n := len(h.delivered()); n != 0 {
				t.Fatalf("resent at once after a failure: %d delivered", n)
			}
			clk.Add(retryCrossingAfter + time.Second)
			a.Observe(crossing("team-a"))
			drain(t, a)
			want := 0
			if tt.resends {
				want = 1
			}
			if n := len(h.delivered()); n != want {
				t.Fatalf("%d delivered after the webhook recovered, want %d", n, want)
			}
			a.Observe(crossing("team-a"))
			drain(t, a)
			if n := len(h.delivered()); n != want {
				t.Fatalf("%d delivered in all, want %d", n, want)
			}
		})
	}
}

// A hung webhook fills the queue; Observe keeps returning and counts what
// it drops. (Its cost is measured in BenchmarkObserveHungWebhook.)
func TestHungWebhookNeverBlocksObserve(t *testing.T) {
	h := newHookServer(t)
	h.hold = make(chan struct{})
	a, err := New(Options{Config: Config{
		Webhook:         Webhook{URL: h.URL, Timeout: time.Hour, Retry: quickRetry},
		QuotaThresholds: []float64{0.5, 1},
		QueueSize:       8,
		Workers:         1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		a.Observe(crossing("c" + strconv.Itoa(i)))
	}
	s := a.Stats()
	if s.Queued > 8+1 || s.Dropped == 0 || s.Queued+s.Dropped < 5000 {
		t.Errorf("stats %+v: want at most queue+worker queued and the rest dropped", s)
	}
	// Close gives up at its deadline rather than wait for the webhook.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a hung webhook = %v, want the context's error", err)
	}
	close(h.hold)
	a.Observe(crossing("after-close")) // a no-op, not a panic
}

func TestCloseDeliversWhatIsQueued(t *testing.T) {
	h := newHookServer(t)
	a, err := New(Options{Config: Config{Webhook: Webhook{URL: h.URL}, QuotaThresholds: []float64{1}, Workers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		a.Observe(crossing("c" + strconv.Itoa(i)))
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := len(h.delivered()); n != 50 {
		t.Errorf("%d delivered by Close, want 50", n)
	}
}

// Header values and the webhook's path (where chat webhooks keep their
// secret) never reach the logs, whatever fails.
func TestSecretsNeverLogged(t *testing.T) {
	const token, pathSecret = "tok-9f8e7d6c5b4a", "T0SECRET/B0SECRET/xyzzy"
	env := map[string]string{"HOOK_TOKEN": token}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	failing := newHookServer(t)
	failing.status = func(int) int { return 500 }
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // connection refused
	for _, base := range []string{failing.URL, down.URL} {
		env["HOOK_URL"] = base + "/services/" + pathSecret + "?key=" + token
		a := newAlerts(t, Options{
			Config: Config{
				Webhook:         Webhook{URL: "env:HOOK_URL", Headers: map[string]string{"Authorization": "env:HOOK_TOKEN"}, Retry: quickRetry},
				QuotaThresholds: []float64{1},
			},
			Logger: logger,
			Getenv: func(k string) string { return env[k] },
		})
		a.Observe(crossing("team-a"))
		drain(t, a)
		if a.Stats().Failed != 1 {
			t.Fatalf("delivery to %s did not fail: %+v", base, a.Stats())
		}
	}
	out := logs.String()
	if !strings.Contains(out, "cannot deliver") {
		t.Fatalf("no failure logged:\n%s", out)
	}
	for _, secret := range []string{token, "T0SECRET", "xyzzy", "/services/"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "-1": 0, "Wed, 21 Oct 2015 07:28:00 GMT": 0} {
		if got := retryAfter(v); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	h := &hook{backoff: 100 * time.Millisecond, maxBackoff: 2 * time.Second}
	huge := &hook{backoff: 1000 * time.Hour, maxBackoff: 5000 * time.Hour}
	for attempt := range maxAttempts {
		ceiling := min(h.backoff<<attempt, h.maxBackoff)
		var top time.Duration
		for range 200 {
			d := h.backoffFor(attempt, 0)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d waits %v, want within [0, %v]", attempt, d, ceiling)
			}
			top = max(top, d)
		}
		if top < ceiling/4 {
			t.Errorf("attempt %d: 200 waits all under %v: no growth", attempt, top)
		}
		if d := h.backoffFor(attempt, time.Second); d < time.Second {
			t.Errorf("attempt %d ignores Retry-After: waits %v", attempt, d)
		}
		if d := h.backoffFor(attempt, time.Hour); d != h.maxBackoff {
			t.Errorf("Retry-After of an hour waits %v, want max_backoff", d)
		}
		if d := huge.backoffFor(attempt, 0); d < 0 || d > huge.maxBackoff {
			t.Errorf("large back-off overflows: %v", d)
		}
	}
}
