package breaker

import (
	"testing"
	"time"
)

func BenchmarkAllowDone(b *testing.B) {
	s := New(DefaultConfig(), Options{})
	s.Track("openai")
	b.ReportAllocs()
	for b.Loop() {
		p, _ := s.Allow("openai")
		p.Done(200, 300*time.Millisecond, false)
	}
}

func BenchmarkAllowDoneParallel(b *testing.B) {
	s := New(DefaultConfig(), Options{})
	s.Track("openai")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, _ := s.Allow("openai")
			p.Done(200, 300*time.Millisecond, false)
		}
	})
}

// BenchmarkAllowOpen is the fail-fast path of an open breaker.
func BenchmarkAllowOpen(b *testing.B) {
	cfg := DefaultConfig()
	cfg.CoolDown = Duration(time.Hour)
	cfg.MaxCoolDown = Duration(time.Hour)
	s := New(cfg, Options{})
	for range cfg.MinRequests {
		p, _ := s.Allow("down")
		p.Done(503, time.Millisecond, false)
	}
	if s.State("down") != Open {
		b.Fatal("breaker did not open")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, v := s.Allow("down"); v.Allowed() {
			b.Fatal("open breaker let a call through")
		}
	}
}

func BenchmarkHealth(b *testing.B) {
	s := New(DefaultConfig(), Options{})
	for _, name := range []string{"openai", "anthropic", "gemini", "deepseek"} {
		for i := range 1000 {
			p, _ := s.Allow(name)
			p.Done(200, time.Duration(i)*time.Millisecond, false)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Health()
	}
}

// BenchmarkAllowDoneSlowCall has slow_call on, which reads the clock in
// Allow too.
func BenchmarkAllowDoneSlowCall(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SlowCall = Duration(30 * time.Second)
	s := New(cfg, Options{})
	s.Track("openai")
	b.ReportAllocs()
	for b.Loop() {
		p, _ := s.Allow("openai")
		p.Done(200, 300*time.Millisecond, false)
	}
}
