package quota

import (
	"fmt"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
)

// retention is how long a period's balance key outlives its period, so
// that the last period stays readable for a while.
const retention = 7 * 24 * time.Hour

// Policy is the compiled, immutable form of a Config.
type Policy struct {
	prefix        string
	adminConsumer string
	adminPath     string
	rejectedMsg   string
	weights       Weights
	def           *account
	consumers     map[string]*account
	// bound holds the accounts of consumers whose own or tier settings
	// carry a quota (see Bind).
	bound map[string]*account
	// routes are the scoped quotas, in config order.
	routes []routeScope
	// downgrade is the model a request without quota goes on with.
	downgrade string
}

type routeScope struct {
	name      string
	downgrade string
	scope     *limiter.Scope
	def       *account
	consumers map[string]*account
}

func (r *routeScope) accountOf(consumer string) *account {
	if a, ok := r.consumers[consumer]; ok {
		return a
	}
	return r.def
}

// Holders tells a Policy the quotas consumers carry themselves: their own,
// and their tier's.
type Holders interface {
	Names() []string
	QuotaOf(name string) (own, tier *Allotment)
}

// Bind returns a copy of p that also knows the quotas consumers carry.
// A consumer's quota resolves, first set wins: its own (consumers[].quota),
// its entry in the quota section, its tier's, the quota section's default.
func (p *Policy) Bind(h Holders) *Policy {
	if p == nil || h == nil {
		return p
	}
	q := *p
	q.bound = map[string]*account{}
	for _, name := range h.Names() {
		own, tier := h.QuotaOf(name)
		switch {
		case own != nil:
			q.bound[name] = newAccount(*own, p.weights)
		case p.consumers[name] != nil:
		case tier != nil:
			q.bound[name] = newAccount(*tier, p.weights)
		}
	}
	return &q
}

type account struct {
	tokens   int64
	period   Period
	loc      *time.Location
	perModel bool
	weights  ledger.Weights
}

// Compile validates c and builds its Policy.
func Compile(c Config) (*Policy, error) {
	if err := c.Validate("quota"); err != nil {
		return nil, err
	}
	p := &Policy{
		prefix:        c.RedisKeyPrefix,
		adminConsumer: c.AdminConsumer,
		adminPath:     c.AdminPath,
		rejectedMsg:   c.RejectedMsg,
		weights:       c.Weights,
		consumers:     make(map[string]*account, len(c.Consumers)),
	}
	if p.prefix == "" {
		p.prefix = DefaultKeyPrefix
	}
	if p.adminPath == "" {
		p.adminPath = DefaultAdminPath
	}
	if p.rejectedMsg == "" {
		p.rejectedMsg = DefaultRejectedMsg
	}
	if c.Downgrade != nil {
		p.downgrade = c.Downgrade.Model
	}
	if c.Default != nil {
		p.def = newAccount(*c.Default, c.Weights)
	}
	for name, a := range c.Consumers {
		p.consumers[name] = newAccount(a, c.Weights)
	}
	for i, rc := range c.Routes {
		sc, err := limiter.CompileMatch(fmt.Sprintf("quota.routes[%d].match", i), rc.Match)
		if err != nil {
			return nil, err
		}
		r := routeScope{name: rc.Name, scope: sc, consumers: map[string]*account{}, downgrade: p.downgrade}
		if rc.Downgrade != nil {
			r.downgrade = rc.Downgrade.Model
		}
		if rc.Default != nil {
			r.def = newAccount(*rc.Default, c.Weights)
		}
		for name, a := range rc.Consumers {
			r.consumers[name] = newAccount(a, c.Weights)
		}
		p.routes = append(p.routes, r)
	}
	return p, nil
}

func newAccount(a Allotment, w Weights) *account {
	acc := &account{tokens: a.Tokens, period: a.Period, loc: time.UTC, perModel: a.PerModel}
	if acc.period == "" {
		acc.period = None
	}
	if a.Timezone != "" {
		acc.loc, _ = time.LoadLocation(a.Timezone) // validated
	}
	if a.Weights != nil {
		w = *a.Weights
	}
	acc.weights = w.ledger()
	return acc
}

// Enabled reports whether any consumer has a quota.
func (p *Policy) Enabled() bool {
	return p != nil && (p.def != nil || len(p.consumers) > 0 || len(p.bound) > 0 || len(p.routes) > 0)
}

// RejectedMsg is the message of the 403 answered when no quota is left.
func (p *Policy) RejectedMsg() string { return p.rejectedMsg }

// AdminConsumer is the consumer allowed to use the in-band admin paths.
func (p *Policy) AdminConsumer() string {
	if p == nil {
		return ""
	}
	return p.adminConsumer
}

