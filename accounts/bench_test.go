package accounts

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/limiter"
)

// BenchmarkPropagation measures one change made through replica A's API
// until replica B's watch has it, over Pub/Sub on a real Redis.
func BenchmarkPropagation(b *testing.B) {
	srv := redistest.Start(b)
	quiet := (&logBuffer{}).logger()
	cfg := Config{EncryptionKeyEnv: testKeyEnv}
	a := openStore(b, cfg, Options{Client: newRedisClient(b, srv.Addr()), Logger: quiet}, true)
	rb := openStore(b, cfg, Options{Client: newRedisClient(b, srv.Addr()), Logger: quiet}, true)
	seen := make(chan int64, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rb.Watch(ctx, func(s *Snapshot) {
		// The channel always holds the newest version.
		select {
		case <-seen:
		default:
		}
		seen <- s.Version
	})
	<-seen
	if _, err := a.CreateConsumer(ctx, testBase(), ConsumerInfo{Name: "acme"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := a.UpdateConsumer(ctx, testBase(), "acme", ConsumerPatch{Disabled: ptr(i%2 == 0)}); err != nil {
			b.Fatal(err)
		}
		v, _, err := a.b.version(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for got := int64(-1); got < v; {
			select {
			case got = <-seen:
			case <-time.After(5 * time.Second):
				b.Fatal("B did not see the change within 5s")
			}
		}
	}
}

// bigSnapshot is the store of a large deployment.
func bigSnapshot(consumers, keysEach int) *Snapshot {
	s := &Snapshot{States: map[string]StateRecord{}}
	for i := range 20 {
		s.Tiers = append(s.Tiers, TierRecord{Name: "tier" + strconv.Itoa(i), Limits: limiter.Limits{TokenPerMinute: ptr(int64(1000 + i))}})
	}
	for i := range consumers {
		name := "consumer" + strconv.Itoa(i)
		s.Consumers = append(s.Consumers, ConsumerRecord{Name: name, UID: "u" + name, Tier: "tier" + strconv.Itoa(i%20),
			Limits: limiter.Limits{QueryPerMinute: ptr(int64(60))}})
		for k := range keysEach {
			key := fmt.Sprintf("sk-tg-%s-%d-padding-padding", name, k)
			s.Keys = append(s.Keys, KeyRecord{ID: fmt.Sprintf("key_%d_%d", i, k), Consumer: name, ConsumerUID: "u" + name, Hash: consumer.HashKey(key), Prefix: key[:10]})
		}
	}
	return s
}

// BenchmarkMergeAndBuild is what each replica does on a change: merge the
// new snapshot with the config and build the registry.
func BenchmarkMergeAndBuild(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(strconv.Itoa(n)+"_consumers", func(b *testing.B) {
			snap := bigSnapshot(n, 2)
			base := testBase()
			for b.Loop() {
				opts, _, warnings := Merge(base, snap)
				if len(warnings) > 0 {
					b.Fatal(warnings)
				}
				if _, err := consumer.NewRegistry(opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAPIChange is one change through the admin API with n
// consumers already in a Redis store: read, validate, commit.
func BenchmarkAPIChange(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(strconv.Itoa(n)+"_consumers", func(b *testing.B) {
			srv := redistest.Start(b)
			s := openStore(b, Config{EncryptionKeyEnv: testKeyEnv}, Options{Client: newRedisClient(b, srv.Addr()), Logger: (&logBuffer{}).logger()}, true)
			ctx := context.Background()
			for i := range n {
				if _, err := s.CreateConsumer(ctx, testBase(), ConsumerInfo{Name: "c" + strconv.Itoa(i)}); err != nil {
					b.Fatal(err)
				}
			}
			h := NewAPI(APIOptions{Store: s, Base: testBase, Logger: (&logBuffer{}).logger()})
			i := 0
			for b.Loop() {
				i++
				rec := newRecorder()
				h.ServeHTTP(rec, newRequest("PATCH", "/v1/consumers/c0", fmt.Sprintf(`{"limits":{"query_per_minute":%d}}`, i)))
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
