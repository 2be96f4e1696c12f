package ledger

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/processor/usage"
)

// BenchmarkReserveSettle measures one request's ledger work, an admission
// and its settlement, with 1 and 6 windows in the consumer's hash tag and a
// balance, with and without a concurrency slot, against the memory store
// and a loopback redis-server.
func BenchmarkReserveSettle(b *testing.B) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = client.Close() })
	rs, err := NewRedis(RedisOptions{Client: client, KeyPrefix: "bench:"})
	if err != nil {
		b.Fatal(err)
	}
	if err := rs.LoadScripts(context.Background()); err != nil {
		b.Fatal(err)
	}
	stores := []struct {
		name string
		s    Store
	}{
		{"memory", NewMemory(MemoryOptions{})},
		{"redis", rs},
	}
	sizes := []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour, time.Minute, time.Hour}
	for _, st := range stores {
		for _, shape := range []struct {
			nw   int
			slot bool
		}{{1, false}, {6, false}, {1, true}, {6, true}} {
			nw := shape.nw
			var slots []Slot
			name := fmt.Sprintf("%s/windows=%d", st.name, nw)
			if shape.slot {
				slots = []Slot{consumerSlot("bench", 1<<40, time.Minute)}
				name += "+slot"
			}
			var ws []Window
			for i := range nw {
				ws = append(ws, tokensWindow(fmt.Sprintf("rl:{c:bench}:%d", i), 1<<50, sizes[i]))
			}
			bal := &Balance{Key: "quota:{c:bench}:none", Allotment: 1 << 50}
			var seq atomic.Int64
			run := func(b *testing.B, ctx context.Context) {
				// Ids are unique across sub-benchmarks sharing a store: one
				// already settled would make Settle a no-op.
				id := name + ":" + strconv.FormatInt(seq.Add(1), 10)
				res := &Reservation{ID: id, Windows: ws, Balance: bal, Slots: slots, Input: 100, Output: 200}
				d, err := st.s.Reserve(ctx, res)
				if err != nil || !d.Allowed {
					b.Fatalf("Reserve: %+v, %v", d, err)
				}
				err = st.s.Settle(ctx, &Settlement{ID: id, Consumer: "bench", Model: "m", Day: "2026-05-01", Reservation: res, Hold: d.Hold, Usage: usage.Usage{Input: 100, Output: 50}})
				if err != nil {
					b.Fatalf("Settle: %v", err)
				}
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				before := scriptMicros(b, client)
				for b.Loop() {
					run(b, ctx)
				}
				if st.name == "redis" {
					// Redis's own time in the scripts: what one request costs
					// the shared server, apart from the client's scheduling.
					b.ReportMetric(float64(scriptMicros(b, client)-before)/float64(b.N), "redis-µs/op")
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						run(b, ctx)
					}
				})
			})
		}
	}
}

// BenchmarkRenew measures the renewal a long stream makes every Lease/3,
// against a loopback redis-server.
func BenchmarkRenew(b *testing.B) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = client.Close() })
	rs, err := NewRedis(RedisOptions{Client: client, KeyPrefix: "bench:"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := rs.LoadScripts(ctx); err != nil {
		b.Fatal(err)
	}
	res := &Reservation{ID: "long", Slots: []Slot{consumerSlot("bench", 1000, time.Minute)}}
	d, err := rs.Reserve(ctx, res)
	if err != nil || !d.Allowed {
		b.Fatalf("Reserve: %+v, %v", d, err)
	}
	b.ReportAllocs()
	before := scriptMicros(b, client)
	for b.Loop() {
		if err := rs.Renew(ctx, res, d.Hold); err != nil {
			b.Fatalf("Renew: %v", err)
		}
	}
	b.ReportMetric(float64(scriptMicros(b, client)-before)/float64(b.N), "redis-µs/op")
}

// scriptMicros returns the microseconds the server has spent running
// scripts (EVALSHA and EVAL), from INFO commandstats.
func scriptMicros(b *testing.B, c *redis.Client) int64 {
	b.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatalf("INFO commandstats: %v", err)
	}
	var total int64
	for line := range strings.SplitSeq(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		for kv := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					b.Fatalf("INFO commandstats %s: %v", line, err)
				}
				total += n
			}
		}
	}
	return total
}
