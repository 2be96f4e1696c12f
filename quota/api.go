package quota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
)

// APIOptions configures the admin HTTP API of quotas and usage.
type APIOptions struct {
	// Policy returns the current quota policy (it changes on reload).
	Policy func() *Policy
	// Store holds balances and usage totals.
	Store ledger.Store
	// Consumers returns the names of the known consumers.
	Consumers func() []string
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
}

// API serves the admin endpoints for quotas and usage:
//
//	GET  /v1/quota                      every consumer's quota and what is left
//	GET  /v1/quota/{consumer}[?model=M][&route=R] one consumer's (in a route scope)
//	PUT  /v1/quota/{consumer}           {"quota": N} sets the balance
//	POST /v1/quota/{consumer}/delta     {"value": ±N} adds to the balance
//	GET  /v1/usage?consumer=C[&model=M][&from=YYYY-MM-DD&to=YYYY-MM-DD]
//
// It does not authenticate: mount it behind the admin token.
type API struct {
	o   APIOptions
	mux *http.ServeMux
}

// NewAPI returns the admin API handler.
func NewAPI(o APIOptions) *API {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	a := &API{o: o, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /v1/quota", a.list)
	a.mux.HandleFunc("GET /v1/quota/{consumer}", a.get)
	a.mux.HandleFunc("PUT /v1/quota/{consumer}", a.set)
	a.mux.HandleFunc("POST /v1/quota/{consumer}/delta", a.delta)
	a.mux.HandleFunc("GET /v1/usage", a.usage)
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// QuotaStatus is one consumer's quota as the admin API reports it.
type QuotaStatus struct {
	Consumer string `json:"consumer"`
	Model    string `json:"model,omitempty"`
	// Route is the quota scope ("" for the unscoped quota).
	Route string `json:"route,omitempty"`
	Info
	// Remaining is what is left of the balance in the current period.
	Remaining int64 `json:"remaining"`
	// PeriodUsage is the total tokens used since the period started (since
	// the first day of totals for period none), by UTC day.
	PeriodUsage int64 `json:"period_usage_tokens"`
}

func (a *API) status(ctx context.Context, scope, consumer, model string) (QuotaStatus, bool, error) {
	p := a.o.Policy()
	now := a.o.Clock()
	info, ok := p.DescribeIn(scope, consumer, now)
	if !ok {
		return QuotaStatus{}, false, nil
	}
	st := QuotaStatus{Consumer: consumer, Model: model, Route: scope, Info: info}
	var err error
	if st.Remaining, err = a.o.Store.GetBalance(ctx, p.ScopedBalance(scope, consumer, model, now)); err != nil {
		return st, true, err
	}
	from := now.UTC().AddDate(0, 0, -31)
	if info.PeriodStart != nil {
		from = info.PeriodStart.UTC()
	}
	rows, err := a.o.Store.Totals(ctx, ledger.TotalsQuery{Consumer: consumer, Model: model, From: from.Format(time.DateOnly), To: now.UTC().Format(time.DateOnly)})
	if err != nil {
		return st, true, err
	}
	for _, r := range rows {
		st.PeriodUsage += r.Total
	}
	return st, true, nil
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	out := []QuotaStatus{}
	for _, name := range a.o.Consumers() {
		st, ok, err := a.status(r.Context(), "", name, "")
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("cannot read quota of %s: %v", name, err))
			return
		}
		if ok {
			out = append(out, st)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"quotas": out})
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	consumer := r.PathValue("consumer")
	q := r.URL.Query()
	st, ok, err := a.status(r.Context(), q.Get("route"), consumer, q.Get("model"))
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("cannot read quota: %v", err))
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("consumer %q has no quota", consumer))
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

func (a *API) set(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Quota *int64 `json:"quota"`
		Model string `json:"model"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if body.Quota == nil {
		writeError(w, http.StatusBadRequest, `body must be {"quota": N}`)
		return
	}
	a.change(w, r, body.Model, func(ctx context.Context, b *ledger.Balance) error {
		return a.o.Store.SetBalance(ctx, b, *body.Quota)
	})
}

func (a *API) delta(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Value *int64 `json:"value"`
		Model string `json:"model"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if body.Value == nil {
		writeError(w, http.StatusBadRequest, `body must be {"value": N}`)
		return
	}
	a.change(w, r, body.Model, func(ctx context.Context, b *ledger.Balance) error {
		_, err := a.o.Store.AddBalance(ctx, b, *body.Value)
		return err
	})
}

func (a *API) change(w http.ResponseWriter, r *http.Request, model string, apply func(context.Context, *ledger.Balance) error) {
	consumer := r.PathValue("consumer")
	b := a.o.Policy().ScopedBalance(r.URL.Query().Get("route"), consumer, model, a.o.Clock())
	if b == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("consumer %q has no quota", consumer))
		return
	}
	if err := apply(r.Context(), b); err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("cannot change quota: %v", err))
		return
	}
	a.get(w, r)
}

// UsageReport is the answer of GET /v1/usage.
type UsageReport struct {
	Consumer string             `json:"consumer"`
	Model    string             `json:"model,omitempty"`
	From     string             `json:"from"`
	To       string             `json:"to"`
	Days     []ledger.DayTotals `json:"days"`
	Total    ledger.DayTotals   `json:"total"`
}

func (a *API) usage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	consumer := q.Get("consumer")
	if consumer == "" {
		writeError(w, http.StatusBadRequest, "consumer is required")
		return
	}
	today := a.o.Clock().UTC().Format(time.DateOnly)
	from, to := q.Get("from"), q.Get("to")
	if to == "" {
		to = today
	}
	if from == "" {
		from = to
	}
	f, err1 := time.Parse(time.DateOnly, from)
	t, err2 := time.Parse(time.DateOnly, to)
	switch {
	case err1 != nil || err2 != nil:
		writeError(w, http.StatusBadRequest, "from and to must be dates (YYYY-MM-DD)")
		return
	case t.Before(f):
		writeError(w, http.StatusBadRequest, "from must not be after to")
		return
	case t.Sub(f) > 366*24*time.Hour:
		writeError(w, http.StatusBadRequest, "at most 366 days at once")
		return
	}
	rows, err := a.o.Store.Totals(r.Context(), ledger.TotalsQuery{Consumer: consumer, Model: q.Get("model"), From: from, To: to})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("cannot read usage: %v", err))
		return
	}
	rep := UsageReport{Consumer: consumer, Model: q.Get("model"), From: from, To: to, Days: rows}
	if rep.Days == nil {
		rep.Days = []ledger.DayTotals{}
	}
	rep.Total.Model = rep.Model
	for _, d := range rows {
		rep.Total.Requests += d.Requests
		rep.Total.Input += d.Input
		rep.Total.Output += d.Output
		rep.Total.CachedInput += d.CachedInput
		rep.Total.CacheCreation += d.CacheCreation
		rep.Total.Reasoning += d.Reasoning
		rep.Total.Total += d.Total
		rep.Total.Estimated += d.Estimated
	}
	writeJSON(w, http.StatusOK, rep)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad JSON body: %v", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg, "type": "invalid_request_error"}})
}
