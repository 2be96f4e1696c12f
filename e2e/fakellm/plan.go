package fakellm

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Plan says how to answer one request. A test sets it per request with
// headers (which pass through Envoy and tollgate untouched), on top of
// Options.DefaultPlan:
//
//	x-fakellm-cassette: chat-streaming   replay testdata/recorded/chat-streaming.yaml
//	x-fakellm-chunks: 20                 synthesize 20 content chunks, one token each
//	x-fakellm-delay: 10ms                pause before each chunk
//	x-fakellm-content: "hello "          text of each chunk (quote it to keep outer spaces)
//	x-fakellm-usage: input=12,output=34,cached=2,cache_creation=1,reasoning=5
//	x-fakellm-split: 7                   write the body 7 bytes at a time, flushing each
//	x-fakellm-fault: omit-usage | null-usage | gzip | gzip-always | cut-after=N | status=429 | status=500
//
// Several faults may be listed, comma-separated.
type Plan struct {
	// Cassette names a recorded interaction to replay.
	Cassette string
	// Chunks is the number of content chunks of a synthesized answer; each
	// counts as one output token.
	Chunks int
	// Delay is the pause before each chunk.
	Delay time.Duration
	// Content is the text of each chunk.
	Content string
	// Usage replaces the computed usage numbers when set.
	Usage *Usage
	// Split, when positive, writes the body in pieces of that many bytes,
	// flushing each, so events straddle network reads.
	Split int
	// OmitUsage leaves the usage out even when the request asked for it.
	OmitUsage bool
	// NullUsage sends "usage": null on every chunk and never the numbers.
	NullUsage bool
	// Gzip compresses the body when the request accepts gzip, as providers
	// do; GzipAlways compresses it regardless.
	Gzip, GzipAlways bool
	// Cut aborts the connection after CutAfter content chunks.
	Cut      bool
	CutAfter int
	// Status, when set, fails the request with this status and an error body
	// in the API's style.
	Status int
}

func builtinPlan() Plan { return Plan{Chunks: 5, Content: "tok "} }

// planFrom applies the request's x-fakellm-* headers on top of def (the
// built-in plan when nil).
func planFrom(h http.Header, def *Plan) (Plan, error) {
	p := builtinPlan()
	if def != nil {
		p = *def
	}
	var errs []error
	if v := h.Get("x-fakellm-cassette"); v != "" {
		p.Cassette = v
	}
	if v := h.Get("x-fakellm-chunks"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("x-fakellm-chunks: %q is not a count", v))
		}
		p.Chunks = n
	}
	if v := h.Get("x-fakellm-delay"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("x-fakellm-delay: %q is not a duration", v))
		}
		p.Delay = d
	}
	if v, ok := h["X-Fakellm-Content"]; ok && len(v) > 0 {
		// HTTP trims a header value's outer spaces; a quoted value keeps them.
		p.Content = v[0]
		if strings.HasPrefix(v[0], `"`) {
			s, err := strconv.Unquote(v[0])
			if err != nil {
				errs = append(errs, fmt.Errorf("x-fakellm-content: %w", err))
			}
			p.Content = s
		}
	}
	if v := h.Get("x-fakellm-split"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("x-fakellm-split: %q is not a positive size", v))
		}
		p.Split = n
	}
	if v := h.Get("x-fakellm-usage"); v != "" {
		u, err := parseUsage(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("x-fakellm-usage: %w", err))
		}
		p.Usage = &u
	}
	for _, f := range splitList(h.Values("x-fakellm-fault")) {
		if err := p.addFault(f); err != nil {
			errs = append(errs, fmt.Errorf("x-fakellm-fault: %w", err))
		}
	}
	return p, errors.Join(errs...)
}

func (p *Plan) addFault(f string) error {
	name, arg, _ := strings.Cut(f, "=")
	switch name {
	case "omit-usage":
		p.OmitUsage = true
	case "null-usage":
		p.NullUsage = true
	case "gzip":
		p.Gzip = true
	case "gzip-always":
		p.GzipAlways = true
	case "cut-after":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 {
			return fmt.Errorf("cut-after=%q is not a count", arg)
		}
		p.Cut, p.CutAfter = true, n
	case "status":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 400 || n > 599 {
			return fmt.Errorf("status=%q is not an error status", arg)
		}
		p.Status = n
	default:
		return fmt.Errorf("unknown fault %q", f)
	}
	return nil
}

func parseUsage(v string) (Usage, error) {
	var u Usage
	var errs []error
	for _, kv := range splitList([]string{v}) {
		k, val, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s=%q is not a count", k, val))
			continue
		}
		switch k {
		case "input":
			u.Input = n
		case "output":
			u.Output = n
		case "cached":
			u.CachedInput = n
		case "cache_creation":
			u.CacheCreation = n
		case "reasoning":
			u.Reasoning = n
		default:
			errs = append(errs, fmt.Errorf("unknown usage field %q", k))
		}
	}
	return u, errors.Join(errs...)
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}
