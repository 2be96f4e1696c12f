package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Notification types.
const (
	TypeQuotaThreshold = "quota_threshold"
	TypeTokenAnomaly   = "token_anomaly"
)

// Notification is the JSON body POSTed to the webhook. Fields that do not
// apply to a type are absent.
type Notification struct {
	// ID identifies the notification; retries of one delivery carry the
	// same ID (also in the X-Tollgate-Alert-Id header) so a receiver can
	// drop duplicates.
	ID string `json:"id"`
	// Type is "quota_threshold" or "token_anomaly".
	Type string `json:"type"`
	// Consumer is the consumer's name; Tier its tier, absent when none.
	Consumer string `json:"consumer"`
	Tier     string `json:"tier,omitempty"`
	// Scope and Model tell apart the balances of a consumer that has
	// several (quota_threshold): the route scope of a scoped quota, the
	// model of a per-model one.
	Scope string `json:"scope,omitempty"`
	Model string `json:"model,omitempty"`
	// Threshold is the configured value crossed: the fraction of the
	// allotment used (quota_threshold), or the multiple of the baseline
	// rate (token_anomaly).
	Threshold float64 `json:"threshold"`
	// Used and Allotment are balance units of the period (quota_threshold):
	// Used = Allotment − remaining, as seen by the request that crossed.
	Used      *int64 `json:"used,omitempty"`
	Allotment *int64 `json:"allotment,omitempty"`
	// Period identifies the quota period, e.g. "2026-11", "2026-W45",
	// "2026-11-05", or "none" (quota_threshold).
	Period string `json:"period,omitempty"`
	// RatePerMinute is the consumer's token rate over the short window and
	// BaselinePerMinute its baseline, in tokens per minute (token_anomaly),
	// as seen by the replica that noticed.
	RatePerMinute     *float64 `json:"rate_per_minute,omitempty"`
	BaselinePerMinute *float64 `json:"baseline_per_minute,omitempty"`
	// WindowTokens is the number of tokens in the short window
	// (token_anomaly).
	WindowTokens *int64 `json:"window_tokens,omitempty"`
	// At is when the request that crossed was settled (RFC 3339, UTC).
	At time.Time `json:"at"`
}

// errRejected marks an answer that retrying cannot change (a 4xx other
// than 429, or a redirect).
var errRejected = errors.New("webhook rejected the notification")

// deliver posts body until the webhook takes it, the attempts run out, or
// ctx ends. It returns the number of retries made.
func (a *Alerts) deliver(ctx context.Context, h *hook, id string, body []byte) (retries int, err error) {
	for attempt := 0; ; attempt++ {
		var wait time.Duration
		wait, err = a.post(ctx, h, id, body)
		if err == nil || errors.Is(err, errRejected) || attempt+1 >= h.attempts {
			return attempt, err
		}
		t := time.NewTimer(h.backoffFor(attempt, wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// backoffFor is the wait after attempt (from 0) failed: full jitter, so
// that replicas retrying after one outage spread out, but no less than the
// webhook's Retry-After, and never more than max_backoff.
func (h *hook) backoffFor(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := h.backoff
	for i := 0; i < attempt && ceiling < h.maxBackoff; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, h.maxBackoff)
	d := time.Duration(rand.Int64N(int64(ceiling) + 1))
	return min(max(d, retryAfter), h.maxBackoff)
}

// post makes one attempt. wait is the webhook's Retry-After, if any.
func (a *Alerts) post(ctx context.Context, h *hook, id string, body []byte) (wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("cannot build a request to %s: %w", h.host, redact(err))
	}
	for k, v := range h.headers {
		req.Header[k] = v
	}
	req.Header.Set("X-Tollgate-Alert-Id", id)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot post to %s: %w", h.host, redact(err))
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return 0, nil
	case c == http.StatusTooManyRequests || c >= 500:
		return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%s answered %d", h.host, c)
	default:
		return 0, fmt.Errorf("%s answered %d: %w", h.host, c, errRejected)
	}
}

// retryAfter reads a Retry-After of seconds; dates are ignored.
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(v)
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

// redact drops the URL from a client error: its path or query may be the
// webhook's secret. What is left names the operation and the cause.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("%s: timeout: %w", ue.Op, context.DeadlineExceeded)
		}
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return errors.New("invalid request")
}

// defaultHTTPClient does not follow redirects: a redirected POST becomes a
// GET, and the notification would be lost while looking delivered.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
