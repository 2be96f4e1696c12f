package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/consumer"
)

const (
	// SessionCookie is the name of the console's session cookie.
	SessionCookie = "tollgate_session"
	// CSRFHeader must carry the session's CSRF token on every request that
	// changes state with the session cookie (and be present on login): a
	// page on another origin can neither read the token nor set the header
	// without a CORS preflight, which the admin port never grants.
	CSRFHeader = "X-Tollgate-CSRF"
	// SessionTTL is how long a console login lasts.
	SessionTTL = 12 * time.Hour

	sessionVersion = "1"
	// clockSkew is how far ahead of this replica's clock another replica
	// may have minted a session.
	clockSkew = time.Minute
)

// sessions mints and checks the console's session cookies. They hold only
// an expiry and its HMAC, so they need no storage: every replica that
// shares the admin token (and session secret) derives the same key and
// accepts the others' cookies, and changing the token ends every session.
type sessions struct {
	key [sha256.Size]byte
	now func() time.Time
}

func newSessions(token consumer.Hash, secret *consumer.Hash, now func() time.Time) *sessions {
	mac := hmac.New(sha256.New, token[:])
	mac.Write([]byte("tollgate console session key v1\x00"))
	if secret != nil {
		mac.Write(secret[:])
	}
	s := &sessions{now: now}
	mac.Sum(s.key[:0])
	return s
}

func (s *sessions) sign(parts ...string) string {
	mac := hmac.New(sha256.New, s.key[:])
	for _, p := range parts {
		mac.Write([]byte(p))
		mac.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// mint returns a cookie value valid until exp: "1.<unix exp>.<hmac>".
func (s *sessions) mint(exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return sessionVersion + "." + e + "." + s.sign("session", sessionVersion, e)
}

// verify returns the expiry of cookie value v when it was minted with this
// key and has not expired.
func (s *sessions) verify(v string) (time.Time, bool) {
	version, rest, ok := strings.Cut(v, ".")
	if !ok || version != sessionVersion {
		return time.Time{}, false
	}
	e, mac, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.sign("session", sessionVersion, e))) {
		return time.Time{}, false
	}
	unix, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	exp, now := time.Unix(unix, 0), s.now()
	if !now.Before(exp) || exp.After(now.Add(SessionTTL+clockSkew)) {
		return time.Time{}, false
	}
	return exp, true
}

// csrf is the CSRF token of the session whose cookie value is v.
func (s *sessions) csrf(v string) string { return s.sign("csrf", v) }

// session returns the request's valid session cookie value, if any.
func (s *sessions) session(r *http.Request) (string, time.Time, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return "", time.Time{}, false
	}
	exp, ok := s.verify(c.Value)
	return c.Value, exp, ok
}

// csrfOK reports whether r carries the CSRF token of session v.
func (s *sessions) csrfOK(r *http.Request, v string) bool {
	got := r.Header.Get(CSRFHeader)
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrf(v)))
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// requireAdmin lets through requests bearing the admin token, or the
// console's session cookie (with the CSRF token when they change state).
func requireAdmin(token *consumer.Hash, s *sessions, next http.Handler) http.Handler {
	bearerOnly := RequireToken(token, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == nil || r.Header.Get("Authorization") != "" {
			bearerOnly.ServeHTTP(w, r)
			return
		}
		if _, err := r.Cookie(SessionCookie); err != nil {
			bearerOnly.ServeHTTP(w, r)
			return
		}
		v, _, ok := s.session(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "the console session has expired or is invalid: log in again")
			return
		}
		if !safeMethod(r.Method) && !s.csrfOK(r, v) {
			writeError(w, http.StatusForbidden, "missing or wrong "+CSRFHeader+" header")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sessionInfo is what the console learns about its session.
type sessionInfo struct {
	ExpiresAt time.Time `json:"expires_at"`
	// CSRF goes into the CSRFHeader of the requests that change state.
	CSRF string `json:"csrf"`
}

func (s *sessions) setCookie(w http.ResponseWriter, r *http.Request, v string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    v,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		// Behind a TLS-terminating proxy the request arrives in clear; the
		// proxy says so, and a client forging the header only makes the
		// cookie stricter.
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	})
}

// sameOrigin rejects a request whose Origin names another host than the
// one it was sent to (browsers send Origin on every POST).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	_, host, ok := strings.Cut(o, "://")
	return ok && strings.EqualFold(host, r.Host)
}

// login checks the admin token posted by the console's login form and
// starts a session.
func (s *sessions) login(token *consumer.Hash) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if token == nil {
			writeError(w, http.StatusForbidden, "the admin API is disabled: set admin.token in the config")
			return
		}
		if r.Header.Get(CSRFHeader) == "" || !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "login must come from the console page")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "cannot read the login form")
			return
		}
		presented := r.PostForm.Get("token")
		if presented == "" || !consumer.HashKey(presented).Equal(*token) {
			writeError(w, http.StatusUnauthorized, "invalid admin token")
			return
		}
		exp := s.now().Add(SessionTTL).Truncate(time.Second)
		v := s.mint(exp)
		s.setCookie(w, r, v, int(SessionTTL/time.Second))
		writeJSON(w, http.StatusOK, sessionInfo{ExpiresAt: exp.UTC(), CSRF: s.csrf(v)})
	}
}

// current tells the console whether it has a session, and its CSRF token.
func (s *sessions) current(token *consumer.Hash) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if token == nil {
			writeError(w, http.StatusForbidden, "the admin API is disabled: set admin.token in the config")
			return
		}
		v, exp, ok := s.session(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "not logged in")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, sessionInfo{ExpiresAt: exp.UTC(), CSRF: s.csrf(v)})
	}
}

// logout clears the session cookie. The cookie is stateless, so a copy
// taken before stays valid until it expires; changing the admin token (or
// session secret) ends every session at once.
func (s *sessions) logout(w http.ResponseWriter, r *http.Request) {
	if v, _, ok := s.session(r); ok && !s.csrfOK(r, v) {
		writeError(w, http.StatusForbidden, "missing or wrong "+CSRFHeader+" header")
		return
	}
	s.setCookie(w, r, "", -1)
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
