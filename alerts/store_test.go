package alerts

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/internal/redistest"
)

func TestStores(t *testing.T) {
	srv := redistest.Start(t)
	clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
	newRedis := func() Store {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		return StoreFor(c, clk.Now)
	}
	mem := NewMemoryStore(clk.Now)
	for _, tt := range []struct {
		name   string
		a, b   Store // two replicas
		expire func(d time.Duration)
	}{
		{"redis", newRedis(), newRedis(), func(d time.Duration) { time.Sleep(d) }},
		{"memory", mem, mem, func(d time.Duration) { clk.Add(d) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			claim := func(s Store, key string, ttl time.Duration) bool {
				t.Helper()
				ok, err := s.Claim(ctx, key, ttl)
				if err != nil {
					t.Fatalf("Claim: %v", err)
				}
				return ok
			}
			if !claim(tt.a, "alert:{c:x}:k", time.Hour) || claim(tt.b, "alert:{c:x}:k", time.Hour) || claim(tt.a, "alert:{c:x}:k", time.Hour) {
				t.Fatal("a key was claimed twice")
			}
			if err := tt.a.Release(ctx, "alert:{c:x}:k"); err != nil {
				t.Fatal(err)
			}
			if !claim(tt.b, "alert:{c:x}:k", time.Hour) {
				t.Fatal("a released key cannot be claimed again")
			}
			if !claim(tt.a, "alert:{c:x}:short", 50*time.Millisecond) {
				t.Fatal("first claim refused")
			}
			tt.expire(120 * time.Millisecond)
			if !claim(tt.b, "alert:{c:x}:short", time.Hour) {
				t.Fatal("an expired claim still holds")
			}
		})
	}
	// Release only gives back the releasing replica's own claim: one that
	// expired and was taken by another replica stays taken.
	t.Run("redis release is by owner", func(t *testing.T) {
		a, b := newRedis(), newRedis()
		ctx := context.Background()
		if ok, _ := b.Claim(ctx, "alert:{c:y}:k", time.Hour); !ok {
			t.Fatal("claim refused")
		}
		if err := a.Release(ctx, "alert:{c:y}:k"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := a.Claim(ctx, "alert:{c:y}:k", time.Hour); ok {
			t.Error("a replica released another's claim")
		}
	})
}

// With Redis down, a replica still notifies, deduplicating in its own
// memory.
func TestRedisDownFallsBackToLocalDedup(t *testing.T) {
	srv := redistest.Start(t)
	h := newHookServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	a := newAlerts(t, Options{Config: Config{Webhook: Webhook{URL: h.URL}, QuotaThresholds: []float64{1}, Anomaly: anomalyConfig}, Store: StoreFor(c, nil)})
	srv.Kill()
	for range 3 {
		a.Observe(crossing("team-a"))
		drain(t, a)
	}
	// With the consumer's state forgotten, the crossing is queued again;
	// the replica's own memory still knows it was sent.
	a.states.sweep(time.Now().Add(time.Hour).UnixNano())
	a.Observe(crossing("team-a"))
	drain(t, a)
	if n := len(h.delivered()); n != 1 {
		t.Fatalf("%d notifications with Redis down, want 1", n)
	}
}
