package admin

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/consumer"
)

const testToken = "console-test-token"

// clock is a settable time for the handlers under test.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock() *clock {
	c := &clock{}
	c.set(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	return c
}
func (c *clock) set(t time.Time)                  { c.t.Store(&t) }
func (c *clock) add(d time.Duration)              { c.set(c.now().Add(d)) }
func (c *clock) now() time.Time                   { return *c.t.Load() }
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// apiStub answers every admin API call with 200 and counts them.
type apiStub struct{ calls atomic.Int64 }

func (a *apiStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.calls.Add(1)
	w.WriteHeader(http.StatusOK)
}

func newAdmin(t *testing.T, cfg Config, c *clock) (http.Handler, *apiStub) {
	t.Helper()
	api := &apiStub{}
	h, err := New(Options{Config: cfg, API: api, Clock: c.now, Getenv: env(map[string]string{"SESSION_SECRET": "s3cret", "OTHER_SECRET": "other"})})
	if err != nil {
		t.Fatal(err)
	}
	return h, api
}

func loginRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/console/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(CSRFHeader, "login")
	return r
}

// login logs in to h and returns the session cookie and CSRF token.
func login(t *testing.T, h http.Handler) (*http.Cookie, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, loginRequest(testToken))
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var info sessionInfo
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			return c, info.CSRF
		}
	}
	t.Fatalf("login set no %s cookie: %v", SessionCookie, w.Result().Header)
	return nil, ""
}

func TestLogin(t *testing.T) {
	cases := []struct {
		name       string
		req        func() *http.Request
		tokenless  bool
		wantStatus int
		wantSecure bool
	}{
		{name: "right token", req: func() *http.Request { return loginRequest(testToken) }, wantStatus: http.StatusOK},
		{name: "right token over TLS", req: func() *http.Request {
			r := loginRequest(testToken)
			r.TLS = &tls.ConnectionState{}
			return r
		}, wantStatus: http.StatusOK, wantSecure: true},
		{name: "right token behind a TLS proxy", req: func() *http.Request {
			r := loginRequest(testToken)
			r.Header.Set("X-Forwarded-Proto", "https")
			return r
		}, wantStatus: http.StatusOK, wantSecure: true},
		{name: "same origin", req: func() *http.Request {
			r := loginRequest(testToken)
			r.Header.Set("Origin", "http://"+r.Host)
			return r
		}, wantStatus: http.StatusOK},
		{name: "wrong token", req: func() *http.Request { return loginRequest("nope") }, wantStatus: http.StatusUnauthorized},
		{name: "token differing in case", req: func() *http.Request { return loginRequest(strings.ToUpper(testToken)) }, wantStatus: http.StatusUnauthorized},
		{name: "empty token", req: func() *http.Request { return loginRequest("") }, wantStatus: http.StatusUnauthorized},
		{name: "no CSRF header (a plain cross-site form)", req: func() *http.Request {
			r := loginRequest(testToken)
			r.Header.Del(CSRFHeader)
			return r
		}, wantStatus: http.StatusForbidden},
		{name: "another origin", req: func() *http.Request {
			r := loginRequest(testToken)
			r.Header.Set("Origin", "https://evil.example")
			return r
		}, wantStatus: http.StatusForbidden},
		{name: "admin API disabled", req: func() *http.Request { return loginRequest(testToken) }, tokenless: true, wantStatus: http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Token: testToken}
			if tc.tokenless {
				cfg = Config{}
			}
			h, _ := newAdmin(t, cfg, newClock())
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req())
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			cookies := w.Result().Cookies()
			if tc.wantStatus != http.StatusOK {
				if len(cookies) != 0 {
					t.Errorf("a refused login set cookies: %v", cookies)
				}
				return
			}
			if len(cookies) != 1 {
				t.Fatalf("want one cookie, got %v", cookies)
			}
			c := cookies[0]
			if c.Name != SessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge != int(SessionTTL/time.Second) {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, Max-Age=%d", c, int(SessionTTL/time.Second))
			}
			if c.Secure != tc.wantSecure {
				t.Errorf("cookie Secure=%v, want %v", c.Secure, tc.wantSecure)
			}
			if strings.Contains(c.Value, testToken) || strings.Contains(w.Body.String(), testToken) {
				t.Error("the token itself leaked into the cookie or the answer")
			}
		})
	}
}

