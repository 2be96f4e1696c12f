package breaker

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestHealthFigures(t *testing.T) {
	s, clk := testSet(t, nil)
	start := clk.Now()
	s.Track("anthropic")
	clk.Advance(time.Second)
	// 100 calls taking 1ms..100ms: 70 answered 200, 10 404, 15 500, 5
	// 429. Successes come first so that the breaker stays closed.
	statuses := make([]int, 0, 100)
	for range 70 {
		statuses = append(statuses, 200)
	}
	for range 10 {
		statuses = append(statuses, 404)
	}
	for range 15 {
		statuses = append(statuses, 500)
	}
	for range 5 {
		statuses = append(statuses, 429)
	}
	lat := rand.New(rand.NewPCG(1, 2)).Perm(100)
	for i, st := range statuses {
		call(t, s, "openai", st, time.Duration(lat[i]+1)*time.Millisecond)
	}

	hs := s.Health()
	if len(hs) != 2 || hs[0].Name != "anthropic" || hs[1].Name != "openai" {
		t.Fatalf("Health = %+v, want anthropic and openai", hs)
	}
	if a := hs[0]; a.Requests != 0 || a.LatencyMsP50 != 0 || a.State != Closed || !a.Since.Equal(start) {
		t.Fatalf("tracked provider without calls: %+v", a)
	}
	h := hs[1]
	want := StatusClasses{S2xx: 70, S4xx: 15, S5xx: 15}
	if h.Requests != 100 || h.StatusClasses != want {
		t.Fatalf("requests %d classes %+v, want 100 and %+v", h.Requests, h.StatusClasses, want)
	}
	if h.ErrorRate != 0.2 {
		t.Fatalf("error_rate = %v, want 0.2 (15 5xx + 5 429 of 100)", h.ErrorRate)
	}
	nearly(t, "p50", h.LatencyMsP50, 50)
	nearly(t, "p99", h.LatencyMsP99, 99)
	if h.State != Closed || !h.Since.Equal(start.Add(time.Second)) || h.WindowSeconds != 30 {
		t.Fatalf("state %v since %v window %v", h.State, h.Since, h.WindowSeconds)
	}

	// Half the window later, ten more calls of 2s count beside them.
	clk.Advance(15 * time.Second)
	for range 10 {
		call(t, s, "openai", 200, 2*time.Second)
	}
	h = s.Health()[1]
	if h.Requests != 110 || h.StatusClasses.S2xx != 80 {
		t.Fatalf("after 10 more: %+v", h)
	}
	nearly(t, "p99", h.LatencyMsP99, 2000)

	// Once the window has passed, the first hundred are gone.
	clk.Advance(15 * time.Second)
	h = s.Health()[1]
	if h.Requests != 10 || h.ErrorRate != 0 {
		t.Fatalf("after the window: %+v", h)
	}
	nearly(t, "p50", h.LatencyMsP50, 2000)
	clk.Advance(time.Minute)
	if h = s.Health()[1]; h.Requests != 0 || h.LatencyMsP50 != 0 || h.LatencyMsP99 != 0 || h.ErrorRate != 0 {
		t.Fatalf("an empty window: %+v", h)
	}
}

// nearly fails unless got is within the histogram's 3.2% of want.
func nearly(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > want/32 {
		t.Fatalf("%s = %vms, want %vms ± 3.2%%", what, got, want)
	}
}

func TestHealthWhileOpen(t *testing.T) {
	s, clk := testSet(t, nil)
	trip(t, s, "p", 20)
	tripped := clk.Now()
	for range 3 {
		wantReject(t, s, "p", 30*time.Second)
	}
	clk.Advance(10 * time.Second)
	h := s.Health()[0]
	if h.State != Open || !h.Since.Equal(tripped) || h.Rejected != 3 || h.RetryAfterSeconds != 20 {
		t.Fatalf("open: %+v", h)
	}
	if h.Requests != 20 || h.ErrorRate != 0.5 || h.StatusClasses.S5xx != 10 {
		t.Fatalf("open: %+v", h)
	}
	clk.Advance(20 * time.Second)
	if h = s.Health()[0]; h.State != HalfOpen || !h.Since.Equal(tripped.Add(30*time.Second)) || h.RetryAfterSeconds != 0 {
		t.Fatalf("cool-down over: %+v", h)
	}
}

func TestHealthJSONMatchesAdminAPI(t *testing.T) {
	s, _ := testSet(t, nil)
	call(t, s, "openai", 200, 120*time.Millisecond)
	call(t, s, "openai", 503, 20*time.Millisecond)
	b, err := json.Marshal(map[string]any{"providers": s.Health()})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Providers []map[string]any `json:"providers"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	p := got.Providers[0]
	for _, k := range []string{"name", "requests", "status_classes", "error_rate", "latency_ms_p50", "latency_ms_p99", "since", "state"} {
		if _, ok := p[k]; !ok {
			t.Errorf("missing %q in %s", k, b)
		}
	}
	classes, _ := p["status_classes"].(map[string]any)
	if classes["2xx"] != 1.0 || classes["4xx"] != 0.0 || classes["5xx"] != 1.0 {
		t.Errorf("status_classes = %v", classes)
	}
	if p["state"] != "closed" || p["name"] != "openai" || p["requests"] != 2.0 || p["error_rate"] != 0.5 {
		t.Errorf("provider = %s", b)
	}
	if _, err := time.Parse(time.RFC3339Nano, p["since"].(string)); err != nil {
		t.Errorf("since: %v", err)
	}
}

func TestQuantileOnExactValues(t *testing.T) {
	var h [numBins]uint64
	for v := range 20 { // 0..19µs, exact bins
		h[binOf(int64(v))]++
	}
	for _, tc := range []struct{ q, want float64 }{{0.05, 0}, {0.5, 0.009}, {0.99, 0.019}, {1, 0.019}} {
		if got := quantile(&h, 20, tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantile(&[numBins]uint64{}, 0, 0.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
}

func TestBins(t *testing.T) {
	check := func(v int64) {
		b := binOf(v)
		if b < 0 || b >= numBins {
			t.Fatalf("binOf(%d) = %d, out of range", v, b)
		}
		lo, width := binRange(b)
		if v > maxBinVal {
			if b != numBins-1 {
				t.Fatalf("binOf(%d) = %d, want the last bin", v, b)
			}
			return
		}
		if v < lo || v >= lo+width {
			t.Fatalf("binOf(%d) = %d holding [%d, %d)", v, b, lo, lo+width)
		}
		if width > 1 && width*subCount > lo {
			t.Fatalf("bin %d [%d, %d) wider than 1/16 of its start", b, lo, lo+width)
		}
	}
	for v := range int64(1 << 16) {
		check(v)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		check(r.Int64N(1 << 40))
	}
	for _, v := range []int64{maxBinVal, maxBinVal + 1, math.MaxInt64, -5} {
		check(max(v, 0))
	}
	// Bins are in order and adjacent.
	for b := 1; b < numBins; b++ {
		plo, pw := binRange(b - 1)
		lo, _ := binRange(b)
		if plo+pw != lo {
			t.Fatalf("bin %d starts at %d, previous ends at %d", b, lo, plo+pw)
		}
	}
}
