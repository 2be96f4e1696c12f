package redistest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestServerKillRestart(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		survives bool
	}{
		{name: "no persistence", opts: Options{}, survives: false},
		{name: "append only", opts: Options{AppendOnly: true}, survives: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := StartWith(t, tt.opts)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
			defer c.Close()
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			addr := s.Addr()
			s.Kill()
			if err := c.Ping(ctx).Err(); err == nil {
				t.Fatalf("PING after Kill succeeded")
			}
			s.Restart()
			if s.Addr() != addr {
				t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
			}
			got, err := c.Get(ctx, "k").Result()
			switch {
			case tt.survives && (err != nil || got != "v"):
				t.Fatalf("GET after restart = %q, %v; want v", got, err)
			case !tt.survives && err != redis.Nil:
				t.Fatalf("GET after restart = %q, %v; want nil reply", got, err)
			}
			s.Stop()
			s.Stop()
		})
	}
}

func TestTwoServersDistinctPorts(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on one address %s", a.Addr())
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cl.Close()
	// Keys spread over every slot range must all be writable and readable.
	for i := range 100 {
		k := "key" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := cl.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	var masters atomic.Int32
	err := cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		masters.Add(1)
		n, err := m.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			t.Errorf("master %s holds no key: slots not spread", m.Options().Addr)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachMaster: %v", err)
	}
	if n := masters.Load(); n != 3 {
		t.Fatalf("cluster has %d masters, want 3", n)
	}
}

func TestCounter(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	var n Counter
	c.AddHook(&n)
	if err := c.Set(ctx, "a", 1, 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	pipe := c.Pipeline()
	for range 5 {
		pipe.Incr(ctx, "a")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	if got := n.RoundTrips(); got != 2 {
		t.Fatalf("counted %d round trips for a command and a 5-command pipeline, want 2", got)
	}
	n.Reset()
	if got := n.RoundTrips(); got != 0 {
		t.Fatalf("Reset left %d", got)
	}
}
