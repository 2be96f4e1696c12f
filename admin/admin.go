// Package admin serves tollgate's admin HTTP port: liveness and readiness
// probes, Prometheus metrics, the operator API behind the admin token, and
// the web console, whose login turns the token into a session cookie.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/console"
	"github.com/tollgate-ai/tollgate/consumer"
)

// Config is the admin section of tollgate's config.
type Config struct {
	// Token is the bearer token of the admin API: "sha256:<hex>",
	// "env:VAR" or plain (hashed at load). Without it the API answers 403.
	Token string `yaml:"token"`
	// SessionSecret, optional ("env:VAR" recommended), is mixed into the
	// key that signs console sessions. Without it the key derives from the
	// token's hash alone, so whoever can read a "sha256:" token in the
	// config could mint a session; with it they also need this secret.
	// Every replica must share it.
	SessionSecret string `yaml:"session_secret"`
	// Pprof serves Go's profiler at /debug/pprof/, behind the admin token,
	// for profiling a running replica.
	Pprof bool `yaml:"pprof"`
}

// Validate checks c, naming the field path of each problem.
func (c *Config) Validate(path string, getenv func(string) string) error {
	var errs []error
	if c.Token != "" {
		if _, err := consumer.ParseSecret(c.Token, getenv); err != nil {
			errs = append(errs, fmt.Errorf("%s.token: %w", path, err))
		}
	}
	if c.SessionSecret != "" {
		if _, err := consumer.ParseSecret(c.SessionSecret, getenv); err != nil {
			errs = append(errs, fmt.Errorf("%s.session_secret: %w", path, err))
		} else if c.Token == "" {
			errs = append(errs, fmt.Errorf("%s.session_secret: set without admin.token, it has nothing to sign", path))
		}
	}
	return errors.Join(errs...)
}

// Options build the admin handler.
type Options struct {
	Config Config
	// Getenv reads the token's environment variable; default os.Getenv.
	Getenv func(string) string
	// Ready reports whether the store answers; /readyz fails until it does.
	Ready func(context.Context) error
	// Metrics, when set, serves /metrics.
	Metrics http.Handler
	// API serves the operator endpoints (/v1/...), behind the token or a
	// console session.
	API http.Handler
	// Clock returns the current time (session expiry); default time.Now.
	Clock func() time.Time
}

// New returns the admin handler.
func New(o Options) (http.Handler, error) {
	var token *consumer.Hash
	if o.Config.Token != "" {
		h, err := consumer.ParseSecret(o.Config.Token, o.Getenv)
		if err != nil {
			return nil, fmt.Errorf("admin.token: %w", err)
		}
		token = &h
	}
	var secret *consumer.Hash
	if o.Config.SessionSecret != "" {
		h, err := consumer.ParseSecret(o.Config.SessionSecret, o.Getenv)
		if err != nil {
			return nil, fmt.Errorf("admin.session_secret: %w", err)
		}
		secret = &h
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	var sess *sessions
	if token != nil {
		sess = newSessions(*token, secret, o.Clock)
	} else {
		// Nothing can log in; the handlers answer 403 before using it.
		sess = newSessions(consumer.Hash{}, nil, o.Clock)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain")
		if o.Ready != nil {
			if err := o.Ready(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, "store not ready: %v\n", err)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.API != nil {
		mux.Handle("/v1/", requireAdmin(token, sess, o.API))
	}
	if o.Config.Pprof {
		prof := http.NewServeMux()
		prof.HandleFunc("/debug/pprof/", pprof.Index)
		prof.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		prof.HandleFunc("/debug/pprof/profile", pprof.Profile)
		prof.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		prof.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/debug/pprof/", requireAdmin(token, sess, prof))
	}
	mux.Handle("GET /console/", console.Handler())
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	mux.HandleFunc("POST /console/login", sess.login(token))
	mux.HandleFunc("POST /console/logout", sess.logout)
	mux.HandleFunc("GET /console/session", sess.current(token))
	return mux, nil
}

// RequireToken lets through only requests bearing the admin token,
// compared in constant time by hash. Without a token nothing gets through.
func RequireToken(token *consumer.Hash, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == nil {
			writeError(w, http.StatusForbidden, "the admin API is disabled: set admin.token in the config")
			return
		}
		presented, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-admin"`)
			writeError(w, http.StatusUnauthorized, "missing admin token")
			return
		}
		if !consumer.HashKey(presented).Equal(*token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-admin"`)
			writeError(w, http.StatusUnauthorized, "invalid admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(v string) (string, bool) {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		t := strings.TrimSpace(v[7:])
		return t, t != ""
	}
	return "", false
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg, "type": "invalid_request_error"}})
}
