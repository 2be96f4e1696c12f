package quota

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/limiter"
)

// AdminOp is one of Higress ai-quota's in-band admin operations, called by
// the admin consumer through the gateway at <api-path><admin_path>.
type AdminOp uint8

const (
	// NoAdminOp means the path is not an in-band admin path.
	NoAdminOp AdminOp = iota
	// Query is GET <api-path>/quota?consumer=X.
	Query
	// Refresh is POST <api-path>/quota/refresh with consumer=X&quota=N.
	Refresh
	// Delta is POST <api-path>/quota/delta with consumer=X&value=±N.
	Delta
)

// MatchAdmin returns the in-band admin operation path (without its query)
// asks for, given whether the rest of the path is an LLM API path.
func (p *Policy) MatchAdmin(path string, isAPIPath func(string) bool) AdminOp {
	if p == nil || p.adminConsumer == "" {
		return NoAdminOp
	}
	for _, m := range []struct {
		suffix string
		op     AdminOp
	}{{p.adminPath + "/refresh", Refresh}, {p.adminPath + "/delta", Delta}, {p.adminPath, Query}} {
		if rest, ok := strings.CutSuffix(path, m.suffix); ok && rest != "" && isAPIPath(rest) {
			return m.op
		}
	}
	return NoAdminOp
}

// Reply is an HTTP answer to an in-band admin call.
type Reply struct {
	Status      int
	ContentType string
	Body        string
}

func textReply(status int, body string) Reply {
	return Reply{Status: status, ContentType: "text/plain", Body: body}
}

// The wording and status codes below are Higress ai-quota's, so that
// scripts written against it keep working.
const (
	msgUnauthorizedAdmin = "Request denied by ai quota check. Unauthorized admin consumer."
	msgEmptyConsumer     = "Request denied by ai quota check. consumer can't be empty."
	msgBadRefresh        = "Request denied by ai quota check. consumer can't be empty and quota must be integer."
	msgBadDelta          = "Request denied by ai quota check. consumer can't be empty and value must be integer."
	msgNoAccount         = "Request denied by ai quota check. consumer has no quota configured."
)

// HandleAdmin answers an in-band admin call made by caller. call holds
// the admin request's own attributes (path, host, route): the call acts on
// the quota of the scope it is made under, as Higress's per-route plugin
// instances do. query is the request's query string; form is the request
// body (url-encoded form).
func (p *Policy) HandleAdmin(ctx context.Context, store ledger.Store, op AdminOp, caller string, call limiter.Request, query url.Values, form []byte, now time.Time) Reply {
	scopeOf := func(consumer, model string) string {
		r := call
		r.Consumer, r.Model = consumer, model
		return p.ScopeOf(&r)
	}
	if caller != p.adminConsumer {
		return textReply(http.StatusForbidden, msgUnauthorizedAdmin)
	}
	switch op {
	case Query:
		consumer := query.Get("consumer")
		if consumer == "" {
			return textReply(http.StatusForbidden, msgEmptyConsumer)
		}
		var remaining int64
		model := query.Get("model")
		if b := p.ScopedBalance(scopeOf(consumer, model), consumer, model, now); b != nil {
			v, err := store.GetBalance(ctx, b)
			if err != nil {
				return textReply(http.StatusServiceUnavailable, fmt.Sprintf("redis error:%v", err))
			}
			remaining = v
		}
		body, _ := json.Marshal(struct {
			Consumer string `json:"consumer"`
			Quota    int64  `json:"quota"`
		}{consumer, remaining})
		return Reply{Status: http.StatusOK, ContentType: "application/json", Body: string(body)}
	case Refresh, Delta:
		values, _ := url.ParseQuery(string(form))
		consumer := values.Get("consumer")
		field, bad := "quota", msgBadRefresh
		if op == Delta {
			field, bad = "value", msgBadDelta
		}
		n, err := strconv.ParseInt(values.Get(field), 10, 64)
		if consumer == "" || err != nil {
			return textReply(http.StatusForbidden, bad)
		}
		model := values.Get("model")
		b := p.ScopedBalance(scopeOf(consumer, model), consumer, model, now)
		if b == nil {
			return textReply(http.StatusForbidden, msgNoAccount)
		}
		if op == Refresh {
			err = store.SetBalance(ctx, b, n)
		} else {
			_, err = store.AddBalance(ctx, b, n)
		}
		if err != nil {
			return textReply(http.StatusServiceUnavailable, fmt.Sprintf("redis error:%v", err))
		}
		if op == Refresh {
			return textReply(http.StatusOK, "refresh quota successful")
		}
		return textReply(http.StatusOK, "delta quota successful")
	}
	return textReply(http.StatusNotFound, "not an admin path")
}
