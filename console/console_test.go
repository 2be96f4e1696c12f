package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, p string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, p, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w
}

// files lists the embedded files by their path under Prefix.
func files(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		out[strings.TrimPrefix(p, "static/")] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestServesEveryFile(t *testing.T) {
	for name, want := range files(t) {
		t.Run(name, func(t *testing.T) {
			w := get(t, Prefix+name, nil)
			if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), want) {
				t.Fatalf("status %d, %d bytes; want 200 and the embedded %d bytes", w.Code, w.Body.Len(), len(want))
			}
			ct := w.Header().Get("Content-Type")
			wantType := map[string]string{".html": "text/html", ".js": "text/javascript", ".css": "text/css"}[path.Ext(name)]
			if wantType == "" || !strings.HasPrefix(ct, wantType) {
				t.Errorf("Content-Type %q for %s", ct, name)
			}
			for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "ETag"} {
				if w.Header().Get(h) == "" {
					t.Errorf("no %s header", h)
				}
			}
		})
	}
}

func TestPage(t *testing.T) {
	w := get(t, Prefix, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `<script type="module" src="js/app.js">`) {
		t.Fatalf("GET %s: %d\n%s", Prefix, w.Code, w.Body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("the page's CSP %q must allow only the console's own scripts", csp)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	cases := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, Prefix + "missing.js", http.StatusNotFound},
		{http.MethodGet, Prefix + "js/", http.StatusNotFound},
		{http.MethodGet, Prefix + "../console.go", http.StatusNotFound},
		{http.MethodGet, "/elsewhere/index.html", http.StatusNotFound},
		{http.MethodPost, Prefix, http.StatusMethodNotAllowed},
		{http.MethodHead, Prefix + "style.css", http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			Handler().ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
			if w.Code != tc.want {
				t.Errorf("status %d, want %d", w.Code, tc.want)
			}
			if tc.method == http.MethodHead && w.Body.Len() != 0 {
				t.Errorf("HEAD answered a body of %d bytes", w.Body.Len())
			}
		})
	}
}

func TestGzip(t *testing.T) {
	want := files(t)["js/views/consumer.js"]
	cases := []struct {
		accept string
		gzip   bool
	}{
		{"gzip", true},
		{"br, gzip, deflate", true},
		{"gzip;q=0.5", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"br", false},
		{"", false},
	}
	for _, tc := range cases {
		t.Run(tc.accept, func(t *testing.T) {
			w := get(t, Prefix+"js/views/consumer.js", map[string]string{"Accept-Encoding": tc.accept})
			if got := w.Header().Get("Content-Encoding") == "gzip"; got != tc.gzip {
				t.Fatalf("gzipped: %v, want %v", got, tc.gzip)
			}
			body := w.Body.Bytes()
			if tc.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(body, want) {
				t.Error("the body is not the embedded file")
			}
			if w.Header().Get("Vary") != "Accept-Encoding" {
				t.Error("no Vary: Accept-Encoding, so a cache could serve gzip to a client that refused it")
			}
		})
	}
}

func TestETag(t *testing.T) {
	first := get(t, Prefix+"style.css", nil)
	etag := first.Header().Get("ETag")
	for _, match := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		if w := get(t, Prefix+"style.css", map[string]string{"If-None-Match": match}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("If-None-Match %s: %d with %d bytes, want 304 and no body", match, w.Code, w.Body.Len())
		}
	}
	if w := get(t, Prefix+"style.css", map[string]string{"If-None-Match": `"stale"`}); w.Code != http.StatusOK {
		t.Errorf("a stale ETag got %d, want 200", w.Code)
	}
	if other := get(t, Prefix+"js/app.js", nil).Header().Get("ETag"); other == etag {
		t.Error("two files share an ETag")
	}
}

var (
	importRe = regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'`)
	linkRe   = regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	urlRe    = regexp.MustCompile(`https?://[^\s'"\x60)]+`)
)

// TestReferencesResolve checks that every module import and every file the
// page links exists in the binary, so no view fails to load in a browser.
func TestReferencesResolve(t *testing.T) {
	all := files(t)
	check := func(from, ref string) {
		target := path.Join(path.Dir(from), ref)
		if _, ok := all[target]; !ok {
			t.Errorf("%s refers to %s (%s), which is not embedded", from, ref, target)
		}
	}
	for _, m := range linkRe.FindAllStringSubmatch(string(all["index.html"]), -1) {
		check("index.html", m[1])
	}
	for name, body := range all {
		if path.Ext(name) != ".js" {
			continue
		}
		for _, m := range importRe.FindAllStringSubmatch(string(body), -1) {
			check(name, m[1])
		}
	}
}

// TestSelfContained checks that the console loads nothing from elsewhere
// (no CDN) and stays small.
func TestSelfContained(t *testing.T) {
	all, err := assets()
	if err != nil {
		t.Fatal(err)
	}
	var raw, sent int
	for name, a := range all {
		if name == "" {
			continue
		}
		for _, u := range urlRe.FindAllString(string(a.body), -1) {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("%s refers to %s: the console must load only its own files", name, u)
			}
		}
		raw += len(a.body)
		if a.gzipped != nil {
			sent += len(a.gzipped)
		} else {
			sent += len(a.body)
		}
	}
	t.Logf("console: %d files, %d bytes, %d bytes gzipped", len(all)-1, raw, sent)
	const budget = 64 << 10
	if sent > budget {
		t.Errorf("the console sends %d bytes gzipped, over its budget of %d", sent, budget)
	}
}

// BenchmarkServeGzipped serves the largest module gzipped, as a browser
// loading the console asks for it.
func BenchmarkServeGzipped(b *testing.B) {
	h := Handler()
	r := httptest.NewRequest(http.MethodGet, Prefix+"js/views/consumer.js", nil)
	r.Header.Set("Accept-Encoding", "gzip, deflate, br")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
