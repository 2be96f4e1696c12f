package alerts

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/quota"
)

func TestConsumerStatesBounded(t *testing.T) {
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
	a := newAlerts(t, Options{
		Config: Config{Webhook: Webhook{URL: h.URL}, QuotaThresholds: []float64{1}, Anomaly: anomalyConfig, MaxConsumers: 64},
		Clock:  clk.Now,
	})
	for i := range 10_000 {
		a.Observe(Observation{Consumer: "c" + strconv.Itoa(i), Tokens: 10, At: clk.Add(time.Millisecond)})
	}
	if n := a.states.size(); n > 64 {
		t.Errorf("%d consumer states kept, want at most max_consumers (64)", n)
	}
	if s := a.Stats(); s.Evicted < 10_000-64 {
		t.Errorf("%d evictions counted, want at least %d", s.Evicted, 10_000-64)
	}
}

func TestSweepDropsIdleConsumers(t *testing.T) {
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
	a := newAlerts(t, Options{
		Config: Config{Webhook: Webhook{URL: h.URL}, Anomaly: anomalyConfig, IdleAfter: 2 * time.Hour},
		Clock:  clk.Now,
	})
	for i := range 100 {
		a.Observe(Observation{Consumer: "old" + strconv.Itoa(i), Tokens: 10, At: clk.Now()})
	}
	clk.Add(90 * time.Minute)
	a.Observe(Observation{Consumer: "recent", Tokens: 10, At: clk.Now()})
	clk.Add(time.Hour)
	if n := a.sweep(); n != 100 {
		t.Errorf("sweep removed %d states, want the 100 idle for 2h30m", n)
	}
	if n := a.states.size(); n != 1 {
		t.Errorf("%d states left, want 1 (seen 1h ago)", n)
	}
}

// The short window's sum always equals its buckets, and the baseline
// stays a non-negative average whatever the timing of observations.
func FuzzWindow(f *testing.F) {
	f.Add([]byte{1, 2, 3, 200, 0, 7, 255, 9})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{255, 255, 255, 1, 1, 1})
	r := compileAnomaly(Anomaly{Multiple: 3, Short: 5 * time.Minute, Baseline: time.Hour})
	f.Fuzz(func(t *testing.T, steps []byte) {
		var w window
		now := int64(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC).UnixNano())
		var maxBucket float64
		for i, s := range steps {
			// Even bytes move time (up to ~4h), odd ones add tokens.
			if i%2 == 0 {
				now += int64(s) * int64(s) * int64(time.Second) / 4
				continue
			}
			w.add(&r, now, int64(s)*100)
			var sum int64
			for _, c := range w.counts {
				sum += c
				maxBucket = math.Max(maxBucket, float64(c))
			}
			if sum != w.shortSum {
				t.Fatalf("short sum %d, buckets hold %d", w.shortSum, sum)
			}
			if w.baseline < 0 || w.baseline > maxBucket+1e-9 || math.IsNaN(w.baseline) {
				t.Fatalf("baseline %v outside [0, %v]", w.baseline, maxBucket)
			}
			if short, base, ok := w.rates(&r, now); ok && (short < 0 || base < 0 || math.IsNaN(short)) {
				t.Fatalf("rates %v %v", short, base)
			}
		}
	})
}

func TestPeriodID(t *testing.T) {
	// 23:30 UTC on Sunday 2026-11-29 is Monday 00:30 in Berlin.
	now := time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC)
	tests := []struct {
		a    quota.Allotment
		want string
	}{
		{quota.Allotment{Tokens: 1, Period: quota.Month}, "2026-11"},
		{quota.Allotment{Tokens: 1, Period: quota.Day}, "2026-11-29"},
		{quota.Allotment{Tokens: 1, Period: quota.Day, Timezone: "Europe/Berlin"}, "2026-11-30"},
		{quota.Allotment{Tokens: 1, Period: quota.Week}, "2026-W48"},
		{quota.Allotment{Tokens: 1, Period: quota.Week, Timezone: "Europe/Berlin"}, "2026-W49"},
		{quota.Allotment{Tokens: 1, Period: quota.None}, ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.a.Period)+tt.a.Timezone, func(t *testing.T) {
			p, err := quota.Compile(quota.Config{Consumers: map[string]quota.Allotment{"c": tt.a}})
			if err != nil {
				t.Fatal(err)
			}
			info, ok := p.Describe("c", now)
			if !ok {
				t.Fatal("no quota")
			}
			if got := PeriodID(info); got != tt.want {
				t.Errorf("PeriodID = %q, want %q", got, tt.want)
			}
			// The period named is the one the ledger charges.
			if b := p.Balance("c", "m", now); tt.want != "" && b.Key[len(b.Key)-len(tt.want):] != tt.want {
				t.Errorf("balance key %q does not end in %q", b.Key, tt.want)
			}
		})
	}
}
