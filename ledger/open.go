package ledger

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options are what [Open] needs beside the configuration.
type Options struct {
	// Logger receives failures and recoveries; slog.Default() when nil.
	Logger *slog.Logger
	// Clock drives the in-memory stores (the memory type and the fail-open
	// fallback); time.Now when nil. Redis uses its own clock.
	Clock func() time.Time
	// Hooks are added to the Redis client, e.g. to count round trips or
	// trace commands.
	Hooks []redis.Hook
}

// downFor is how long a failing Redis is bypassed in fail_open mode before
// an admission tries it again, so that an outage does not add a dial
// timeout to every request.
const downFor = time.Second

// Ledger is the [Store] tollgate runs with: the configured store, plus,
// for Redis, the fail-open fallback and the spool that keeps settlements
// Redis could not take.
type Ledger struct {
	primary  Store
	redis    *Redis
	client   redis.UniversalClient
	fallback *Memory
	failOpen bool
	spool    *spool
	log      *slog.Logger
	clock    func() time.Time
	timeout  time.Duration

	downUntil atomic.Int64 // unix nanoseconds
	stop      chan struct{}
	done      sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*Ledger)(nil)

// Open opens the store cfg describes. For Redis it loads the scripts when
// Redis answers (an unreachable Redis is not an error: the ledger starts and
// follows on_error), replays the spool left by a previous run, and starts
// the background replayer.
func Open(ctx context.Context, cfg Config, opts Options) (*Ledger, error) {
	if err := cfg.Validate("store"); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Ledger{log: opts.Logger, clock: opts.Clock, stop: make(chan struct{})}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	if cfg.Type == TypeRedis {
		// go-redis prints every failed dial through its own global logger;
		// the ledger reports what matters itself, so its lines go to debug.
		redis.SetLogger(redisLogger{l.log})
	}
	memOpts := MemoryOptions{Clock: l.clock, UsageTTL: cfg.UsageTTL}
	if cfg.Type == TypeMemory {
		l.primary = NewMemory(memOpts)
		return l, nil
	}
	client, err := newClient(cfg.Redis, opts.Hooks)
	if err != nil {
		return nil, err
	}
	r, err := NewRedis(RedisOptions{Client: client, KeyPrefix: cfg.Redis.KeyPrefix, UsageTTL: cfg.UsageTTL, Events: cfg.UsageEvents})
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMax)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	l.primary, l.redis, l.client, l.spool = r, r, client, sp
	l.failOpen = cfg.OnError == FailOpen
	if l.failOpen {
		l.fallback = NewMemory(memOpts)
	}
	l.timeout = 2*cfg.Redis.ReadTimeout + cfg.Redis.DialTimeout
	if err := r.LoadScripts(ctx); err != nil {
		l.log.Warn("ledger: redis not ready at start, going on", "error", err)
	}
	if n := sp.depth(); n > 0 {
		l.log.Info("ledger: replaying spooled settlements", "count", n)
	}
	l.done.Add(1)
	go l.replay()
	return l, nil
}

func newClient(c RedisConfig, hooks []redis.Hook) (redis.UniversalClient, error) {
	password := c.Password
	if c.PasswordEnv != "" {
		password = os.Getenv(c.PasswordEnv)
		if password == "" {
			return nil, fmt.Errorf("store.redis.password_env: environment variable %s is empty", c.PasswordEnv)
		}
	}
	o := &redis.UniversalOptions{
		Addrs:        c.Addrs,
		MasterName:   c.MasterName,
		Username:     c.Username,
		Password:     password,
		DB:           c.DB,
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		WriteTimeout: c.ReadTimeout,
		// A script whose reply was lost may have run: retrying it would
		// charge twice. Failures go to the caller, the fallback or the spool.
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		// Several addresses without a master name always mean Cluster, one
		// always a single node, whatever the servers answer.
		IsClusterMode: len(c.Addrs) > 1 && c.MasterName == "",
	}
	if c.TLS {
		host, _, err := net.SplitHostPort(c.Addrs[0])
		if err != nil {
			return nil, fmt.Errorf("store.redis.addrs[0]: %w", err)
		}
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	// The deployment is chosen here rather than by redis.NewUniversalClient
	// so that dialing can be set to fail fast: go-redis otherwise retries a
	// refused dial five times, adding half a second to every call while
	// Redis is down, which on_error and the spool already handle.
	var client redis.UniversalClient
	switch {
	case c.MasterName != "":
		fo := o.Failover()
		fo.DialerRetries = 1
		client = redis.NewFailoverClient(fo)
	case o.IsClusterMode:
		co := o.Cluster()
		co.DialerRetries = 1
		client = redis.NewClusterClient(co)
	default:
		so := o.Simple()
		so.DialerRetries = 1
		client = redis.NewClient(so)
	}
	for _, h := range hooks {
		client.AddHook(h)
	}
	return client, nil
}

// Client returns the Redis client, or nil for the memory store.
func (l *Ledger) Client() redis.UniversalClient { return l.client }

// SpoolDepth returns the number of settlements waiting for Redis.
func (l *Ledger) SpoolDepth() int {
	if l.spool == nil {
		return 0
	}
	return l.spool.depth()
}

func (l *Ledger) isDown() bool { return l.clock().UnixNano() < l.downUntil.Load() }

// Reserve implements [Store]. With Redis failing it returns an error
// wrapping ErrUnavailable (fail_closed) or the in-memory fallback's
// decision, marked Hold.Local (fail_open). The fallback holds its own
// concurrency slots: during an outage each replica lets up to Max requests
// of a slot through on its own, beside the leases still held in Redis.
func (l *Ledger) Reserve(ctx context.Context, r *Reservation) (*Decision, error) {
	if l.redis == nil {
		return l.primary.Reserve(ctx, r)
	}
	if l.failOpen && l.isDown() {
		return l.reserveLocal(ctx, r)
	}
	d, err := l.redis.Reserve(ctx, r)
	if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		return d, err
	}
	if !l.failOpen {
		return nil, err
	}
	l.downUntil.Store(l.clock().Add(downFor).UnixNano())
	l.log.Warn("ledger: redis failed, admitting by this replica's own counters", "error", err)
	return l.reserveLocal(ctx, r)
}