func call(h http.Handler, method, path string, cookie *http.Cookie, header map[string]string) int {
	r := httptest.NewRequest(method, path, strings.NewReader("{}"))
	if cookie != nil {
		r.AddCookie(cookie)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

func TestSessionAuthorizesTheAPI(t *testing.T) {
	c := newClock()
	cfg := Config{Token: testToken}
	h, api := newAdmin(t, cfg, c)
	cookie, csrf := login(t, h)
	exp, mac, _ := strings.Cut(strings.TrimPrefix(cookie.Value, sessionVersion+"."), ".")
	unix, _ := strconv.ParseInt(exp, 10, 64)
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	with := func(v string) *http.Cookie { return &http.Cookie{Name: SessionCookie, Value: v} }
	foreign := with(newSessions(consumer.HashKey("another-token"), nil, c.now).mint(c.now().Add(time.Hour)))

	cases := []struct {
		name   string
		method string
		cookie *http.Cookie
		header map[string]string
		later  time.Duration
		want   int
	}{
		{name: "valid session reads", method: http.MethodGet, cookie: cookie, want: http.StatusOK},
		{name: "valid session just before expiry", method: http.MethodGet, cookie: cookie, later: SessionTTL - time.Second, want: http.StatusOK},
		{name: "expired session", method: http.MethodGet, cookie: cookie, later: SessionTTL, want: http.StatusUnauthorized},
		{name: "tampered expiry", method: http.MethodGet, cookie: with(sessionVersion + "." + strconv.FormatInt(unix+3600, 10) + "." + mac), want: http.StatusUnauthorized},
		{name: "tampered signature", method: http.MethodGet, cookie: with(sessionVersion + "." + exp + "." + flip(mac)), want: http.StatusUnauthorized},
		{name: "truncated", method: http.MethodGet, cookie: with(sessionVersion + "." + exp), want: http.StatusUnauthorized},
		{name: "unknown version", method: http.MethodGet, cookie: with("2." + exp + "." + mac), want: http.StatusUnauthorized},
		{name: "empty", method: http.MethodGet, cookie: with(""), want: http.StatusUnauthorized},
		{name: "minted under another admin token", method: http.MethodGet, cookie: foreign, want: http.StatusUnauthorized},
		{name: "change with the CSRF token", method: http.MethodPost, cookie: cookie, header: map[string]string{CSRFHeader: csrf}, want: http.StatusOK},
		{name: "delete with the CSRF token", method: http.MethodDelete, cookie: cookie, header: map[string]string{CSRFHeader: csrf}, want: http.StatusOK},
		{name: "change without CSRF header", method: http.MethodPost, cookie: cookie, want: http.StatusForbidden},
		{name: "change with a wrong CSRF token", method: http.MethodPut, cookie: cookie, header: map[string]string{CSRFHeader: flip(csrf)}, want: http.StatusForbidden},
		{name: "change with the login placeholder", method: http.MethodPatch, cookie: cookie, header: map[string]string{CSRFHeader: "login"}, want: http.StatusForbidden},
		{name: "bearer token changes without CSRF", method: http.MethodPost, header: map[string]string{"Authorization": "Bearer " + testToken}, want: http.StatusOK},
		{name: "a wrong bearer token is not rescued by the cookie", method: http.MethodGet, cookie: cookie, header: map[string]string{"Authorization": "Bearer nope"}, want: http.StatusUnauthorized},
		{name: "neither", method: http.MethodGet, want: http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.set(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).Add(tc.later))
			before := api.calls.Load()
			got := call(h, tc.method, "/v1/quota/team-a", tc.cookie, tc.header)
			if got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if reached := api.calls.Load() > before; reached != (tc.want == http.StatusOK) {
				t.Errorf("the API was reached: %v, want %v", reached, tc.want == http.StatusOK)
			}
		})
	}
}

