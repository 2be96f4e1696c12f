package accounts_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-ai/tollgate/accounts"
	"github.com/tollgate-ai/tollgate/consumer"
)

// The binary merges the config's accounts with the runtime ones on every
// change and rebuilds what the request path authenticates with.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := accounts.Base{
		Tiers:     []consumer.TierConfig{{Name: "free"}},
		Consumers: []consumer.Config{{Name: "ci", Tier: "free", Keys: []string{"sk-from-the-config-file"}}},
	}
	// No Redis client: the memory store of a single replica.
	store, err := accounts.Open(ctx, accounts.Config{}, accounts.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	registries := make(chan *consumer.Registry, 16)
	go store.Watch(ctx, func(snap *accounts.Snapshot) {
		opts, _, warnings := accounts.Merge(base, snap)
		for _, w := range warnings {
			fmt.Println("warning:", w)
		}
		r, err := consumer.NewRegistry(opts)
		if err != nil {
			panic(err)
		}
		registries <- r
	})
	<-registries // the initial snapshot

	if _, err := store.CreateConsumer(ctx, base, accounts.ConsumerInfo{Name: "acme", Tier: "free"}); err != nil {
		panic(err)
	}
	k, err := store.IssueKey(ctx, base, "acme", accounts.KeyRequest{Label: "laptop"})
	if err != nil {
		panic(err)
	}
	fmt.Println("issued", k.Prefix[:6], "key, printed as", k.Secret)

	for r := range registries {
		if c, ok := r.Authenticate(k.Secret.Reveal(), time.Now()); ok {
			fmt.Println("authenticated as", c.Name)
			break
		}
	}
	if err := store.RevokeKey(ctx, base, "acme", k.ID); err != nil {
		panic(err)
	}
	for r := range registries {
		if _, ok := r.Authenticate(k.Secret.Reveal(), time.Now()); !ok {
			fmt.Println("refused once revoked")
			break
		}
	}
	// Output:
	// issued sk-tg- key, printed as [redacted]
	// authenticated as acme
	// refused once revoked
}
