package telemetry

import (
	"path"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Label values that stand for many: every value not kept is counted as
// other; an empty one as none.
const (
	other = "other"
	none  = "none"
)

// maxLabelLen bounds a kept label value; longer values are not names a
// dashboard needs and are counted as other.
const maxLabelLen = 128

// capped folds a label's values into a bounded set: a value is kept when
// allow accepts it and fewer than max values are kept already; every other
// value becomes "other". Reads are lock-free and allocation-free: the kept
// set is an immutable map replaced on the rare insert.
type capped struct {
	max   int
	allow func(string) bool // nil: any value
	// suspect rejects values that may hold a credential: those never
	// become label values.
	suspect func(string) bool
	kept    atomic.Pointer[map[string]string]
	mu      sync.Mutex // serializes inserts
	full    atomic.Bool
	onCap   func() // called once when the cap is first reached
}

func newCapped(max int, allow func(string) bool) *capped {
	c := &capped{max: max, allow: allow, suspect: looksLikeCredential}
	m := map[string]string{}
	c.kept.Store(&m)
	return c
}

func (c *capped) fold(v string) string {
	if v == "" {
		return none
	}
	if k, ok := (*c.kept.Load())[v]; ok {
		return k
	}
	if c.full.Load() || len(v) > maxLabelLen || !utf8.ValidString(v) || c.suspect(v) {
		return other
	}
	if c.allow != nil && !c.allow(v) {
		return other
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.kept.Load()
	if k, ok := old[v]; ok {
		return k
	}
	if len(old) >= c.max {
		if !c.full.Swap(true) && c.onCap != nil {
			c.onCap()
		}
		return other
	}
	m := make(map[string]string, len(old)+1)
	for k, x := range old {
		m[k] = x
	}
	// A copy, so the label does not pin a larger string it was sliced from.
	k := string([]byte(v))
	m[k] = k
	c.kept.Store(&m)
	return k
}

// globs reports whether a model name matches one of the configured
// patterns.
func globs(patterns []string) func(string) bool {
	return func(v string) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, v); ok {
				return true
			}
		}
		return false
	}
}

// knownSet is a set of names read from a callback, refreshed at most once a
// second so that a hot-reloaded consumer list is seen without asking the
// callback on every request.
type knownSet struct {
	list  func() []string
	clock func() time.Time
	set   atomic.Pointer[map[string]struct{}]
	next  atomic.Int64 // unix nanoseconds of the next allowed refresh
	mu    sync.Mutex
}

func (k *knownSet) contains(v string) bool {
	if k.list == nil {
		return true // no list: every name counts, up to the cap
	}
	if s := k.set.Load(); s != nil {
		if _, ok := (*s)[v]; ok {
			return true
		}
	}
	// Not known (yet): the list may have changed since it was read.
	now := k.clock().UnixNano()
	if now < k.next.Load() {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if now >= k.next.Load() {
		names := k.list()
		s := make(map[string]struct{}, len(names))
		for _, n := range names {
			s[n] = struct{}{}
		}
		k.set.Store(&s)
		k.next.Store(now + int64(time.Second))
	}
	_, ok := (*k.set.Load())[v]
	return ok
}

// statusClass maps an HTTP status to its class, "none" when there was no
// response.
func statusClass(s int) string {
	switch {
	case s == 0:
		return none
	case s >= 100 && s < 200:
		return "1xx"
	case s >= 200 && s < 300:
		return "2xx"
	case s >= 300 && s < 400:
		return "3xx"
	case s >= 400 && s < 500:
		return "4xx"
	case s >= 500 && s < 600:
		return "5xx"
	default:
		return other
	}
}

// optCache keeps the measurement options built for each combination of
// folded label values, so a request costs a map lookup instead of building
// attribute sets. Its size is bounded like the label values it is keyed by;
// past max entries, options are built on every call instead of kept.
type optCache[K comparable, V any] struct {
	mu    sync.RWMutex
	m     map[K]*V
	max   int
	build func(K) *V
}

func newOptCache[K comparable, V any](max int, build func(K) *V) *optCache[K, V] {
	return &optCache[K, V]{m: make(map[K]*V), max: max, build: build}
}

func (c *optCache[K, V]) get(k K) *V {
	c.mu.RLock()
	v := c.m[k]
	c.mu.RUnlock()
	if v != nil {
		return v
	}
	v = c.build(k)
	c.mu.Lock()
	if old := c.m[k]; old != nil {
		v = old
	} else if len(c.m) < c.max {
		c.m[k] = v
	}
	c.mu.Unlock()
	return v
}

// opts is one attribute set as both kinds of measurement option.
type opts struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

func newOpts(kv ...attribute.KeyValue) opts {
	o := metric.WithAttributeSet(attribute.NewSet(kv...))
	return opts{add: []metric.AddOption{o}, record: []metric.RecordOption{o}}
}
