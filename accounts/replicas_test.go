package accounts

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/ledger"
)

// watcher records each snapshot a store's Watch hands over, and when.
type watcher struct {
	mu    sync.Mutex
	snaps []*Snapshot
	at    []time.Time
}

func watch(t *testing.T, s *Store) *watcher {
	w := &watcher{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, func(snap *Snapshot) {
			w.mu.Lock()
			w.snaps = append(w.snaps, snap)
			w.at = append(w.at, time.Now())
			w.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// seen returns when the watcher first got a snapshot at version v or
// later, waiting up to 5 s.
func (w *watcher) seen(t *testing.T, v int64) (*Snapshot, time.Time) {
	t.Helper()
	var snap *Snapshot
	var at time.Time
	waitFor(t, "the other replica sees the change", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for i, s := range w.snaps {
			if s.Version >= v {
				snap, at = s, w.at[i]
				return true
			}
		}
		return false
	})
	return snap, at
}

// replicaPair is two stores on one Redis, as two tollgate replicas.
type replicaPair struct {
	srv  *redistest.Server
	a, b *Store
	api  *apiClient // A's admin API
	wb   *watcher   // B's watch
}

func newReplicaPair(t *testing.T, bSubscribes bool) *replicaPair {
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	cfg := Config{EncryptionKeyEnv: testKeyEnv}
	quiet := (&logBuffer{}).logger()
	p := &replicaPair{srv: srv}
	p.a = openStore(t, cfg, Options{Client: ledgerClient(t, srv.Addr()), Logger: quiet}, true)
	p.b = openStore(t, cfg, Options{Client: ledgerClient(t, srv.Addr()), Logger: quiet}, bSubscribes)
	p.api = newAPIClient(t, APIOptions{Store: p.a, Base: testBase, Logger: quiet})
	p.wb = watch(t, p.b)
	return p
}

// ledgerClient is the Redis client tollgate runs with: the ledger's, with
// its short read timeout and no retries.
func ledgerClient(t *testing.T, addr string) redis.UniversalClient {
	t.Helper()
	cfg := ledger.DefaultConfig()
	cfg.Type = ledger.TypeRedis
	cfg.Redis.Addrs = []string{addr}
	l, err := ledger.Open(t.Context(), cfg, ledger.Options{Logger: (&logBuffer{}).logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l.Client()
}

// change makes a change through A's API and returns how long it took
// until B's watch had it, from the moment the request was sent.
func (p *replicaPair) change(t *testing.T, status int, method, path string, body, out any) (time.Duration, *Snapshot) {
	t.Helper()
	start := time.Now()
	p.api.want(status, method, path, body, out)
	v, _, err := p.a.b.version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	snap, at := p.wb.seen(t, v)
	waitFor(t, "A follows its own change", func() bool { return p.a.Snapshot().Version >= v })
	return at.Sub(start), snap
}

type latencies []time.Duration

func (l latencies) String() string {
	s := slices.Clone(l)
	slices.Sort(s)
	return "n=" + strconv.Itoa(len(s)) + " min=" + s[0].Round(10*time.Microsecond).String() +
		" median=" + s[len(s)/2].Round(10*time.Microsecond).String() + " max=" + s[len(s)-1].Round(10*time.Microsecond).String()
}

func TestReplicasSeeChangesThroughPubSub(t *testing.T) {
	p := newReplicaPair(t, true)
	var lat latencies
	d, _ := p.change(t, http.StatusCreated, "POST", "/v1/tiers", `{"name":"pro","limits":{"token_per_minute":100}}`, nil)
	lat = append(lat, d)
	d, snap := p.change(t, http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme","tier":"pro"}`, nil)
	lat = append(lat, d)
	if len(snap.Consumers) != 1 || snap.Consumers[0].Name != "acme" || snap.Consumers[0].Tier != "pro" {
		t.Fatalf("B's snapshot = %+v, want consumer acme", snap.Consumers)
	}
	for i := range 20 {
		d, _ = p.change(t, http.StatusOK, "PATCH", "/v1/consumers/acme", map[string]any{"limits": map[string]any{"query_per_minute": i + 1}}, nil)
		lat = append(lat, d)
	}
	t.Logf("propagation to the other replica (Pub/Sub): %v", lat)
	if n := p.b.reloads[0].Load(); n < 20 {
		t.Errorf("B reloaded %d times on a notification, want most of the 22 changes", n)
	}
	// The subscription outlives idle periods longer than the client's
	// read timeout (500ms).
	time.Sleep(1500 * time.Millisecond)
	notified := p.b.reloads[0].Load()
	d, _ = p.change(t, http.StatusOK, "PATCH", "/v1/consumers/acme", `{"disabled":true}`, nil)
	if p.b.reloads[0].Load() == notified {
		t.Errorf("after an idle period the change reached B by polling (%v), not by its subscription", d)
	}
}

func TestReplicasSeeChangesByPollingAlone(t *testing.T) {
	p := newReplicaPair(t, false)
	var lat latencies
	for i := range 10 {
		d, _ := p.change(t, http.StatusCreated, "POST", "/v1/tiers", map[string]any{"name": "t" + strconv.Itoa(i)}, nil)
		lat = append(lat, d)
	}
	t.Logf("propagation to the other replica (polling every %v): %v", DefaultPollInterval, lat)
	if n := p.b.reloads[1].Load(); n < 10 {
		t.Errorf("B reloaded %d times after a poll, want 10", n)
	}
}

func TestReplicasSeeChangesAfterTheSubscriberIsKilled(t *testing.T) {
	p := newReplicaPair(t, true)
	p.change(t, http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme"}`, nil)
	admin := newRedisClient(t, p.srv.Addr())
	var lat latencies
	for i := range 5 {
		// The subscriber's connection dies; go-redis resubscribes, and
		// what was published meanwhile is lost to it.
		killed, err := admin.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Result()
		if err != nil || killed == 0 {
			t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v", killed, err)
		}
		d, _ := p.change(t, http.StatusOK, "PATCH", "/v1/consumers/acme", map[string]any{"disabled": i%2 == 0}, nil)
		lat = append(lat, d)
	}
	t.Logf("propagation right after CLIENT KILL of the subscriber: %v (reloads: %d notified, %d polled)",
		lat, p.b.reloads[0].Load(), p.b.reloads[1].Load())
	// Once resubscribed, notifications flow again.
	time.Sleep(200 * time.Millisecond)
	notified := p.b.reloads[0].Load()
	d, _ := p.change(t, http.StatusOK, "PATCH", "/v1/consumers/acme", `{"disabled":false}`, nil)
	if p.b.reloads[0].Load() == notified {
		t.Errorf("after resubscribing, B still only polls (the change took %v)", d)
	}
}

func TestReplicasRefuseARevokedOrExpiredKey(t *testing.T) {
	p := newReplicaPair(t, true)
	p.change(t, http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme"}`, nil)
	var k, soon, ciKey issued
	p.change(t, http.StatusCreated, "POST", "/v1/consumers/acme/keys", `{"label":"a"}`, &k)
	p.change(t, http.StatusCreated, "POST", "/v1/consumers/acme/keys", `{"expires_in_seconds":5}`, &soon)
	p.change(t, http.StatusCreated, "POST", "/v1/consumers/ci/keys", `{}`, &ciKey)
	registries := func() map[string]*consumer.Registry {
		out := map[string]*consumer.Registry{}
		for name, s := range map[string]*Store{"A": p.a, "B": p.b} {
			opts, _, warnings := Merge(testBase(), s.Snapshot())
			if len(warnings) > 0 {
				t.Errorf("replica %s: merge warnings %v", name, warnings)
			}
			r, err := consumer.NewRegistry(opts)
			if err != nil {
				t.Fatalf("replica %s: %v", name, err)
			}
			out[name] = r
		}
		return out
	}
	now := time.Now()
	for name, r := range registries() {
		for _, key := range []string{k.Key, soon.Key, ciKey.Key, configConsumerKey} {
			if c, ok := r.Authenticate(key, now); !ok {
				t.Errorf("replica %s refuses %s… before any revocation", name, key[:10])
			} else if want := map[bool]string{true: "ci", false: "acme"}[key == ciKey.Key || key == configConsumerKey]; c.Name != want {
				t.Errorf("replica %s: %s… authenticates %s, want %s", name, key[:10], c.Name, want)
			}
		}
		if _, ok := r.Authenticate(soon.Key, now.Add(6*time.Second)); ok {
			t.Errorf("replica %s accepts a key past its expires_at", name)
		}
	}
	d1, _ := p.change(t, http.StatusNoContent, "DELETE", "/v1/consumers/acme/keys/"+k.ID, nil, nil)
	d2, _ := p.change(t, http.StatusNoContent, "DELETE", "/v1/consumers/ci/keys/"+ciKey.ID, nil, nil)
	t.Logf("revocations reached the other replica in %v and %v", d1, d2)
	for name, r := range registries() {
		for _, key := range []string{k.Key, ciKey.Key} {
			if _, ok := r.Authenticate(key, time.Now()); ok {
				t.Errorf("replica %s accepts the revoked key %s…", name, key[:10])
			}
		}
		if _, ok := r.Authenticate(soon.Key, time.Now()); !ok {
			t.Errorf("replica %s refuses a key that was not revoked", name)
		}
		if _, ok := r.Authenticate(configConsumerKey, time.Now()); !ok {
			t.Errorf("replica %s refuses ci's config key after one of its runtime keys was revoked", name)
		}
	}
	// A disabled consumer is refused with every key.
	p.change(t, http.StatusOK, "PATCH", "/v1/consumers/ci", `{"disabled":true}`, nil)
	for name, r := range registries() {
		if _, ok := r.Authenticate(configConsumerKey, time.Now()); ok {
			t.Errorf("replica %s accepts a key of the disabled consumer ci", name)
		}
	}
}

func TestRecordsSurviveRestarts(t *testing.T) {
	p := newReplicaPair(t, true)
	p.change(t, http.StatusCreated, "POST", "/v1/tiers", `{"name":"pro","quota":{"tokens":10,"period":"week"}}`, nil)
	p.change(t, http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme","tier":"pro"}`, nil)
	var k issued
	p.change(t, http.StatusCreated, "POST", "/v1/consumers/acme/keys", `{}`, &k)
	_, want := p.change(t, http.StatusCreated, "POST", "/v1/providers", map[string]any{"name": "anthropic", "path_prefix": "/anthropic/", "keys": providerKeys[:2]}, nil)

	check := func(t *testing.T, s *Store) {
		got := s.Snapshot()
		if got.Version != want.Version || len(got.Tiers) != 1 || len(got.Consumers) != 1 || len(got.Keys) != 1 || len(got.Providers) != 1 {
			t.Fatalf("reopened store holds %+v, want %+v", got, want)
		}
		if ks := got.Providers[0].Keys; len(ks) != 2 || ks[0].Secret.Reveal() != providerKeys[0] || ks[1].Secret.Reveal() != providerKeys[1] {
			t.Errorf("provider keys after reopening: %v", ks)
		}
		r, err := consumer.NewRegistry(mustOptions(t, got))
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := r.Authenticate(k.Key, time.Now()); !ok || c.Name != "acme" {
			t.Error("the issued key does not authenticate after reopening")
		}
	}
	t.Run("new store", func(t *testing.T) {
		check(t, openStore(t, Config{EncryptionKeyEnv: testKeyEnv}, Options{Client: newRedisClient(t, p.srv.Addr())}, true))
	})
	t.Run("redis restarted", func(t *testing.T) {
		p.srv.Restart()
		check(t, openStore(t, Config{EncryptionKeyEnv: testKeyEnv}, Options{Client: newRedisClient(t, p.srv.Addr())}, true))
		// The running replicas reconnect and follow changes again.
		d, snap := p.change(t, http.StatusCreated, "POST", "/v1/consumers", `{"name":"after"}`, nil)
		if len(snap.Consumers) != 2 {
			t.Errorf("after the restart B holds %d consumers, want 2", len(snap.Consumers))
		}
		t.Logf("first change after a Redis restart reached the other replica in %v", d)
	})
}

func TestStoreFollowsALostDataSet(t *testing.T) {
	p := newReplicaPair(t, true)
	p.change(t, http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme"}`, nil)
	if err := newRedisClient(t, p.srv.Addr()).FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B forgets what Redis lost", func() bool { return len(p.b.Snapshot().Consumers) == 0 })
	// The next change starts a new data set at version 1, which B follows
	// although it had seen version 1 before.
	p.api.want(http.StatusCreated, "POST", "/v1/consumers", `{"name":"beta"}`, nil)
	waitFor(t, "B follows the new data set", func() bool {
		cs := p.b.Snapshot().Consumers
		return len(cs) == 1 && cs[0].Name == "beta"
	})
}

func mustOptions(t *testing.T, snap *Snapshot) consumer.Options {
	t.Helper()
	opts, _, warnings := Merge(testBase(), snap)
	if len(warnings) > 0 {
		t.Errorf("merge warnings: %v", warnings)
	}
	return opts
}

func TestStoreDown(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	logs := &logBuffer{}
	s := openStore(t, Config{EncryptionKeyEnv: testKeyEnv}, Options{Client: ledgerClient(t, srv.Addr()), Logger: logs.logger()}, true)
	c := newAPIClient(t, APIOptions{Store: s, Base: testBase, Logger: logs.logger()})
	c.want(http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme"}`, nil)
	waitFor(t, "the store follows its change", func() bool { return len(s.Snapshot().Consumers) == 1 })

	srv.Kill()
	c.wantError(http.StatusServiceUnavailable, "GET", "/v1/consumers", nil, "accounts store unavailable")
	c.wantError(http.StatusServiceUnavailable, "POST", "/v1/consumers", `{"name":"beta"}`, "accounts store unavailable")
	waitFor(t, "the outage is logged", func() bool { return strings.Contains(logs.String(), "keeping the accounts loaded last") })
	if cs := s.Snapshot().Consumers; len(cs) != 1 {
		t.Errorf("while Redis is down the replica holds %d consumers, want the 1 loaded last", len(cs))
	}

	srv.Restart()
	c.want(http.StatusCreated, "POST", "/v1/consumers", `{"name":"beta"}`, nil)
	waitFor(t, "the store follows changes again", func() bool { return len(s.Snapshot().Consumers) == 2 })
	if !strings.Contains(logs.String(), "store answers again") {
		t.Errorf("the recovery is not logged:\n%s", logs)
	}
}
