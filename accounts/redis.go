package accounts

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

//go:embed commit.lua
var commitSource string

var commitScript = redis.NewScript(commitSource)

// tag puts every accounts key in one Cluster slot, so that one script
// reads and writes them all.
const tag = "{accounts}"

// redisBackend keeps the records in Redis, shared by every replica.
type redisBackend struct {
	client  redis.UniversalClient
	channel string
	// keys are the version, the epoch and the hashes, in KEYS order.
	keys []string
}

func newRedisBackend(client redis.UniversalClient, prefix, channel string) *redisBackend {
	b := &redisBackend{client: client, channel: channel}
	b.keys = append(b.keys, prefix+tag+":version", prefix+tag+":epoch")
	for _, name := range hashNames {
		b.keys = append(b.keys, prefix+tag+":"+name)
	}
	return b
}

func (b *redisBackend) load(ctx context.Context) (*raw, error) {
	var mget *redis.SliceCmd
	hashes := make([]*redis.MapStringStringCmd, nHashes)
	// MULTI makes the read one consistent cut, at one version.
	_, err := b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		mget = p.MGet(ctx, b.keys[0], b.keys[1])
		for i := range hashes {
			hashes[i] = p.HGetAll(ctx, b.keys[2+i])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load accounts: %w", err)
	}
	r := &raw{}
	if r.version, r.epoch, err = versionOf(mget.Val()); err != nil {
		return nil, err
	}
	for i, h := range hashes {
		r.h[i] = h.Val()
		if r.h[i] == nil {
			r.h[i] = map[string]string{}
		}
	}
	return r, nil
}

func (b *redisBackend) version(ctx context.Context) (int64, string, error) {
	vals, err := b.client.MGet(ctx, b.keys[0], b.keys[1]).Result()
	if err != nil {
		return 0, "", fmt.Errorf("cannot read the accounts version: %w", err)
	}
	return versionOf(vals)
}

// versionOf reads MGET version epoch; missing keys are an empty store.
func versionOf(vals []any) (int64, string, error) {
	if len(vals) != 2 {
		return 0, "", fmt.Errorf("accounts version: unexpected reply of %d values", len(vals))
	}
	var v int64
	if s, ok := vals[0].(string); ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, "", fmt.Errorf("accounts version %q is not a number: %w", s, err)
		}
		v = n
	}
	epoch, _ := vals[1].(string)
	return v, epoch, nil
}

func (b *redisBackend) commit(ctx context.Context, base int64, ops []op) (int64, error) {
	// The epoch is kept only by the first commit to an empty store.
	epoch, err := randomBase62(16)
	if err != nil {
		return 0, err
	}
	args := make([]any, 0, 3+4*len(ops))
	args = append(args, base, b.channel, epoch)
	for _, o := range ops {
		if o.value == "" {
			args = append(args, "d", o.h, o.field)
		} else {
			args = append(args, "s", o.h, o.field, o.value)
		}
	}
	res, err := commitScript.Run(ctx, b.client, b.keys, args...).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("cannot commit accounts change: %w", err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("cannot commit accounts change: unexpected reply %v", res)
	}
	if res[0] != 1 {
		return res[1], errStale
	}
	return res[1], nil
}

func (b *redisBackend) subscribe(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	ps := b.client.Subscribe(ctx, b.channel)
	go func() {
		defer ps.Close()
		// go-redis resubscribes after a lost connection by itself; what
		// was published meanwhile is lost, which polling makes up for.
		msgs := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// unavailable marks a backend failure for the API (503).
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
