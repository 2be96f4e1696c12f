package alerts

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/internal/redistest"
)

const allotment = 100_000

// spend settles requests of 100 tokens from several goroutines at once
// against one balance until it is past exhausted, the way concurrent
// requests of one consumer cross each threshold together.
func spend(obs []func(Observation), consumer, tier, period string, resetsAt time.Time) {
	var used atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				u := used.Add(100)
				if u > allotment+5_000 {
					return
				}
				// Requests alternate between replicas.
				obs[int(u/100)%len(obs)](Observation{
					Consumer: consumer, Tier: tier, Model: "gpt-4o", Tokens: 100,
					HasQuota: true, QuotaAllotment: allotment, QuotaRemaining: allotment - u,
					QuotaPeriod: period, QuotaResetsAt: resetsAt,
				})
			}
		}()
	}
	wg.Wait()
}

func TestQuotaThresholdsOncePerPeriod(t *testing.T) {
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC))
	env := map[string]string{"HOOK_TOKEN": "Bearer s3cr3t-hook-token"}
	a := newAlerts(t, Options{
		Config: Config{
			Webhook:         Webhook{URL: h.URL + "/tollgate", Headers: map[string]string{"Authorization": "env:HOOK_TOKEN", "X-Team": "platform"}},
			QuotaThresholds: []float64{1.0, 0.8},
		},
		Clock:  clk.Now,
		Getenv: func(k string) string { return env[k] },
	})

	spend([]func(Observation){a.Observe}, "team-a", "standard", "2026-11", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	drain(t, a)
	got := h.delivered()
	if len(got) != 2 {
		t.Fatalf("November: %d notifications, want 2 (80%% and 100%%): %+v", len(got), got)
	}
	slices.SortFunc(got, func(x, y Notification) int { return int((x.Threshold - y.Threshold) * 100) })
	for i, want := range []float64{0.8, 1.0} {
		n := got[i]
		if n.Type != TypeQuotaThreshold || n.Consumer != "team-a" || n.Tier != "standard" || n.Period != "2026-11" || n.Threshold != want {
			t.Errorf("notification %d = %+v, want quota_threshold of team-a (standard) at %v in 2026-11", i, n, want)
		}
		if n.Allotment == nil || *n.Allotment != allotment || n.Used == nil {
			t.Fatalf("notification %d: used/allotment missing: %+v", i, n)
		}
		// The request that crossed reports what it saw: at or past the
		// threshold, and not past it by more than the requests in flight.
		if u := *n.Used; float64(u) < want*allotment || float64(u) > want*allotment+16*100 {
			t.Errorf("threshold %v reported used %d of %d", want, u, allotment)
		}
		if n.RatePerMinute != nil || n.BaselinePerMinute != nil {
			t.Errorf("quota notification carries anomaly fields: %+v", n)
		}
	}
	for _, at := range h.all() {
		if at.header.Get("Authorization") != "Bearer s3cr3t-hook-token" || at.header.Get("X-Team") != "platform" {
			t.Errorf("configured headers not sent: %v", at.header)
		}
		if at.header.Get("Content-Type") != "application/json" || at.header.Get("X-Tollgate-Alert-Id") != at.n.ID {
			t.Errorf("content type or alert id header wrong: %v (id %q)", at.header, at.n.ID)
		}
	}

	// The same period again: nothing new, however often it is crossed.
	spend([]func(Observation){a.Observe}, "team-a", "standard", "2026-11", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	drain(t, a)
	if n := len(h.delivered()); n != 2 {
		t.Fatalf("November crossed again: %d notifications in all, want still 2", n)
	}

	clk.Set(time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC))
	spend([]func(Observation){a.Observe}, "team-a", "standard", "2026-12", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	drain(t, a)
	got = h.delivered()
	byPeriod := countBy(got, func(n Notification) [2]any { return [2]any{n.Period, n.Threshold} })
	want := map[[2]any]int{{"2026-11", 0.8}: 1, {"2026-11", 1.0}: 1, {"2026-12", 0.8}: 1, {"2026-12", 1.0}: 1}
	if len(got) != 4 || !mapsEqual(byPeriod, want) {
		t.Fatalf("after December: %v, want each threshold once per period", byPeriod)
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestQuotaThresholdsResolveConsumerTierDefault(t *testing.T) {
	h := newHookServer(t)
	a := newAlerts(t, Options{Config: Config{
		Webhook:         Webhook{URL: h.URL},
		QuotaThresholds: []float64{0.8, 1.0},
		Consumers: map[string]Override{
			"team-a":  {QuotaThresholds: []float64{0.5, 0.9, 1.0}, Anomaly: &Anomaly{Multiple: 5}},
			"quiet":   {QuotaThresholds: []float64{}},
			"special": {Anomaly: &Anomaly{Multiple: 4}},
		},
		Tiers: map[string]Override{"free": {QuotaThresholds: []float64{1.0}}},
	}})
	tests := []struct {
		consumer, tier string
		want           []float64
	}{
		{"team-a", "free", []float64{0.5, 0.9, 1.0}}, // consumer over tier
		{"special", "free", []float64{1.0}},          // no thresholds of its own: tier's
		{"b", "free", []float64{1.0}},                // tier over default
		{"c", "", []float64{0.8, 1.0}},               // default
		{"d", "enterprise", []float64{0.8, 1.0}},     // tier without overrides: default
		{"quiet", "", nil},                           // empty list: off
	}
	for _, tt := range tests {
		for pct := int64(1); pct <= 100; pct++ {
			a.Observe(Observation{Consumer: tt.consumer, Tier: tt.tier, Tokens: 1000, HasQuota: true,
				QuotaAllotment: allotment, QuotaRemaining: allotment - pct*1000, QuotaPeriod: "2026-11"})
		}
	}
	drain(t, a)
	got := map[string][]float64{}
	for _, n := range h.delivered() {
		got[n.Consumer] = append(got[n.Consumer], n.Threshold)
	}
	for _, tt := range tests {
		t.Run(tt.consumer, func(t *testing.T) {
			g := got[tt.consumer]
			slices.Sort(g)
			if !slices.Equal(g, tt.want) {
				t.Errorf("%s in tier %q: thresholds notified %v, want %v", tt.consumer, tt.tier, g, tt.want)
			}
		})
	}
}

func TestQuotaThresholdsEdgeCases(t *testing.T) {
	h := newHookServer(t)
	a := newAlerts(t, Options{Config: Config{Webhook: Webhook{URL: h.URL}, QuotaThresholds: []float64{0.8, 1.0}}})
	obs := []Observation{
		// One large request from 10% to 100%: both thresholds at once.
		{Consumer: "jump", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 900, QuotaPeriod: "2026-11"},
		{Consumer: "jump", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 0, QuotaPeriod: "2026-11"},
		// Per-model balances count apart.
		{Consumer: "pm", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 100, QuotaPeriod: "2026-11", QuotaModel: "gpt-4o"},
		{Consumer: "pm", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 150, QuotaPeriod: "2026-11", QuotaModel: "gpt-4o-mini"},
		// So do route-scoped balances.
		{Consumer: "sc", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 0, QuotaPeriod: "2026-11", QuotaScope: "chat"},
		{Consumer: "sc", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 100, QuotaPeriod: "2026-11", QuotaScope: "embeddings", QuotaModel: "e3"},
		// Spent past zero (usage beyond the reservation): still 100% once.
		{Consumer: "over", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: -30, QuotaPeriod: "2026-W45"},
		{Consumer: "over", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: -60, QuotaPeriod: "2026-W45"},
		// No balance, or one without an allotment: nothing to judge.
		{Consumer: "noquota", QuotaAllotment: 1000, QuotaRemaining: 0},
		{Consumer: "zero", HasQuota: true, QuotaAllotment: 0, QuotaRemaining: -5},
		// Just under a threshold.
		{Consumer: "under", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 201, QuotaPeriod: "2026-11"},
		// A balance without a period.
		{Consumer: "noperiod", HasQuota: true, QuotaAllotment: 1000, QuotaRemaining: 200},
	}
	for _, o := range obs {
		a.Observe(o)
	}
	drain(t, a)
	got := countBy(h.delivered(), func(n Notification) [5]any { return [5]any{n.Consumer, n.Scope, n.Model, n.Period, n.Threshold} })
	want := map[[5]any]int{
		{"jump", "", "", "2026-11", 0.8}:           1,
		{"jump", "", "", "2026-11", 1.0}:           1,
		{"pm", "", "gpt-4o", "2026-11", 0.8}:       1,
		{"pm", "", "gpt-4o-mini", "2026-11", 0.8}:  1,
		{"sc", "chat", "", "2026-11", 0.8}:         1,
		{"sc", "chat", "", "2026-11", 1.0}:         1,
		{"sc", "embeddings", "e3", "2026-11", 0.8}: 1,
		{"over", "", "", "2026-W45", 0.8}:          1,
		{"over", "", "", "2026-W45", 1.0}:          1,
		{"noperiod", "", "", "none", 0.8}:          1,
	}
	if !mapsEqual(got, want) {
		t.Errorf("notified %v\nwant %v", got, want)
	}
}

// Two replicas share one Redis: each sees every threshold crossed (they
// share the balance), and each threshold is sent once in all.
func TestQuotaThresholdsAcrossReplicasSharingRedis(t *testing.T) {
	srv := redistest.Start(t)
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC))
	cfg := Config{Webhook: Webhook{URL: h.URL, Retry: quickRetry}, QuotaThresholds: []float64{0.8, 1.0}}
	var replicas []*Alerts
	var clients []*redis.Client
	for range 2 {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		clients = append(clients, c)
		replicas = append(replicas, newAlerts(t, Options{Config: cfg, Store: StoreFor(c, clk.Now), Clock: clk.Now}))
	}
	obs := []func(Observation){replicas[0].Observe, replicas[1].Observe}
	novEnd := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	spend(obs, "team-a", "", "2026-11", novEnd)
	drain(t, replicas...)
	if got := countBy(h.delivered(), func(n Notification) float64 { return n.Threshold }); !mapsEqual(got, map[float64]int{0.8: 1, 1.0: 1}) {
		t.Fatalf("two replicas sent %v, want each threshold once", got)
	}
	s0, s1 := replicas[0].Stats(), replicas[1].Stats()
	if s0.Sent+s1.Sent != 2 || s0.Suppressed+s1.Suppressed != 2 {
		t.Errorf("stats: %+v / %+v; want 2 sent and 2 suppressed in all", s0, s1)
	}
	ttl, err := clients[0].TTL(context.Background(), "alert:{c:team-a}:2026-11:0.8").Result()
	if err != nil {
		t.Fatalf("claim key: %v", err)
	}
	if min, max := novEnd.Sub(clk.Now()), novEnd.Sub(clk.Now())+claimRetention; ttl <= min || ttl > max {
		t.Errorf("claim TTL %v, want past the period's end (%v..%v)", ttl, min, max)
	}

	clk.Set(novEnd.Add(time.Second))
	spend(obs, "team-a", "", "2026-12", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	drain(t, replicas...)
	if n := len(h.delivered()); n != 4 {
		t.Fatalf("after the next period: %d notifications, want 4", n)
	}
}
