package main

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// Fields 3..15 of a real line; utime=250, stime=50 ticks.
	const rest = " S 1 2 3 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500 18446744073709551615"
	tests := []struct {
		name string
		line string
		want time.Duration
		bad  bool
	}{
		{"plain name", "1234 (tollgate)" + rest, 3 * time.Second, false},
		{"name with spaces and parentheses", "1234 (a (b) c) d)" + rest, 3 * time.Second, false},
		{"no command name", "1234 tollgate S 1 2", 0, true},
		{"truncated", "1234 (tollgate) S 1 2 3", 0, true},
		{"not a number", "1234 (x) S 1 2 3 0 -1 4194560 1000 0 0 0 abc 50 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.line))
			if tt.bad {
				if err == nil {
					t.Fatalf("parseStat accepted %q as %s", tt.line, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStat = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   int64
		bad    bool
	}{
		{"kB", "Name:\tx\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads: 4\n", 12345 << 10, false},
		{"kernel thread has none", "Name:\tkthreadd\nThreads:\t1\n", 0, true},
		{"garbage value", "VmRSS:\t lots kB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus(strings.NewReader(tt.status), "VmRSS:")
			if tt.bad {
				if err == nil {
					t.Fatalf("parseStatus accepted %q as %d", tt.status, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStatus = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// TestProcOfThisProcess reads the real /proc files: CPU time grows with
// work done, and RSS is that of a running Go program.
func TestProcOfThisProcess(t *testing.T) {
	pid := os.Getpid()
	before, err := cpuTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Burn well over one 10 ms tick of CPU.
	deadline := time.Now().Add(200 * time.Millisecond)
	x := uint64(1)
	for time.Now().Before(deadline) {
		for i := range 10000 {
			x = x*6364136223846793005 + uint64(i)
		}
	}
	after, err := cpuTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50*time.Millisecond {
		t.Fatalf("CPU time grew by %s over 200 ms of busy work (x=%d)", after-before, x)
	}
	v, err := rss(pid)
	if err != nil {
		t.Fatal(err)
	}
	if v < 1<<20 || v > 64<<30 {
		t.Fatalf("RSS of this test process = %d bytes", v)
	}
	if _, err := cpuTime(-1); err == nil {
		t.Fatal("cpuTime of a process that does not exist must fail")
	}
}

func TestHistQuantiles(t *testing.T) {
	var h, a, b hist
	if h.quantile(0.5) != 0 {
		t.Fatal("quantile of an empty histogram must be 0")
	}
	for i := 1; i <= 10000; i++ {
		d := time.Duration(i) * time.Microsecond
		h.add(d)
		if i%2 == 0 {
			a.add(d)
		} else {
			b.add(d)
		}
	}
	a.merge(&b)
	for _, hh := range []*hist{&h, &a} {
		for _, tt := range []struct {
			q    float64
			want time.Duration
		}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {0, time.Microsecond}, {1, 10 * time.Millisecond}} {
			got := hh.quantile(tt.q)
			if diff := float64(got-tt.want) / float64(tt.want); diff > 0.016 || diff < -0.016 {
				t.Errorf("q%.2f = %s, want %s within 1.6%%", tt.q, got, tt.want)
			}
		}
		if hh.n != 10000 {
			t.Errorf("n = %d", hh.n)
		}
	}
	// Small values are exact; bucket bounds are continuous.
	var s hist
	s.add(7)
	if s.quantile(0.5) != 7 {
		t.Errorf("a 7 ns sample read back as %s", s.quantile(0.5))
	}
	for i := 1; i <= bucketOf(math.MaxInt64); i++ {
		if lowerBound(i) <= lowerBound(i-1) || bucketOf(lowerBound(i)) != i {
			t.Fatalf("bucket %d: lower bound %d maps back to %d", i, lowerBound(i), bucketOf(lowerBound(i)))
		}
	}
}
