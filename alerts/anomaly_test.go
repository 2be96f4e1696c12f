package alerts

import (
	"testing"
	"time"
)

var anomalyConfig = Anomaly{Multiple: 3, Short: 5 * time.Minute, Baseline: time.Hour, MinTokens: 10_000, Cooldown: time.Hour}

// traffic settles one request of a consumer every 10 seconds at perMinute
// tokens a minute for d, moving the clock, spread over the observers in
// turn (replicas behind a balancer).
func traffic(clk *clock, consumer string, perMinute int64, d time.Duration, obs ...func(Observation)) {
	const step = 10 * time.Second
	for i := range int(d / step) {
		at := clk.Add(step)
		obs[i%len(obs)](Observation{Consumer: consumer, Tier: "standard", Model: "gpt-4o", Tokens: perMinute / 6, At: at})
	}
}

func newAnomalyAlerts(t *testing.T, h *hookServer, clk *clock, o Options) *Alerts {
	t.Helper()
	o.Clock = clk.Now
	if o.Config.Webhook.URL == "" {
		o.Config = Config{Webhook: Webhook{URL: h.URL}, Anomaly: anomalyConfig}
	}
	return newAlerts(t, o)
}

func anomalies(h *hookServer, consumer string) []Notification {
	var out []Notification
	for _, n := range h.delivered() {
		if n.Type == TypeTokenAnomaly && n.Consumer == consumer {
			out = append(out, n)
		}
	}
	return out
}

func TestAnomalyFiresOnAJumpOverBaseline(t *testing.T) {
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
	a := newAnomalyAlerts(t, h, clk, Options{})
	traffic(clk, "team-a", 6_000, 2*time.Hour, a.Observe)
	drain(t, a)
	if n := len(anomalies(h, "team-a")); n != 0 {
		t.Fatalf("%d anomalies for steady traffic", n)
	}
	spikeStart := clk.Now()
	traffic(clk, "team-a", 30_000, 10*time.Minute, a.Observe) // 5×
	drain(t, a)
	got := anomalies(h, "team-a")
	if len(got) != 1 {
		t.Fatalf("%d anomalies for a 5× jump lasting 10 minutes, want 1", len(got))
	}
	n := got[0]
	if n.Threshold != 3 || n.Tier != "standard" || n.Used != nil || n.Period != "" {
		t.Errorf("notification %+v: want threshold 3 (the multiple), tier standard, no quota fields", n)
	}
	if n.RatePerMinute == nil || n.BaselinePerMinute == nil || n.WindowTokens == nil {
		t.Fatalf("rate fields missing: %+v", n)
	}
	rate, base := *n.RatePerMinute, *n.BaselinePerMinute
	if base < 5_700 || base > 6_300 {
		t.Errorf("baseline %.0f tokens/min, want about 6000", base)
	}
	if rate <= 3*base || rate > 5*base*1.05 {
		t.Errorf("rate %.0f tokens/min against baseline %.0f: want between 3× and 5×", rate, base)
	}
	if *n.WindowTokens < anomalyConfig.MinTokens {
		t.Errorf("window tokens %d below min_tokens", *n.WindowTokens)
	}
	// Noticed within the short window of the jump, not after it.
	if d := n.At.Sub(spikeStart); d <= 0 || d > anomalyConfig.Short {
		t.Errorf("noticed %v after the jump began, want within %v", d, anomalyConfig.Short)
	}
}

func TestAnomalyQuietCases(t *testing.T) {
	tests := []struct {
		name string
		run  func(clk *clock, obs func(Observation))
	}{
		{"steady for hours", func(clk *clock, obs func(Observation)) {
			traffic(clk, "c", 6_000, 5*time.Hour, obs)
		}},
		{"slow growth", func(clk *clock, obs func(Observation)) {
			for r := int64(6_000); r < 12_000; r += 500 {
				traffic(clk, "c", r, 20*time.Minute, obs)
			}
		}},
		{"tiny consumer jumping 5×", func(clk *clock, obs func(Observation)) {
			traffic(clk, "c", 300, 2*time.Hour, obs)
			traffic(clk, "c", 1_500, 10*time.Minute, obs) // 7,500 in 5 minutes < min_tokens
		}},
		{"new consumer, no baseline yet", func(clk *clock, obs func(Observation)) {
			traffic(clk, "c", 1_000, 20*time.Minute, obs)
			traffic(clk, "c", 50_000, 10*time.Minute, obs)
		}},
		{"jump of 2.5× under a multiple of 3", func(clk *clock, obs func(Observation)) {
			traffic(clk, "c", 6_000, 2*time.Hour, obs)
			traffic(clk, "c", 15_000, 30*time.Minute, obs)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHookServer(t)
			clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
			a := newAnomalyAlerts(t, h, clk, Options{})
			tt.run(clk, a.Observe)
			drain(t, a)
			if got := anomalies(h, "c"); len(got) != 0 {
				t.Errorf("%d anomalies: %+v", len(got), got[0])
			}
		})
	}
}

