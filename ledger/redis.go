package ledger

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

var (
	//go:embed reserve.lua
	reserveLua    string
	reserveScript = redis.NewScript(reserveLua)
	//go:embed settle.lua
	settleLua    string
	settleScript = redis.NewScript(settleLua)
	//go:embed balance.lua
	balanceLua    string
	balanceScript = redis.NewScript(balanceLua)
	//go:embed renew.lua
	renewLua    string
	renewScript = redis.NewScript(renewLua)

	scripts = []*redis.Script{reserveScript, settleScript, balanceScript, renewScript}
)

// RedisOptions configure a [Redis] store.
type RedisOptions struct {
	// Client is the connection to Redis: a single node, Sentinel or Cluster.
	// The store does not close it.
	Client redis.UniversalClient
	// KeyPrefix is prepended to every key, outside its hash tag.
	KeyPrefix string
	// UsageTTL is how long daily usage totals are kept after their last
	// update; 90 days when 0.
	UsageTTL time.Duration
	// Events is the Redis Stream each settlement's usage record is appended
	// to (see [EventsConfig]); no stream when its Stream is empty.
	Events EventsConfig
}

// Redis is a [Store] in Redis, shared by every replica. Each Reserve,
// Settle and Renew is one pipeline of one Lua script per hash tag group of
// the keys it touches: one round trip, atomic per group.
type Redis struct {
	client   redis.UniversalClient
	prefix   string
	usageTTL time.Duration
	events   EventsConfig
	cluster  bool
	// clock, when set, replaces the server's TIME in the scripts. Only the
	// package's tests set it, to drive the windows with a fake clock.
	clock func() time.Time
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store using o.Client.
func NewRedis(o RedisOptions) (*Redis, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("%w: redis store without client", ErrInvalid)
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		return nil, fmt.Errorf("%w: key prefix %q contains a hash tag brace", ErrInvalid, o.KeyPrefix)
	}
	if o.UsageTTL <= 0 {
		o.UsageTTL = defaultUsageTTL
	}
	_, cluster := o.Client.(*redis.ClusterClient)
	return &Redis{client: o.Client, prefix: o.KeyPrefix, usageTTL: o.UsageTTL, events: o.Events, cluster: cluster}, nil
}

