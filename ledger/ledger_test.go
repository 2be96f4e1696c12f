package ledger

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/processor/usage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func redisConfig(addr, mode, spoolDir string) Config {
	cfg := DefaultConfig()
	cfg.Type = TypeRedis
	cfg.OnError = mode
	cfg.SpoolDir = spoolDir
	cfg.Redis.Addrs = []string{addr}
	cfg.Redis.KeyPrefix = "t:"
	cfg.Redis.DialTimeout = 200 * time.Millisecond
	// A killed Redis fails calls at once; the read timeout only decides
	// when a slow answer is taken for a lost one. A reply lost after its
	// script ran leaves that reservation charged (see README, "Known
	// limits"), so a busy test machine must not time out healthy calls.
	cfg.Redis.ReadTimeout = 3 * time.Second
	return cfg
}

func open(t *testing.T, cfg Config) *Ledger {
	t.Helper()
	l, err := Open(ctxT(t), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func waitPing(t *testing.T, l *Ledger) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.Ping(ctxT(t)) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Redis did not come back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSpoolEmpty waits for the replayer; the bound only keeps a broken
// replayer from hanging the test.
func waitSpoolEmpty(t *testing.T, l *Ledger) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.SpoolDepth() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool still holds %d settlements", l.SpoolDepth())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func addTotals(t *DayTotals, u usage.Usage) {
	for i, v := range usageFields(u) {
		t.add(i, v)
	}
}

// TestRedisKilledMidRun kills Redis in the middle of a stream of requests
// and restarts it: every settlement must reach Redis exactly once, and the
// balance must be charged exactly the usage of the requests Redis admitted.
func TestRedisKilledMidRun(t *testing.T) {
	for _, mode := range []string{FailClosed, FailOpen} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
			l := open(t, redisConfig(srv.Addr(), mode, ""))
			consumer := uniqueName("crash")
			w := tokensWindow("rl:{c:"+consumer+"}:minute", 1<<40, time.Minute)
			bal := &Balance{Key: "quota:{c:" + consumer + "}:none", Allotment: 1 << 40}
			type pending struct {
				res *Reservation
				d   *Decision
			}
			var (
				queue                     []pending
				want                      = DayTotals{Day: "2026-05-01", Model: "m"}
				sharedCost                int64
				refusedByError, localHold int
			)
			settleOne := func(p pending, i int) {
				u := usage.Usage{Input: p.res.Input, Output: int64(i%13 + 1), CachedInput: int64(i % 3)}
				err := l.Settle(ctxT(t), &Settlement{ID: p.res.ID, Consumer: consumer, Model: "m", Day: "2026-05-01", Reservation: p.res, Hold: p.d.Hold, Usage: u})
				if err != nil {
					t.Fatalf("Settle %d: %v", i, err)
				}
				addTotals(&want, u)
				if !p.d.Hold.Local {
					sharedCost += bal.Weights.Cost(u)
				}
			}
			for i := range 300 {
				switch i {
				case 100:
					srv.Kill()
				case 200:
					srv.Restart()
					// go-redis fails dials fast for a while after a run of
					// refused ones; wait until it reconnects.
					waitPing(t, l)
				}
				res := &Reservation{ID: uniqueName("r"), Windows: []Window{w}, Balance: bal, Input: int64(10 + i%5), Output: 20}
				d, err := l.Reserve(ctxT(t), res)
				switch {
				case err != nil && mode == FailOpen:
					t.Fatalf("Reserve %d failed open: %v", i, err)
				case err != nil && !errors.Is(err, ErrUnavailable):
					t.Fatalf("Reserve %d: %v, want ErrUnavailable", i, err)
				case err != nil:
					refusedByError++
				case !d.Allowed:
					t.Fatalf("Reserve %d refused: %+v", i, d)
				default:
					if d.Hold.Local {
						localHold++
					}
					queue = append(queue, pending{res, d})
				}
				// Requests end a while after they start: some reserved
				// before the crash settle during it.
				if len(queue) > 20 {
					settleOne(queue[0], i)
					queue = queue[1:]
				}
			}
			if mode == FailOpen {
				// Admissions go back to Redis once it answers again.
				deadline := time.Now().Add(10 * time.Second)
				for {
					res := &Reservation{ID: uniqueName("r"), Windows: []Window{w}, Balance: bal, Input: 10, Output: 20}
					d, err := l.Reserve(ctxT(t), res)
					if err != nil {
						t.Fatalf("Reserve: %v", err)
					}
					queue = append(queue, pending{res, d})
					if !d.Hold.Local {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("admissions still local 10s after Redis came back")
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			for i, p := range queue {
				settleOne(p, 300+i)
			}
			waitSpoolEmpty(t, l)
			got, err := l.Totals(ctxT(t), TotalsQuery{Consumer: consumer, From: "2026-05-01", To: "2026-05-01"})
			if err != nil {
				t.Fatalf("Totals: %v", err)
			}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("totals in Redis %+v, want %+v", got, want)
			}
			if b, err := l.GetBalance(ctxT(t), bal); err != nil || b != bal.Allotment-sharedCost {
				t.Fatalf("balance %d, %v; want %d", b, err, bal.Allotment-sharedCost)
			}
			switch mode {
			case FailClosed:
				if refusedByError == 0 || refusedByError > 101 || localHold != 0 {
					t.Fatalf("fail_closed: %d reservations failed, %d held locally", refusedByError, localHold)
				}
			case FailOpen:
				if localHold == 0 {
					t.Fatalf("fail_open: no reservation held locally during the outage")
				}
			}
			t.Logf("%d settled, %d failed closed, %d held locally", want.Requests, refusedByError, localHold)
		})
	}
}

