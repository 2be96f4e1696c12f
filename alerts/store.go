package alerts

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store records which notifications were sent, so that replicas sharing it
// send each one once.
type Store interface {
	// Claim takes key for ttl unless it is already taken; true when this
	// call took it. The caller that takes a key sends the notification.
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Release gives back a key this store claimed, so that a notification
	// that could not be delivered can be claimed and sent again.
	Release(ctx context.Context, key string) error
}

// StoreFor returns a Redis store on client, or a memory store when client
// is nil (the ledger's memory type): pass (*ledger.Ledger).Client().
func StoreFor(client redis.UniversalClient, clock func() time.Time) Store {
	if client == nil {
		return NewMemoryStore(clock)
	}
	return NewRedisStore(client)
}

// rediser is what the Redis store needs of a go-redis client; Client,
// ClusterClient and the failover client all fit.
type rediser interface {
	SetNX(ctx context.Context, key string, value any, expiration time.Duration) *redis.BoolCmd
	redis.Scripter
}

//go:embed release.lua
var releaseLua string

var releaseScript = redis.NewScript(releaseLua)

// RedisStore claims keys with SET NX PX, shared by every replica. Each key
// carries the consumer's hash tag, so it lives on that consumer's Cluster
// slot beside its balance.
type RedisStore struct {
	client rediser
	// token identifies this store's claims, so Release never deletes a
	// claim another replica took after this one's expired.
	token string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store on client.
func NewRedisStore(client rediser) *RedisStore {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &RedisStore{client: client, token: hex.EncodeToString(b[:])}
}

// Claim implements [Store].
func (s *RedisStore) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := s.client.SetNX(ctx, key, s.token, max(ttl, time.Millisecond)).Result()
	if err != nil {
		return false, fmt.Errorf("cannot claim alert %s: %w", key, err)
	}
	return ok, nil
}

// Release implements [Store].
func (s *RedisStore) Release(ctx context.Context, key string) error {
	if err := releaseScript.Run(ctx, s.client, []string{key}, s.token).Err(); err != nil {
		return fmt.Errorf("cannot release alert %s: %w", key, err)
	}
	return nil
}

// maxMemoryClaims bounds a MemoryStore; past it, expired claims are swept
// and then the one expiring soonest is dropped.
const maxMemoryClaims = 1 << 16

// MemoryStore keeps claims in this process: one replica, or the fallback
// while Redis does not answer.
type MemoryStore struct {
	clock func() time.Time
	mu    sync.Mutex
	// claims maps keys to their expiry.
	claims map[string]time.Time
	max    int
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store; clock defaults to time.Now.
func NewMemoryStore(clock func() time.Time) *MemoryStore {
	if clock == nil {
		clock = time.Now
	}
	return &MemoryStore{clock: clock, claims: make(map[string]time.Time), max: maxMemoryClaims}
}

// Claim implements [Store].
func (s *MemoryStore) Claim(_ context.Context, key string, ttl time.Duration) (bool, error) {
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.claims[key]; ok && now.Before(exp) {
		return false, nil
	}
	if len(s.claims) >= s.max {
		s.evict(now)
	}
	s.claims[key] = now.Add(ttl)
	return true, nil
}

// evict makes room: claims already expired go first; otherwise the one
// closest to expiring, which risks the fewest repeated notifications.
func (s *MemoryStore) evict(now time.Time) {
	var soonest string
	var at time.Time
	for k, exp := range s.claims {
		if !now.Before(exp) {
			delete(s.claims, k)
			continue
		}
		if soonest == "" || exp.Before(at) {
			soonest, at = k, exp
		}
	}
	if len(s.claims) >= s.max {
		delete(s.claims, soonest)
	}
}

// Release implements [Store].
func (s *MemoryStore) Release(_ context.Context, key string) error {
	s.mu.Lock()
	delete(s.claims, key)
	s.mu.Unlock()
	return nil
}
