package ledger

import (
	"context"
	"fmt"
	"strconv"
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
				for b.Loop() {
					run(b, ctx)
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
	for b.Loop() {
		if err := rs.Renew(ctx, res, d.Hold); err != nil {
			b.Fatalf("Renew: %v", err)
		}
	}
}