func TestSpoolSurvivesRestart(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	cfg := redisConfig(srv.Addr(), FailClosed, dir)
	l1, err := Open(ctxT(t), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	consumer := uniqueName("spool")
	srv.Kill()
	want := DayTotals{Day: "2026-05-01", Model: "m"}
	for i := range 50 {
		u := usage.Usage{Input: int64(i + 1), Output: 2}
		if err := l1.Settle(ctxT(t), &Settlement{ID: uniqueName("s"), Consumer: consumer, Model: "m", Day: "2026-05-01", Usage: u}); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		addTotals(&want, u)
	}
	if got := l1.SpoolDepth(); got != 50 {
		t.Fatalf("spool depth %d, want 50", got)
	}
	if _, err := Open(ctxT(t), cfg, Options{Logger: quiet}); err == nil {
		t.Fatalf("a second ledger opened a spool directory in use")
	}
	if err := l1.Close(); err != nil {
		t.Fatalf("Close with a persisted spool: %v", err)
	}
	srv.Restart()
	l2 := open(t, cfg)
	waitSpoolEmpty(t, l2)
	got, err := l2.Totals(ctxT(t), TotalsQuery{Consumer: consumer, From: "2026-05-01", To: "2026-05-01"})
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("totals after replay %+v, %v; want %+v", got, err, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, spoolFile))
	if err != nil || len(b) != 0 {
		t.Fatalf("spool file after replay: %d bytes, %v", len(b), err)
	}
}

func TestCloseReportsLostSettlements(t *testing.T) {
	srv := redistest.Start(t)
	l, err := Open(ctxT(t), redisConfig(srv.Addr(), FailClosed, ""), Options{Logger: quiet})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	srv.Kill()
	if err := l.Settle(ctxT(t), &Settlement{ID: "s", Consumer: "c", Day: "2026-05-01", Usage: usage.Usage{Input: 1}}); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Close with an undeliverable spool and no spool_dir: %v", err)
	}
}

