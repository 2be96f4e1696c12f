package accounts

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/internal/redistest"
)

// TestRedisCluster runs two replicas on a three-node Cluster: every key
// shares one slot, so the commit script and the MULTI read work there.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	client := func() redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	quiet := (&logBuffer{}).logger()
	cfg := Config{EncryptionKeyEnv: testKeyEnv}
	a := openStore(t, cfg, Options{Client: client(), Logger: quiet}, true)
	b := openStore(t, cfg, Options{Client: client(), Logger: quiet}, true)
	c := newAPIClient(t, APIOptions{Store: a, Base: testBase, Logger: quiet})

	c.want(http.StatusCreated, "POST", "/v1/tiers", `{"name":"pro"}`, nil)
	c.want(http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme","tier":"pro"}`, nil)
	c.want(http.StatusCreated, "POST", "/v1/providers", map[string]any{"name": "anthropic", "path_prefix": "/anthropic/", "keys": providerKeys[:1]}, nil)
	var k issued
	start := time.Now()
	c.want(http.StatusCreated, "POST", "/v1/consumers/acme/keys", `{}`, &k)
	waitFor(t, "B sees the key", func() bool { return len(b.Snapshot().Keys) == 1 })
	t.Logf("a change on a Cluster reached the other replica in %v", time.Since(start).Round(time.Microsecond))

	snap := b.Snapshot()
	opts, providers, _ := Merge(testBase(), snap)
	r, err := consumer.NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Authenticate(k.Key, time.Now()); !ok || got.Name != "acme" {
		t.Error("B does not authenticate the key issued on A")
	}
	if providers[1].Keys[0].Secret.Reveal() != providerKeys[0] {
		t.Error("B cannot read the provider key")
	}

	// Every accounts key hashes to one slot.
	slots := map[int64]bool{}
	ctx := t.Context()
	cc := client().(*redis.ClusterClient)
	err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		keys, err := node.Keys(ctx, "*").Result()
		for _, key := range keys {
			if strings.Contains(key, "{accounts}") {
				slots[node.ClusterKeySlot(ctx, key).Val()] = true
			}
		}
		return err
	})
	if err != nil || len(slots) != 1 {
		t.Errorf("accounts keys span slots %v (%v)", slots, err)
	}
}