func TestAnomalyCooldown(t *testing.T) {
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
	a := newAnomalyAlerts(t, h, clk, Options{})
	traffic(clk, "team-a", 6_000, 2*time.Hour, a.Observe)
	traffic(clk, "team-a", 30_000, 10*time.Minute, a.Observe)
	traffic(clk, "team-a", 6_000, 20*time.Minute, a.Observe)
	traffic(clk, "team-a", 30_000, 10*time.Minute, a.Observe) // within the hour
	drain(t, a)
	first := anomalies(h, "team-a")
	if len(first) != 1 {
		t.Fatalf("%d anomalies for two jumps within the cooldown, want 1", len(first))
	}
	traffic(clk, "team-a", 6_000, time.Hour, a.Observe)
	traffic(clk, "team-a", 30_000, 10*time.Minute, a.Observe) // past it
	drain(t, a)
	got := anomalies(h, "team-a")
	if len(got) != 2 {
		t.Fatalf("%d anomalies after the cooldown, want 2", len(got))
	}
	if d := got[1].At.Sub(got[0].At); d < anomalyConfig.Cooldown {
		t.Errorf("second anomaly %v after the first, want at least the cooldown %v", d, anomalyConfig.Cooldown)
	}
	if got[0].ID == got[1].ID {
		t.Errorf("two anomalies share the id %q", got[0].ID)
	}
}

// Each replica judges the share of traffic it serves; the shared Store
// lets one notification through per consumer per cooldown.
func TestAnomalyAcrossReplicas(t *testing.T) {
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
	store := NewMemoryStore(clk.Now)
	r1 := newAnomalyAlerts(t, h, clk, Options{Store: store})
	r2 := newAnomalyAlerts(t, h, clk, Options{Store: store})
	traffic(clk, "team-a", 12_000, 2*time.Hour, r1.Observe, r2.Observe)
	// Delivered as they are noticed, so each replica claims at its own time.
	for range 60 {
		traffic(clk, "team-a", 60_000, 10*time.Second, r1.Observe)
		traffic(clk, "team-a", 60_000, 10*time.Second, r2.Observe)
		drain(t, r1, r2)
	}
	if got := anomalies(h, "team-a"); len(got) != 1 {
		t.Fatalf("two replicas sent %d anomalies, want 1", len(got))
	}
	if s1, s2 := r1.Stats(), r2.Stats(); s1.Suppressed+s2.Suppressed != 1 {
		t.Errorf("want the second replica's notification suppressed: %+v / %+v", s1, s2)
	}
}

func TestAnomalyOverrides(t *testing.T) {
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
	a := newAnomalyAlerts(t, h, clk, Options{Config: Config{
		Webhook: Webhook{URL: h.URL},
		Anomaly: anomalyConfig,
		Consumers: map[string]Override{
			"team-a": {Anomaly: &Anomaly{Multiple: 5}},
			"team-b": {Anomaly: &Anomaly{Multiple: 3}}, // on again over its tier
		},
		Tiers: map[string]Override{"batch": {Anomaly: &Anomaly{Disabled: true}}},
	}})
	names := []string{"team-a", "team-b", "plain", "batch-job"}
	tiers := map[string]string{"team-b": "batch", "batch-job": "batch"}
	obs := func(perMinute int64, d time.Duration) {
		for range int(d / (10 * time.Second)) {
			at := clk.Add(10 * time.Second)
			for _, c := range names {
				a.Observe(Observation{Consumer: c, Tier: tiers[c], Tokens: perMinute / 6, At: at})
			}
		}
	}
	obs(6_000, 2*time.Hour)
	obs(24_000, 10*time.Minute) // 4×
	drain(t, a)
	for _, tt := range []struct {
		consumer string
		want     int
	}{{"team-a", 0}, {"team-b", 1}, {"plain", 1}, {"batch-job", 0}} {
		if got := len(anomalies(h, tt.consumer)); got != tt.want {
			t.Errorf("%s: %d anomalies for a 4× jump, want %d", tt.consumer, got, tt.want)
		}
	}
}

// A consumer that was silent for hours and then bursts is a traffic spike:
// its baseline decayed while it was idle.
func TestAnomalyBurstAfterSilence(t *testing.T) {
	h := newHookServer(t)
	clk := newClock(time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC))
	a := newAnomalyAlerts(t, h, clk, Options{})
	traffic(clk, "team-a", 2_000, 2*time.Hour, a.Observe)
	clk.Add(3 * time.Hour)
	traffic(clk, "team-a", 4_000, 5*time.Minute, a.Observe)
	drain(t, a)
	if got := anomalies(h, "team-a"); len(got) != 1 {
		t.Fatalf("%d anomalies for a burst after 3 silent hours, want 1", len(got))
	}
}