func TestSpoolBounded(t *testing.T) {
	srv := redistest.Start(t)
	cfg := redisConfig(srv.Addr(), FailClosed, "")
	cfg.SpoolMax = 3
	l := open(t, cfg)
	srv.Kill()
	var errs []error
	for i := range 4 {
		errs = append(errs, l.Settle(ctxT(t), &Settlement{ID: uniqueName("s"), Consumer: "c", Day: "2026-05-01", Usage: usage.Usage{Input: int64(i)}}))
	}
	if errors.Join(errs[:3]...) != nil || !errors.Is(errs[3], ErrSpoolFull) {
		t.Fatalf("settle errors %v, want the 4th to find the spool full", errs)
	}
	srv.Restart()
	waitSpoolEmpty(t, l)
}

func TestOpenMemory(t *testing.T) {
	c := newFakeClock()
	l, err := Open(ctxT(t), Config{}, Options{Clock: c.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	w := tokensWindow("rl:{c:x}:m", 10, time.Minute)
	for i, want := range []bool{true, false} {
		d, err := l.Reserve(ctxT(t), &Reservation{ID: uniqueName("r"), Windows: []Window{w}, Input: 6})
		if err != nil || d.Allowed != want {
			t.Fatalf("reservation %d: %+v, %v", i, d, err)
		}
	}
	c.Advance(61 * time.Second)
	if d, _ := l.Reserve(ctxT(t), &Reservation{ID: uniqueName("r"), Windows: []Window{w}, Input: 6}); !d.Allowed {
		t.Fatalf("window did not slide on the configured clock: %+v", d)
	}
	if l.SpoolDepth() != 0 || l.Client() != nil {
		t.Fatalf("memory ledger has a spool or a client")
	}
}

func TestMemoryBalancePeriodExpires(t *testing.T) {
	c := newFakeClock()
	m := NewMemory(MemoryOptions{Clock: c.Now})
	bal := &Balance{Key: "quota:{c:x}:2026-05-01", Allotment: 100, TTL: 24 * time.Hour}
	if d, _ := m.Reserve(ctxT(t), &Reservation{ID: "r", Balance: bal, Input: 100}); !d.Allowed || d.Balance != 0 {
		t.Fatalf("reservation: %+v", d)
	}
	c.Advance(24 * time.Hour)
	if got, _ := m.GetBalance(ctxT(t), bal); got != 100 {
		t.Fatalf("balance after its ttl = %d, want the allotment again", got)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.Type = TypeRedis
	tests := []struct {
		name  string
		edit  func(c *Config)
		wants []string
	}{
		{"default", func(*Config) {}, nil},
		{"zero", func(c *Config) { *c = Config{} }, nil},
		{"cluster", func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:2", "c:3"} }, nil},
		{"everything wrong", func(c *Config) {
			c.Type = "etcd"
			c.OnError = "shrug"
			c.SpoolMax = -1
			c.UsageTTL = time.Hour
		}, []string{"store.type:", "store.on_error:", "store.spool_max:", "store.usage_ttl:"}},
		{"redis problems", func(c *Config) {
			c.Redis.Addrs = []string{"ok:1", "nohost", "x:2"}
			c.Redis.Password, c.Redis.PasswordEnv = "p", "P"
			c.Redis.DB = 2
			c.Redis.KeyPrefix = "a{b}"
			c.Redis.DialTimeout = -time.Second
			c.Redis.ReadTimeout = -time.Second
		}, []string{"store.redis.addrs[1]:", "store.redis.password:", "store.redis.db:", "store.redis.key_prefix:", "store.redis.dial_timeout:", "store.redis.read_timeout:"}},
		{"no addrs", func(c *Config) { c.Redis.Addrs = nil }, []string{"store.redis.addrs:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			c.Redis.Addrs = append([]string(nil), valid.Redis.Addrs...)
			tc.edit(&c)
			err := c.Validate("store")
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if got := len(strings.Split(err.Error(), "\n")); got != len(tc.wants) {
				t.Errorf("%d problems reported, want %d: %v", got, len(tc.wants), err)
			}
		})
	}
	if _, err := Open(context.Background(), Config{Type: "etcd"}, Options{}); err == nil {
		t.Fatalf("Open accepted an invalid config")
	}
}
