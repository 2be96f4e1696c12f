package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Snapshot is every runtime record at one version. Provider keys are
// decrypted (in memory only) in the snapshots a [Store] hands to
// watchers. A Snapshot is never changed once made.
type Snapshot struct {
	// Version increases with every change of the store.
	Version int64
	// Tiers, Consumers, Keys and Providers are the runtime records, by
	// name (keys and provider keys oldest first).
	Tiers     []TierRecord
	Consumers []ConsumerRecord
	// States holds what the API changed of config consumers (disabled).
	States    map[string]StateRecord
	Keys      []KeyRecord
	Providers []ProviderRecord
	// Warnings name the records that could not be read.
	Warnings []string

	epoch string
	// providerKeyFields lists every stored provider key by provider name,
	// those of deleted providers included.
	providerKeyFields map[string][]string
}

// Options are what [Open] needs beside the configuration.
type Options struct {
	// Client is the Redis the records live in (the ledger's, see
	// [ledger.Ledger.Client]); nil keeps them in memory.
	Client redis.UniversalClient
	// KeyPrefix is prepended to every key; the store's key prefix.
	KeyPrefix string
	// Getenv reads the encryption key; default os.Getenv.
	Getenv func(string) string
	// Logger receives reload failures; slog.Default() when nil.
	Logger *slog.Logger
	// Clock stamps records and decides expiry; time.Now when nil.
	Clock func() time.Time
}

// Store keeps the runtime accounts and follows their changes.
type Store struct {
	b     backend
	seal  *sealer
	cfg   Config
	log   *slog.Logger
	clock func() time.Time

	mu      sync.Mutex
	cur     *Snapshot
	changed chan struct{}

	poke      chan struct{}
	cancel    context.CancelFunc
	done      sync.WaitGroup
	closeOnce sync.Once

	// subscribe is false in tests that watch polling alone.
	subscribe bool
	// reloads counts the snapshots taken after a notification (0) and
	// after a poll (1).
	reloads [2]atomic.Int64
	failing bool
}

// opTimeout bounds one round trip of the background reloads.
const opTimeout = 5 * time.Second

// Open opens the accounts store and starts following changes. With Redis
// it loads the records now: an unreachable Redis is not an error (the
// store starts empty and loads them once Redis answers), provider keys
// that do not decrypt are (a wrong or missing encryption key).
func Open(ctx context.Context, cfg Config, o Options) (*Store, error) {
	return open(ctx, cfg, o, true)
}

func open(ctx context.Context, cfg Config, o Options, subscribe bool) (*Store, error) {
	if err := cfg.Validate("accounts", o.Getenv); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults(o.KeyPrefix)
	s := &Store{cfg: cfg, log: o.Logger, clock: o.Clock, changed: make(chan struct{}), poke: make(chan struct{}, 1), subscribe: subscribe}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	key, err := cfg.encryptionKey(o.Getenv)
	if err != nil {
		return nil, fmt.Errorf("accounts.encryption_key_env: %w", err)
	}
	if key != nil {
		if s.seal, err = newSealer(key); err != nil {
			return nil, fmt.Errorf("accounts.encryption_key_env: %w", err)
		}
	}
	if o.Client == nil {
		s.b = newMemory()
		if s.seal == nil {
			// Memory records die with the process; so does this key.
			if s.seal, err = ephemeralSealer(); err != nil {
				return nil, err
			}
		}
	} else {
		s.b = newRedisBackend(o.Client, o.KeyPrefix, cfg.Channel)
	}
	s.cur = &Snapshot{States: map[string]StateRecord{}}
	lctx, cancel := context.WithTimeout(ctx, opTimeout)
	snap, err := s.load(lctx)
	cancel()
	switch {
	case errors.Is(err, ErrDecrypt):
		return nil, err
	case err != nil:
		s.log.Warn("accounts: store not reachable at start; runtime accounts load once it answers", "error", err)
		s.failing = true
	default:
		s.cur = snap
		s.logWarnings(snap)
	}
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = stop
	s.done.Add(1)
	go s.follow(lctx)
	return s, nil
}

// load reads and decrypts every record.
func (s *Store) load(ctx context.Context) (*Snapshot, error) {
	r, err := s.b.load(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return snapshotOf(r, s.seal, true)
}

// follow reloads the records whenever the store announces a change, and
// checks the version every poll interval in case an announcement was lost.
func (s *Store) follow(ctx context.Context) {
	defer s.done.Done()
	var notes <-chan struct{}
	if s.subscribe {
		notes = s.b.subscribe(ctx)
	}
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		notified := true
		select {
		case <-ctx.Done():
			return
		case <-notes:
		case <-s.poke:
		case <-tick.C:
			notified = false
		}
		s.refresh(ctx, notified)
	}
}