func TestSessionsAcrossReplicas(t *testing.T) {
	c := newClock()
	a, _ := newAdmin(t, Config{Token: testToken}, c)
	cookie, csrf := login(t, a)
	cases := []struct {
		name string
		cfg  Config
		want int
	}{
		{name: "same token", cfg: Config{Token: testToken}, want: http.StatusOK},
		{name: "same token given by hash", cfg: Config{Token: consumer.HashKey(testToken).String()}, want: http.StatusOK},
		{name: "rotated token", cfg: Config{Token: "rotated"}, want: http.StatusUnauthorized},
		{name: "session secret added", cfg: Config{Token: testToken, SessionSecret: "env:SESSION_SECRET"}, want: http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newAdmin(t, tc.cfg, c)
			if got := call(b, http.MethodPost, "/v1/quota/team-a/delta", cookie, map[string]string{CSRFHeader: csrf}); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("replicas sharing a session secret", func(t *testing.T) {
		cfg := Config{Token: testToken, SessionSecret: "env:SESSION_SECRET"}
		a, _ := newAdmin(t, cfg, c)
		cookie, csrf := login(t, a)
		b, _ := newAdmin(t, cfg, c)
		if got := call(b, http.MethodPost, "/v1/x", cookie, map[string]string{CSRFHeader: csrf}); got != http.StatusOK {
			t.Errorf("status %d on the other replica, want 200", got)
		}
		other, _ := newAdmin(t, Config{Token: testToken, SessionSecret: "env:OTHER_SECRET"}, c)
		if got := call(other, http.MethodGet, "/v1/x", cookie, nil); got != http.StatusUnauthorized {
			t.Errorf("status %d with another session secret, want 401", got)
		}
	})
}

func TestSessionRejectsFarFutureExpiry(t *testing.T) {
	c := newClock()
	var token [32]byte
	s := newSessions(token, nil, c.now)
	if _, ok := s.verify(s.mint(c.now().Add(SessionTTL))); !ok {
		t.Error("a fresh session is refused")
	}
	if _, ok := s.verify(s.mint(c.now().Add(30 * 24 * time.Hour))); ok {
		t.Error("a session valid for 30 days is accepted; sessions last at most 12h")
	}
}

func TestSessionEndpointAndLogout(t *testing.T) {
	c := newClock()
	h, _ := newAdmin(t, Config{Token: testToken}, c)
	cookie, csrf := login(t, h)

	r := httptest.NewRequest(http.MethodGet, "/console/session", nil)
	r.AddCookie(cookie)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var info sessionInfo
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &info) != nil || info.CSRF != csrf {
		t.Fatalf("GET /console/session: %d %s, want 200 with the login's CSRF token", w.Code, w.Body)
	}
	if want := c.now().Add(SessionTTL); !info.ExpiresAt.Equal(want) {
		t.Errorf("expires_at %v, want %v", info.ExpiresAt, want)
	}
	if got := call(h, http.MethodGet, "/console/session", nil, nil); got != http.StatusUnauthorized {
		t.Errorf("GET /console/session without a cookie: %d, want 401", got)
	}

	if got := call(h, http.MethodPost, "/console/logout", cookie, nil); got != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d, want 403", got)
	}
	r = httptest.NewRequest(http.MethodPost, "/console/logout", nil)
	r.AddCookie(cookie)
	r.Header.Set(CSRFHeader, csrf)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d", w.Code)
	}
	cleared := w.Result().Cookies()
	if len(cleared) != 1 || cleared[0].Name != SessionCookie || cleared[0].MaxAge >= 0 || cleared[0].Value != "" {
		t.Errorf("logout did not clear the cookie: %v", cleared)
	}
	if got := call(h, http.MethodPost, "/console/logout", nil, nil); got != http.StatusNoContent {
		t.Errorf("logout without a session: %d, want 204", got)
	}
}

func TestConsoleIsMounted(t *testing.T) {
	h, _ := newAdmin(t, Config{Token: testToken}, newClock())
	cases := []struct {
		path, want string
		status     int
	}{
		{"/console", "", http.StatusMovedPermanently},
		{"/console/", "text/html; charset=utf-8", http.StatusOK},
		{"/console/style.css", "text/css; charset=utf-8", http.StatusOK},
		{"/console/js/app.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"/console/nope.js", "", http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.want != "" && w.Header().Get("Content-Type") != tc.want {
				t.Errorf("Content-Type %q, want %q", w.Header().Get("Content-Type"), tc.want)
			}
		})
	}
}

func TestValidateSessionSecret(t *testing.T) {
	getenv := env(map[string]string{"SET": "x"})
	cases := []struct {
		cfg  Config
		want []string
	}{
		{Config{Token: "t", SessionSecret: "env:SET"}, nil},
		{Config{Token: "t"}, nil},
		{Config{Token: "t", SessionSecret: "env:UNSET"}, []string{"admin.session_secret: environment variable UNSET"}},
		{Config{SessionSecret: "env:SET"}, []string{"admin.session_secret: set without admin.token"}},
		{Config{Token: "env:UNSET", SessionSecret: "sha256:12"}, []string{"admin.token: environment variable UNSET", "admin.session_secret: sha256 key must be"}},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate("admin", getenv)
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%+v: %v", tc.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: no error, want %q", tc.cfg, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %v, want it to say %q", tc.cfg, err, w)
			}
		}
	}
}

func TestConsoleWithoutAdminToken(t *testing.T) {
	h, api := newAdmin(t, Config{}, newClock())
	for _, p := range []string{"/console/session", "/v1/quota"} {
		if got := call(h, http.MethodGet, p, &http.Cookie{Name: SessionCookie, Value: "1.9999999999.x"}, nil); got != http.StatusForbidden {
			t.Errorf("GET %s without admin.token: %d, want 403", p, got)
		}
	}
	if api.calls.Load() != 0 {
		t.Error("the API was reached without an admin token configured")
	}
}

// BenchmarkSessionRequest is the cost the session check adds to an admin
// API call made from the console.
func BenchmarkSessionRequest(b *testing.B) {
	c := newClock()
	api := &apiStub{}
	h, err := New(Options{Config: Config{Token: testToken}, API: api, Clock: c.now})
	if err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, loginRequest(testToken))
	cookie := w.Result().Cookies()[0]
	r := httptest.NewRequest(http.MethodGet, "/v1/quota", nil)
	r.AddCookie(cookie)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