func (p *Policy) accountOf(consumer string) *account {
	if p == nil {
		return nil
	}
	if a, ok := p.bound[consumer]; ok {
		return a
	}
	if a, ok := p.consumers[consumer]; ok {
		return a
	}
	return p.def
}

// ScopeOf returns the quota scope req is charged in: the name of the first
// route scope that matches it and has an allotment for its consumer, or ""
// for the unscoped quota.
func (p *Policy) ScopeOf(req *limiter.Request) string {
	if p == nil {
		return ""
	}
	for i := range p.routes {
		r := &p.routes[i]
		if r.accountOf(req.Consumer) != nil && r.scope.Matches(req) {
			return r.name
		}
	}
	return ""
}

func (p *Policy) accountIn(scope, consumer string) *account {
	if scope == "" {
		return p.accountOf(consumer)
	}
	for i := range p.routes {
		if p.routes[i].name == scope {
			return p.routes[i].accountOf(consumer)
		}
	}
	return nil
}

// Balance returns the unscoped balance a request of consumer for model is
// charged to at now, or nil when the consumer has no quota.
func (p *Policy) Balance(consumer, model string, now time.Time) *ledger.Balance {
	return p.ScopedBalance("", consumer, model, now)
}

// ScopedBalance returns the balance of consumer for model in the quota
// scope named scope ("" for the unscoped quota), or nil when it has none.
func (p *Policy) ScopedBalance(scope, consumer, model string, now time.Time) *ledger.Balance {
	if p == nil {
		return nil
	}
	a := p.accountIn(scope, consumer)
	if a == nil {
		return nil
	}
	key := p.prefix + ledger.ConsumerTag(consumer)
	if scope != "" {
		key += ":r:" + scope
	}
	if a.perModel {
		key += ":m:" + model
	}
	b := &ledger.Balance{Allotment: a.tokens, Weights: a.weights}
	if a.period != None {
		start, end := a.bounds(now)
		key += ":" + a.periodID(start)
		b.TTL = end.Sub(now) + retention
	}
	b.Key = key
	return b
}

// Info describes a consumer's quota for the admin API.
type Info struct {
	// Period is none, day, week or month.
	Period Period `json:"period"`
	// Allotment is the balance each period starts with.
	Allotment int64 `json:"allotment"`
	// PeriodStart and ResetsAt bound the current period (absent for none).
	PeriodStart *time.Time `json:"period_start,omitempty"`
	ResetsAt    *time.Time `json:"resets_at,omitempty"`
	// PerModel is true when each model has its own balance.
	PerModel bool `json:"per_model,omitempty"`
}

// Describe returns the unscoped quota of consumer at now, or false when it
// has none.
func (p *Policy) Describe(consumer string, now time.Time) (Info, bool) {
	return p.DescribeIn("", consumer, now)
}

// DescribeIn returns the quota of consumer in scope at now.
func (p *Policy) DescribeIn(scope, consumer string, now time.Time) (Info, bool) {
	if p == nil {
		return Info{}, false
	}
	a := p.accountIn(scope, consumer)
	if a == nil {
		return Info{}, false
	}
	info := Info{Period: a.period, Allotment: a.tokens, PerModel: a.perModel}
	if a.period != None {
		start, end := a.bounds(now)
		info.PeriodStart, info.ResetsAt = &start, &end
	}
	return info, true
}

// bounds returns the start and end of the period holding now.
func (a *account) bounds(now time.Time) (start, end time.Time) {
	t := now.In(a.loc)
	y, m, d := t.Date()
	switch a.period {
	case Day:
		start = time.Date(y, m, d, 0, 0, 0, 0, a.loc)
		end = start.AddDate(0, 0, 1)
	case Week:
		wd := (int(t.Weekday()) + 6) % 7 // Monday = 0
		start = time.Date(y, m, d-wd, 0, 0, 0, 0, a.loc)
		end = start.AddDate(0, 0, 7)
	default: // Month
		start = time.Date(y, m, 1, 0, 0, 0, 0, a.loc)
		end = start.AddDate(0, 1, 0)
	}
	return start, end
}

func (a *account) periodID(start time.Time) string {
	switch a.period {
	case Day:
		return start.Format("2006-01-02")
	case Week:
		y, w := start.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	default:
		return start.Format("2006-01")
	}
}

// DowngradeIn returns the model a request whose quota in scope is spent
// goes on with, or "" to refuse it.
func (p *Policy) DowngradeIn(scope string) string {
	if p == nil {
		return ""
	}
	for i := range p.routes {
		if p.routes[i].name == scope {
			return p.routes[i].downgrade
		}
	}
	return p.downgrade
}