func (l *Ledger) reserveLocal(ctx context.Context, r *Reservation) (*Decision, error) {
	d, err := l.fallback.Reserve(ctx, r)
	if err != nil {
		return nil, err
	}
	d.Hold.Local = true
	return d, nil
}

// Settle implements [Store]. It does not lose a valid settlement: what
// Redis does not take goes to the spool, replayed until Redis does, and
// the call returns nil. It returns an error only for an invalid settlement
// or a full spool.
func (l *Ledger) Settle(ctx context.Context, s *Settlement) error {
	if l.redis == nil {
		return l.primary.Settle(ctx, s)
	}
	if err := validateSettlement(s); err != nil {
		return err
	}
	if s.Hold.Local && l.fallback != nil {
		// The fallback's counters are corrected here; the Redis store
		// takes only the usage totals of a local hold.
		if err := l.fallback.Settle(ctx, s); err != nil {
			return err
		}
	}
	if l.spool.depth() == 0 {
		// The request may be gone (a cancelled stream): its usage is not.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
		err := l.redis.Settle(sctx, s)
		cancel()
		if err == nil || errors.Is(err, ErrInvalid) {
			return err
		}
		l.log.Warn("ledger: redis failed, spooling settlement", "id", s.ID, "error", err)
	}
	// Once something waits in the spool, later settlements queue behind
	// it instead of each waiting for a failing Redis.
	if err := l.spool.push(s); err != nil {
		return err
	}
	return nil
}

// Renew implements [Store]. A lease taken by the fail-open fallback is
// renewed there. Renewal is best effort: a failure of Redis is returned
// (wrapping ErrUnavailable) for the caller to log, and is neither retried
// nor spooled; the lease then expires on its own, which frees the slot
// early rather than leaking it.
func (l *Ledger) Renew(ctx context.Context, r *Reservation, h Hold) error {
	if l.redis == nil {
		return l.primary.Renew(ctx, r, h)
	}
	if h.Local {
		if l.fallback == nil {
			return nil
		}
		return l.fallback.Renew(ctx, r, h)
	}
	return l.redis.Renew(ctx, r, h)
}

// GetBalance implements [Store].
func (l *Ledger) GetBalance(ctx context.Context, b *Balance) (int64, error) {
	return l.primary.GetBalance(ctx, b)
}

// SetBalance implements [Store].
func (l *Ledger) SetBalance(ctx context.Context, b *Balance, v int64) error {
	return l.primary.SetBalance(ctx, b, v)
}

// AddBalance implements [Store].
func (l *Ledger) AddBalance(ctx context.Context, b *Balance, delta int64) (int64, error) {
	return l.primary.AddBalance(ctx, b, delta)
}

// Totals implements [Store].
func (l *Ledger) Totals(ctx context.Context, q TotalsQuery) ([]DayTotals, error) {
	return l.primary.Totals(ctx, q)
}

// Ping implements [Store].
func (l *Ledger) Ping(ctx context.Context) error { return l.primary.Ping(ctx) }

// closeDrainTimeout bounds the last attempt to deliver the spool on Close.
const closeDrainTimeout = 2 * time.Second

// Close implements [Store]. It stops the replayer, makes a last attempt to
// deliver the spool, leaves what remains in the spool file (when there is
// one) for the next start, and closes the Redis client. Settlements still
// unsent without a spool file are lost, and Close says so.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		if l.redis == nil {
			l.closeErr = l.primary.Close()
			return
		}
		close(l.stop)
		l.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), closeDrainTimeout)
		l.drain(ctx)
		cancel()
		left, persisted, err := l.spool.close()
		switch {
		case err != nil:
			l.closeErr = err
		case left > 0 && !persisted:
			l.closeErr = fmt.Errorf("%d settlements could not be delivered and are lost (set spool_dir to keep them): %w", left, ErrUnavailable)
		case left > 0:
			l.log.Warn("ledger: settlements left in the spool for the next start", "count", left)
		}
		l.closeErr = errors.Join(l.closeErr, l.client.Close())
	})
	return l.closeErr
}

// redisLogger sends go-redis's own messages to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