// LoadScripts loads the store's scripts into every node's script cache, so
// that the first requests already run by EVALSHA in one round trip.
func (r *Redis) LoadScripts(ctx context.Context) error {
	load := func(ctx context.Context, c *redis.Client) error {
		for _, s := range scripts {
			if err := s.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		err = cc.ForEachShard(ctx, load)
	} else if c, ok := r.client.(*redis.Client); ok {
		err = load(ctx, c)
	} else {
		for _, s := range scripts {
			if err = s.Load(ctx, r.client).Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return unavailable("cannot load ledger scripts", err)
	}
	return nil
}

func unavailable(msg string, err error) error {
	return fmt.Errorf("%s: %w: %w", msg, ErrUnavailable, err)
}

func (r *Redis) nowArg() string {
	if r.clock == nil {
		return ""
	}
	return strconv.FormatInt(r.clock().UnixMicro(), 10)
}

// key returns the Redis key of a ledger key: the prefix outside the hash
// tag, and the key wrapped in a tag of its own ("{k:...}", never empty)
// when it has none, so that every key has a tag to group it by.
func (r *Redis) key(k string) string {
	if tagOf(k) == "" {
		return r.prefix + "{k:" + k + "}"
	}
	return r.prefix + k
}

// tagOf returns the hash tag of key as Redis Cluster finds it: what lies
// between the first '{' and the next '}', when that is not empty.
func tagOf(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return ""
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return ""
	}
	return key[open+1 : open+1+end]
}

func (r *Redis) markerKey(tag, id string) string {
	return r.prefix + "settled:{" + tag + "}:" + id
}

// eventKey is the usage-event stream. On a Cluster a script may only touch
// one slot, so each consumer's records go to the stream under its own tag
// ("usage-events:{c:team-a}"); on a single node or Sentinel there is one.
func (r *Redis) eventKey(tag string) string {
	if r.cluster {
		return r.prefix + r.events.Stream + ":{" + tag + "}"
	}
	return r.prefix + r.events.Stream
}

func (r *Redis) usageKey(consumer, day string) string {
	return r.prefix + "usage:{" + consumerTag(consumer) + "}:" + day
}

// group is the part of one request that one script handles: the keys
// sharing a hash tag.
type group struct {
	tag     string
	windows []int
	slots   []int
	balance bool
	usage   bool
}

// groups splits the windows, the balance and the slots of res by hash tag; with
// consumer set, the consumer's group (holding usage totals and markers) is
// included even when no window or balance is in it.
func (r *Redis) groups(res *Reservation, consumer string) []group {
	var gs []group
	find := func(tag string) *group {
		for i := range gs {
			if gs[i].tag == tag {
				return &gs[i]
			}
		}
		gs = append(gs, group{tag: tag})
		return &gs[len(gs)-1]
	}
	if consumer != "" {
		find(consumerTag(consumer)).usage = true
	}
	if res != nil {
		for i := range res.Windows {
			g := find(tagOf(r.key(res.Windows[i].Key)))
			g.windows = append(g.windows, i)
		}
		if res.Balance != nil {
			find(tagOf(r.key(res.Balance.Key))).balance = true
		}
		for i := range res.Slots {
			g := find(tagOf(r.key(res.Slots[i].Key)))
			g.slots = append(g.slots, i)
		}
	}
	return gs
}

// Reserve implements [Store].
func (r *Redis) Reserve(ctx context.Context, res *Reservation) (*Decision, error) {
	if err := validateReservation(res); err != nil {
		return nil, err
	}
	gs := r.groups(res, "")
	d := newDecision(len(res.Windows), len(res.Slots))
	d.Refused, d.RefusedSlot = -1, -1
	if len(gs) == 0 {
		d.Allowed = true
		return d, nil
	}
	now := r.nowArg()
	calls := make([]scriptCall, len(gs))
	for gi, g := range gs {
		c := &calls[gi]
		c.script = reserveScript
		c.keys = make([]string, 0, len(g.windows)+1+len(g.slots))
		c.args = make([]any, 0, 5+4*len(g.windows)+4+3*len(g.slots))
		c.args = append(c.args, now, len(g.windows), boolArg(g.balance), len(g.slots), res.ID)
		for _, i := range g.windows {
			w := &res.Windows[i]
			n, width := bucketing(w.Size)
			c.keys = append(c.keys, r.key(w.Key))
			c.args = append(c.args, w.Limit, n, width, w.Amount(res.Input, res.Output))
		}
		if g.balance {
			b := res.Balance
			full, input := balanceCosts(res)
			c.keys = append(c.keys, r.key(b.Key))
			c.args = append(c.args, b.Allotment, ceilMillis(b.TTL), full, input)
		}
		for _, i := range g.slots {
			s := &res.Slots[i]
			c.keys = append(c.keys, r.key(s.Key))
			c.args = append(c.args, s.Max, s.Lease.Microseconds(), slotKeyTTL(s))
		}
	}
	replies, err := r.run(ctx, calls)
	if err != nil {
		// Groups that did admit hold charges nobody will settle.
		r.releaseAdmitted(res, gs, replies)
		return nil, unavailable("cannot reserve", err)
	}
	out := make([]windowOutcome, len(res.Windows))
	slotRefused := make([]bool, len(res.Slots))
	balanceRefused := false
	admitted := make([]bool, len(gs))
	if len(gs) > 1 {
		d.Hold.WindowAt = make([]int64, len(res.Windows))
	}
	for gi, g := range gs {
		rep, err := parseReserve(replies[gi], len(g.windows), len(g.slots))
		if err != nil {
			r.releaseAdmitted(res, gs, replies)
			return nil, unavailable("cannot reserve", err)
		}
		admitted[gi] = rep.allowed
		if gi == 0 {
			d.Hold.At = rep.now
		}
		for k, i := range g.windows {
			d.Windows[i] = WindowState{Limit: res.Windows[i].Limit, Remaining: rep.windows[k].remaining, Reset: micros(rep.windows[k].reset)}
			out[i] = rep.windows[k].outcome
			if d.Hold.WindowAt != nil {
				d.Hold.WindowAt[i] = rep.now
			}
		}
		for k, i := range g.slots {
			d.Slots[i] = SlotState{Max: res.Slots[i].Max, InFlight: rep.slots[k].inFlight}
			slotRefused[i] = rep.slots[k].refused
		}
		if g.balance {
			d.Balance = rep.balance
			d.Hold.Balance = rep.reserved
			balanceRefused = rep.balanceRefused
		}
	}
	d.decide(balanceRefused, out, slotRefused)
	if !d.Allowed {
		// Another group refused: give back what the admitting ones took,
		// and report the state without them.
		r.release(ctx, res, gs, admitted, d)
		d.Hold = Hold{}
	}
	return d, nil
}

func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ceilMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

// releaseAdmitted releases the groups whose reply says they admitted, after
// a failure of another group.
func (r *Redis) releaseAdmitted(res *Reservation, gs []group, replies []any) {
	admitted := make([]bool, len(gs))
	some := false
	d := Decision{Windows: make([]WindowState, len(res.Windows)), Slots: make([]SlotState, len(res.Slots))}
	d.Hold.WindowAt = make([]int64, len(res.Windows))
	for gi, g := range gs {
		if gi >= len(replies) {
			break
		}
		rep, err := parseReserve(replies[gi], len(g.windows), len(g.slots))
		if err != nil || !rep.allowed {
			continue
		}
		admitted[gi], some = true, true
		for _, i := range g.windows {
			d.Hold.WindowAt[i] = rep.now
		}
		if g.balance {
			d.Hold.Balance = rep.reserved
		}
	}
	if some {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		r.release(ctx, res, gs, admitted, &d)
	}
}

// releaseTimeout bounds the second round trip that undoes a partial
// admission.
const releaseTimeout = time.Second

// release undoes the charges of the admitted groups. It is best effort: a
// failed release leaves the windows over-counted until they slide, which
// refuses too much but never lets too much through.
func (r *Redis) release(ctx context.Context, res *Reservation, gs []group, admitted []bool, d *Decision) {
	var calls []scriptCall
	now := r.nowArg()
	for gi, g := range gs {
		if !admitted[gi] {
			continue
		}
		c := r.settleCall(res, g, "", &d.Hold, usageOf(0, 0), 0, now, "")
		calls = append(calls, c)
		for _, i := range g.windows {
			w := &res.Windows[i]
			d.Windows[i].Remaining = min(w.Limit, d.Windows[i].Remaining+w.Amount(res.Input, res.Output))
		}
		for _, i := range g.slots {
			d.Slots[i].InFlight = max(0, d.Slots[i].InFlight-1)
		}
		if g.balance {
			d.Balance += d.Hold.Balance
		}
	}
	if len(calls) == 0 {
		return
	}
	_, _ = r.run(ctx, calls)
}

// Settle implements [Store].
func (r *Redis) Settle(ctx context.Context, s *Settlement) error {
	if err := validateSettlement(s); err != nil {
		return err
	}
	res := s.Reservation
	if s.Hold.Local || !s.Hold.taken() {
		res = nil
	}
	gs := r.groups(res, s.Consumer)
	now := r.nowArg()
	calls := make([]scriptCall, len(gs))
	for gi, g := range gs {
		calls[gi] = r.settleCall(res, g, s.ID, &s.Hold, s.Usage, 1, now, s.Model)
		if g.usage {
			c := &calls[gi]
			c.keys = append(c.keys, r.usageKey(s.Consumer, s.Day))
			if r.events.Stream != "" && len(s.Event) > 0 {
				c.keys = append(c.keys, r.eventKey(g.tag))
				c.args = append(c.args, r.events.MaxLen, []byte(s.Event))
				c.args[6] = 1 // has_event
			}
		}
	}
	replies, err := r.run(ctx, calls)
	if err != nil {
		return unavailable("cannot settle "+s.ID, err)
	}
	for gi := range replies {
		if _, err := parseInt(replies[gi]); err != nil {
			return unavailable("cannot settle "+s.ID, err)
		}
	}
	return nil
}

// settleCall builds the settle script call of group g. With sign 0 it
// releases the reservation (actual usage zero, no marker, no totals);
// with sign 1 it settles u under the marker of id. Either way it releases
// the reservation's leases on the group's slots.
func (r *Redis) settleCall(res *Reservation, g group, id string, h *Hold, u usage.Usage, sign int, now, model string) scriptCall {
	c := scriptCall{script: settleScript}
	hasMarker := sign == 1
	hasUsage := sign == 1 && g.usage
	nw, ns := len(g.windows), len(g.slots)
	leaseID := ""
	if res != nil {
		leaseID = res.ID
	}
	c.keys = make([]string, 0, nw+ns+3)
	c.args = make([]any, 0, 9+4*nw+1+2+2*len(metricNames))
	if hasMarker {
		c.keys = append(c.keys, r.markerKey(g.tag, id))
	}
	c.args = append(c.args, now, nw, boolArg(hasMarker), boolArg(g.balance), boolArg(hasUsage), markerTTL.Milliseconds(), 0, ns, leaseID)
	for _, i := range g.windows {
		w := &res.Windows[i]
		n, width := bucketing(w.Size)
		delta := -w.Amount(res.Input, res.Output)
		if sign == 1 {
			delta += w.Amount(u.Input, u.Output)
		}
		c.keys = append(c.keys, r.key(w.Key))
		c.args = append(c.args, n, width, h.windowAt(i), delta)
	}
	for _, i := range g.slots {
		c.keys = append(c.keys, r.key(res.Slots[i].Key))
	}
	if g.balance {
		delta := h.Balance
		if sign == 1 {
			delta -= res.Balance.Weights.Cost(u)
		}
		c.keys = append(c.keys, r.key(res.Balance.Key))
		c.args = append(c.args, delta)
	}
	if hasUsage {
		vals := usageFields(u)
		count := 0
		for _, v := range vals {
			if v != 0 {
				count++
			}
		}
		c.args = append(c.args, ceilMillis(r.usageTTL), count)
		for i, v := range vals {
			if v != 0 {
				c.args = append(c.args, metricNames[i]+":"+model, v)
			}
		}
	}
	return c
}

// Ping implements [Store].
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return unavailable("cannot reach redis", err)
	}
	return nil
}

// Close implements [Store]. The client belongs to whoever made it.
func (r *Redis) Close() error { return nil }