func (s *Store) refresh(ctx context.Context, notified bool) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	cur := s.Snapshot()
	if !notified {
		v, epoch, err := s.b.version(ctx)
		if err != nil {
			s.noteFailure(err)
			return
		}
		if v == cur.Version && epoch == cur.epoch {
			s.noteSuccess()
			return
		}
	}
	snap, err := s.load(ctx)
	if err != nil && !errors.Is(err, ErrDecrypt) {
		s.noteFailure(err)
		return
	}
	s.noteSuccess()
	if snap.Version == cur.Version && snap.epoch == cur.epoch {
		return
	}
	if notified {
		s.reloads[0].Add(1)
	} else {
		s.reloads[1].Add(1)
	}
	s.logWarnings(snap)
	s.mu.Lock()
	s.cur = snap
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Store) logWarnings(snap *Snapshot) {
	for _, w := range snap.Warnings {
		s.log.Warn("accounts: " + w)
	}
}

func (s *Store) noteFailure(err error) {
	if !s.failing && !errors.Is(err, context.Canceled) {
		s.log.Warn("accounts: cannot read the store; keeping the accounts loaded last", "error", err)
	}
	s.failing = true
}

func (s *Store) noteSuccess() {
	if s.failing {
		s.log.Info("accounts: store answers again")
	}
	s.failing = false
}

// Snapshot returns the records as last loaded.
func (s *Store) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Watch calls fn with the current snapshot, then with each new one, until
// ctx is done. Snapshots that follow each other faster than fn returns are
// coalesced: fn always gets the newest.
func (s *Store) Watch(ctx context.Context, fn func(*Snapshot)) {
	var last *Snapshot
	for {
		s.mu.Lock()
		cur, changed := s.cur, s.changed
		s.mu.Unlock()
		if cur != last {
			fn(cur)
			last = cur
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// Close stops following changes. It does not close the Redis client,
// which belongs to the caller.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.done.Wait()
	})
	return nil
}

// maxAttempts bounds how often a change is validated again after other
// changes landed first.
const maxAttempts = 8

// update runs one change: fn reads the records merged with base and
// returns the changes to make, which commit only if no other change landed
// in between (otherwise fn runs again on the new records). The result must
// still merge without dropping any record that merged before.
func (s *Store) update(ctx context.Context, base Base, fn func(m *merged, now time.Time) ([]op, error)) error {
	for range maxAttempts {
		r, err := s.b.load(ctx)
		if err != nil {
			return unavailable(err)
		}
		before, _ := snapshotOf(r, nil, false)
		m := merge(base, before)
		ops, err := fn(m, s.clock())
		if err != nil || len(ops) == 0 {
			return err
		}
		next := r.clone()
		next.apply(ops)
		after, _ := snapshotOf(next, nil, false)
		if err := checkChange(base, m, after); err != nil {
			return err
		}
		if _, err := s.b.commit(ctx, r.version, ops); errors.Is(err, errStale) {
			continue
		} else if err != nil {
			return unavailable(err)
		}
		select {
		case s.poke <- struct{}{}:
		default:
		}
		return nil
	}
	return fail(ErrBusy, "the accounts kept changing while this change was made; try again")
}

// checkChange refuses a change that would make a record that merged
// before unusable, e.g. a tier change that leaves a consumer with invalid
// limits. Records that were unusable before do not block other changes.
func checkChange(base Base, before *merged, after *Snapshot) error {
	_, warnings := merge(base, after).options(base)
	fresh := newWarnings(before.warnings, warnings)
	if len(fresh) > 0 {
		// Some may come from building the registry, which before.warnings
		// does not cover: compare with the registry built before.
		_, old := before.options(base)
		fresh = newWarnings(old, fresh)
	}
	if len(fresh) > 0 {
		return fail(ErrInvalid, "the change would leave a record unusable: %s", fresh[0])
	}
	return nil
}

func newWarnings(old, now []string) []string {
	seen := make(map[string]bool, len(old))
	for _, w := range old {
		seen[w] = true
	}
	var out []string
	for _, w := range now {
		if !seen[w] {
			out = append(out, w)
		}
	}
	return out
}
