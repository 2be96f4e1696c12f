// Package console is tollgate's web console: a small front end (plain ES
// modules, one stylesheet, no build step) embedded in the binary and served
// under /console/ on the admin port. It holds no data and no secret: every
// view reads the admin API (/v1/...) with the session cookie that the admin
// package sets at login, so the files themselves need no authentication.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
)

//go:embed static
var static embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console/"

// contentSecurityPolicy allows only the console's own files: no inline
// script or style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body, gzipped []byte
	contentType   string
	etag          string
}

// Assets returns the embedded files by path under Prefix ("" is the page).
func loadAssets() (map[string]*asset, error) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("cannot open the embedded console: %w", err)
	}
	out := map[string]*asset{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", p, err)
		}
		a := &asset{body: body, contentType: mime.TypeByExtension(path.Ext(p))}
		if a.contentType == "" {
			a.contentType = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		a.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			return fmt.Errorf("cannot compress %s: %w", p, err)
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("cannot compress %s: %w", p, err)
		}
		if gz.Len() < len(body) {
			a.gzipped = gz.Bytes()
		}
		out[p] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	if page, ok := out["index.html"]; ok {
		out[""] = page
	}
	return out, nil
}

var assets = sync.OnceValues(loadAssets)

// Handler serves the console's files under Prefix. Files are revalidated
// with their ETag on each load (they change only with the binary) and sent
// gzipped to clients that accept it.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all, err := assets()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		a := all[name]
		if !ok || a == nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("Vary", "Accept-Encoding")
		if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", a.contentType)
		body := a.body
		if a.gzipped != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			body = a.gzipped
		}
		h.Set("Content-Length", fmt.Sprint(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		// "gzip;q=0" refuses it.
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
