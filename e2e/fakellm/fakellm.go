// Package fakellm is the LLM provider of tollgate's end-to-end tests: an
// http.Handler speaking the OpenAI (chat completions, completions, responses,
// embeddings) and Anthropic (messages) APIs.
//
// It answers in two ways. It replays real recorded provider responses (the
// go-vcr cassettes in testdata/recorded, byte for byte), chosen by the
// request's body or by an x-fakellm-cassette header. Or it synthesizes a
// response of any length and pace, streamed or not, with the usage numbers
// it reports kept in a ledger per request so tests can compare them with what
// tollgate committed. Faults (no usage, "usage": null, gzip, a cut stream,
// 429/500) are asked for per request with headers; see [Plan].
//
// Every request is recorded (headers and body) so tests can check what
// reached the provider.
package fakellm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// HeaderRequestID is the response header carrying the id the fake LLM filed
// a request under: the request's x-request-id when it has one (the id Envoy
// forwards upstream), a random one otherwise.
const HeaderRequestID = "x-fakellm-request-id"

// Options configures a Server.
type Options struct {
	// Now stamps "created" fields; time.Now when nil.
	Now func() time.Time
	// Sleep waits between streamed chunks and returns early with the
	// context's error; a timer when nil.
	Sleep func(done <-chan struct{}, d time.Duration) error
	// DefaultPlan answers requests that carry no x-fakellm-* header and match
	// no cassette. Nil answers them with a synthesized response of 5 chunks.
	DefaultPlan *Plan
	// Logger receives one line per request; slog.Default when nil.
	Logger *slog.Logger
}

// Request is one request as it reached the fake LLM.
type Request struct {
	// ID is the id the request was filed under (see HeaderRequestID).
	ID     string
	Method string
	// Path is the URL path, RawQuery the query string.
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	Received time.Time
}

// Server is the fake LLM provider.
type Server struct {
	opts      Options
	cassettes *cassettes

	mu       sync.Mutex
	requests []Request
	reports  map[string]*Report
	order    []string
}

// New returns a Server with the embedded cassettes loaded.
func New(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c, err := loadCassettes()
	if err != nil {
		return nil, err
	}
	return &Server{opts: opts, cassettes: c, reports: map[string]*Report{}}, nil
}

func sleep(done <-chan struct{}, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-done:
		return errClientGone
	}
}

// ServeHTTP implements [http.Handler].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "cannot read request body", http.StatusBadRequest)
		return
	}
	id := r.Header.Get("x-request-id")
	if id == "" {
		id = newID()
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		ID: id, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, Received: s.opts.Now(),
	})
	s.mu.Unlock()
	w.Header().Set(HeaderRequestID, id)

	api := apiOf(r.URL.Path)
	if api == "" {
		writeError(w, apiChat, http.StatusNotFound, "unknown path "+r.URL.Path)
		return
	}
	plan, err := planFrom(r.Header, s.opts.DefaultPlan)
	if err != nil {
		writeError(w, api, http.StatusBadRequest, err.Error())
		return
	}
	rep := &Report{RequestID: id, API: api}
	s.file(rep)
	s.opts.Logger.Debug("fakellm request", "id", id, "api", api, "path", r.URL.Path)

	if plan.Status != 0 {
		rep.Status = plan.Status
		writeError(w, api, plan.Status, fmt.Sprintf("fakellm: status %d asked by x-fakellm-fault", plan.Status))
		return
	}
	if it := s.cassettes.find(plan.Cassette, api, body); it != nil {
		s.replay(w, r, plan, it, rep)
		return
	}
	if plan.Cassette != "" {
		writeError(w, api, http.StatusNotFound, "fakellm: no cassette named "+plan.Cassette)
		return
	}
	s.synthesize(w, r, plan, api, body, rep)
}

// file records rep under its request id, replacing an earlier one with the
// same id (a retried request).
func (s *Server) file(rep *Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.reports[rep.RequestID]; !ok {
		s.order = append(s.order, rep.RequestID)
	}
	s.reports[rep.RequestID] = rep
}

// update applies fn to a report under the lock, so readers never see a
// report half written.
func (s *Server) update(rep *Report, fn func(*Report)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(rep)
}

// Requests returns every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// Reported returns what was sent for the request filed under id.
func (s *Server) Reported(id string) (Report, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reports[id]
	if !ok {
		return Report{}, false
	}
	return *r, true
}

// Reports returns what was sent for every request, oldest first.
func (s *Server) Reports() []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Report, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.reports[id])
	}
	return out
}

// Report is the fake LLM's ledger entry for one request: what it sent.
type Report struct {
	// RequestID is the id the request was filed under.
	RequestID string
	// API is one of the API* constants.
	API string
	// Model is the model named in the response.
	Model string
	// Stream is true when the response was an SSE stream.
	Stream bool
	// Status is the HTTP status sent.
	Status int
	// Chunks counts the content-bearing chunks (deltas) written.
	Chunks int
	// Text is the generated text as sent.
	Text string
	// Completed is true when the response was written to its end, false
	// when it was cut or the client went away.
	Completed bool
	// UsageSent is true when usage numbers reached the wire: false when they
	// were omitted, null, or the stream was cut before them.
	UsageSent bool
	// Usage is the usage the response reported (or would have reported),
	// normalized as tollgate normalizes it; see [Usage].
	Usage Usage
	// Cassette names the replayed cassette; empty for synthesized answers.
	Cassette string
}

// Usage is token usage normalized across APIs: Input counts every prompt
// token including cached and cache-creation ones (Anthropic reports those
// apart from input_tokens); CachedInput and CacheCreation are parts of Input;
// Reasoning is part of Output.
type Usage struct {
	Input         int64
	Output        int64
	CachedInput   int64
	CacheCreation int64
	Reasoning     int64
}

// Total is Input + Output.
func (u Usage) Total() int64 { return u.Input + u.Output }

// The APIs the fake LLM serves.
const (
	APIChat        = apiChat
	APICompletions = "completions"
	APIResponses   = "responses"
	APIEmbeddings  = "embeddings"
	APIMessages    = "messages"
	apiChat        = "chat.completions"
)

// apiOf maps a request path to its API. Suffix matching accepts provider
// prefixes such as Azure's /openai/deployments/NAME/chat/completions.
func apiOf(path string) string {
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		return APIChat
	case strings.HasSuffix(path, "/completions"):
		return APICompletions
	case strings.HasSuffix(path, "/responses"):
		return APIResponses
	case strings.HasSuffix(path, "/embeddings"):
		return APIEmbeddings
	case strings.HasSuffix(path, "/messages"):
		return APIMessages
	}
	return ""
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
