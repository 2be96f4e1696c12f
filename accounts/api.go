package accounts

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// APIOptions configure the accounts admin API.
type APIOptions struct {
	// Store holds the runtime accounts.
	Store *Store
	// Base returns what the config file declares (it changes on reload);
	// nil: nothing.
	Base func() Base
	// ProviderHealth returns the providers' recent health as this replica
	// saw it, served as {"providers": …}; nil: an empty list.
	ProviderHealth func() any
	// ProviderResting returns until when this replica rests a provider
	// key the provider refused; nil or zero: not resting.
	ProviderResting func(provider, keyID string) time.Time
	// Logger records each change (names and key ids, never keys);
	// slog.Default() when nil.
	Logger *slog.Logger
	// Clock decides which keys count as usable; time.Now when nil.
	Clock func() time.Time
}

// Prefixes are the paths the API serves under, for mounting it beside
// other handlers on one mux.
var Prefixes = []string{"/v1/tiers", "/v1/tiers/", "/v1/consumers", "/v1/consumers/", "/v1/providers", "/v1/providers/"}

type api struct {
	o APIOptions
}

// NewAPI returns the handler of the accounts endpoints (see ADMIN_API.md):
//
//	GET|POST             /v1/tiers
//	GET|PUT|DELETE       /v1/tiers/{name}
//	GET|POST             /v1/consumers
//	GET|PATCH|DELETE     /v1/consumers/{name}
//	GET|POST             /v1/consumers/{name}/keys
//	POST                 /v1/consumers/{name}/keys/{id}/rotate
//	DELETE               /v1/consumers/{name}/keys/{id}
//	GET|POST             /v1/providers
//	GET                  /v1/providers/health
//	GET|PUT|DELETE       /v1/providers/{name}
//	POST                 /v1/providers/{name}/keys
//	DELETE               /v1/providers/{name}/keys/{id}
//
// It does not authenticate: mount it behind the admin token.
func NewAPI(o APIOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	a := &api{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tiers", a.listTiers)
	mux.HandleFunc("POST /v1/tiers", a.createTier)
	mux.HandleFunc("GET /v1/tiers/{name}", a.getTier)
	mux.HandleFunc("PUT /v1/tiers/{name}", a.replaceTier)
	mux.HandleFunc("DELETE /v1/tiers/{name}", a.deleteTier)
	mux.HandleFunc("GET /v1/consumers", a.listConsumers)
	mux.HandleFunc("POST /v1/consumers", a.createConsumer)
	mux.HandleFunc("GET /v1/consumers/{name}", a.getConsumer)
	mux.HandleFunc("PATCH /v1/consumers/{name}", a.patchConsumer)
	mux.HandleFunc("DELETE /v1/consumers/{name}", a.deleteConsumer)
	mux.HandleFunc("GET /v1/consumers/{name}/keys", a.listKeys)
	mux.HandleFunc("POST /v1/consumers/{name}/keys", a.issueKey)
	mux.HandleFunc("POST /v1/consumers/{name}/keys/{id}/rotate", a.rotateKey)
	mux.HandleFunc("DELETE /v1/consumers/{name}/keys/{id}", a.revokeKey)
	mux.HandleFunc("GET /v1/providers", a.listProviders)
	mux.HandleFunc("POST /v1/providers", a.createProvider)
	mux.HandleFunc("GET /v1/providers/health", a.providerHealth)
	mux.HandleFunc("GET /v1/providers/{name}", a.getProvider)
	mux.HandleFunc("PUT /v1/providers/{name}", a.replaceProvider)
	mux.HandleFunc("DELETE /v1/providers/{name}", a.deleteProvider)
	mux.HandleFunc("POST /v1/providers/{name}/keys", a.addProviderKey)
	mux.HandleFunc("DELETE /v1/providers/{name}/keys/{id}", a.deleteProviderKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // sets the path values
			return
		}
		// The mux answers 404 or 405 (with Allow) in plain text; the API
		// answers in JSON.
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		if probe.status == http.StatusMethodNotAllowed {
			writeError(w, probe.status, r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

func (a *api) base() Base {
	if a.o.Base == nil {
		return Base{}
	}
	return a.o.Base()
}

// body reads a request body, answering 400 itself when it cannot.
func body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "the body is larger than 1 MiB")
		} else {
			writeError(w, http.StatusBadRequest, "cannot read the body")
		}
		return nil, false
	}
	return data, true
}

// answer writes v with status, or the error's status and message.
func answer(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNoEncryptionKey):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrConfigOwned), errors.Is(err, ErrInUse),
		errors.Is(err, ErrConflict), errors.Is(err, ErrBusy):
		return http.StatusConflict
	}
	return http.StatusServiceUnavailable
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

func (a *api) changed(what, name string, err error, attrs ...any) {
	if err == nil {
		a.o.Logger.Info("accounts: "+what, append([]any{"name", name}, attrs...)...)
	}
}

// statusProbe records the status a handler answers, dropping its body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }

func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

func (p *statusProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}
