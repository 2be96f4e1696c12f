package fakellm

import (
	"compress/gzip"
	"errors"
	"net/http"
	"strings"
)

var errClientGone = errors.New("client went away")

// bodyWriter writes a response body the way the Plan asks: optionally
// gzip-compressed (flushed per write, so a stream stays a stream), and in
// pieces of Plan.Split bytes with a flush after each.
type bodyWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	split int
	gz    *gzip.Writer
}

// startBody sends the status and headers (after deciding on compression) and
// returns the writer for the body.
func startBody(w http.ResponseWriter, r *http.Request, p Plan, status int, contentType string) *bodyWriter {
	bw := &bodyWriter{w: w, rc: http.NewResponseController(w), split: p.Split}
	h := w.Header()
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if p.GzipAlways || (p.Gzip && acceptsGzip(r)) {
		h.Set("Content-Encoding", "gzip")
		h.Del("Content-Length")
		bw.gz = gzip.NewWriter(rawWriter{bw})
	}
	w.WriteHeader(status)
	return bw
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, e := range strings.Split(v, ",") {
			name, q, _ := strings.Cut(strings.TrimSpace(e), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
				return true
			}
		}
	}
	return false
}

// write sends p and flushes it to the network.
func (b *bodyWriter) write(p []byte) error {
	if b.gz != nil {
		if _, err := b.gz.Write(p); err != nil {
			return errClientGone
		}
		if err := b.gz.Flush(); err != nil {
			return errClientGone
		}
		return nil
	}
	return b.writeRaw(p)
}

// writeRaw sends bytes as they go on the wire, in Split-sized pieces.
func (b *bodyWriter) writeRaw(p []byte) error {
	for len(p) > 0 {
		n := len(p)
		if b.split > 0 && n > b.split {
			n = b.split
		}
		if _, err := b.w.Write(p[:n]); err != nil {
			return errClientGone
		}
		if err := b.rc.Flush(); err != nil {
			return errClientGone
		}
		p = p[n:]
	}
	return nil
}

// finish ends the gzip stream, if any.
func (b *bodyWriter) finish() error {
	if b.gz != nil {
		if err := b.gz.Close(); err != nil {
			return errClientGone
		}
	}
	return nil
}

// cut aborts the connection mid-body, as a provider crash or network failure
// would: the client sees the stream end without its terminator.
func (b *bodyWriter) cut() {
	if b.gz != nil {
		_ = b.gz.Flush()
	}
	_ = b.rc.Flush()
	panic(http.ErrAbortHandler)
}

type rawWriter struct{ b *bodyWriter }

func (r rawWriter) Write(p []byte) (int, error) {
	if err := r.b.writeRaw(p); err != nil {
		return 0, err
	}
	return len(p), nil
}
