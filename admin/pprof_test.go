package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPprofBehindTheToken: the profiler is served only when asked for, and
// only to the admin.
func TestPprofBehindTheToken(t *testing.T) {
	for _, on := range []bool{false, true} {
		h, err := New(Options{Config: Config{Token: "secret-token", Pprof: on}})
		if err != nil {
			t.Fatal(err)
		}
		get := func(auth string) int {
			req := httptest.NewRequest("GET", "/debug/pprof/", nil)
			if auth != "" {
				req.Header.Set("Authorization", "Bearer "+auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code
		}
		if !on {
			if code := get("secret-token"); code != http.StatusNotFound {
				t.Errorf("pprof off: %d", code)
			}
			continue
		}
		if code := get(""); code != http.StatusUnauthorized {
			t.Errorf("pprof without token: %d", code)
		}
		if code := get("secret-token"); code != http.StatusOK {
			t.Errorf("pprof with token: %d", code)
		}
	}
}
