package envoyemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// hopByHop headers belong to one connection; Envoy's codecs drop them.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"upgrade": true, "te": true, "host": true,
}

// serve runs the request through the filter chain: ext_proc, then the router.
func (x *exchange) serve() {
	if d := x.route.DirectResponse; d != nil {
		x.w.Header().Set("Content-Type", "text/plain")
		x.w.WriteHeader(d.Status)
		_, _ = io.WriteString(x.w, d.Body)
		x.rec.ResponseCode, x.rec.ResponseCodeDetails = d.Status, "direct_response"
		return
	}
	h := x.requestHeaders()
	x.rec.requestHeaders = h
	hasBody := x.r.Body != nil && x.r.Body != http.NoBody && x.r.ContentLength != 0
	body, ok := x.decodeHeaders(&h, hasBody)
	x.rec.requestHeaders = h
	if !ok {
		return
	}
	x.forward(h, body)
}

// requestHeaders is the request as Envoy's connection manager hands it to
// the filters: pseudo-headers from the request line, the client's headers
// without hop-by-hop and x-envoy-* ones (stripped at the edge), and the
// headers Envoy adds as an edge proxy (use_remote_address: true): the peer
// appended to x-forwarded-for, x-forwarded-proto, and a fresh x-request-id.
func (x *exchange) requestHeaders() headerMap {
	r := x.r
	h := headerMap{{":authority", r.Host}, {":path", r.URL.RequestURI()}, {":method", r.Method}, {":scheme", "http"}}
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if hopByHop[lk] || strings.HasPrefix(lk, "x-envoy-") || lk == "x-request-id" {
			continue
		}
		for _, v := range r.Header[k] {
			h.add(lk, v)
		}
	}
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if xff, ok := h.get("x-forwarded-for"); ok {
		h.set("x-forwarded-for", xff+","+peer)
	} else {
		h.add("x-forwarded-for", peer)
	}
	h.set("x-forwarded-proto", "http")
	h.add("x-request-id", newUUID())
	x.rec.RequestID, _ = h.get("x-request-id")
	return h
}

// requestBody is what goes upstream: bytes in memory, a reader, or (stream)
// the downstream body run through ext_proc chunk by chunk as it is sent.
type requestBody struct {
	data   []byte
	reader io.Reader
	stream bool
}

// decodeHeaders runs the request headers and body through ext_proc.
func (x *exchange) decodeHeaders(h *headerMap, hasBody bool) (requestBody, bool) {
	var replaced *[]byte
	if x.dec.sendHeaders {
		req := &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestHeaders{
			RequestHeaders: &extprocsvc.HttpHeaders{Headers: h.proto(), EndOfStream: !hasBody}}}
		f := x.send(req, decoding)
		// Envoy drops content-length as decodeHeaders returns, under the
		// mode in force before the answer.
		if f == flowAnswer && x.dec.removesContentLength() {
			h.del("content-length")
		}
		var resp *extprocsvc.ProcessingResponse
		if f == flowAnswer {
			resp, f = x.await(wantRequestHeaders)
		}
		if f == flowEnd {
			return requestBody{}, false
		}
		if f == flowAnswer {
			cr := resp.GetRequestHeaders().GetResponse()
			opts := x.mutateOpts(cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE, x.dec)
			if err := applyHeaderMutation(cr.GetHeaderMutation(), h, x.p.checker, opts); err != nil {
				return requestBody{}, x.mutationError(err) != flowEnd
			}
			if cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE {
				if bm := cr.GetBodyMutation(); bm != nil {
					h.del("content-length")
					b, _ := applyBodyMutation(bm, nil)
					replaced = &b
				}
				x.dec.body = extprocv3.ProcessingMode_NONE
			}
		}
	} else if !x.complete.Load() && x.dec.removesContentLength() {
		h.del("content-length")
	}
	if replaced != nil {
		return requestBody{data: *replaced}, true
	}
	if !hasBody {
		return requestBody{}, true
	}
	if x.complete.Load() {
		return requestBody{reader: x.r.Body}, true
	}
	switch x.dec.body {
	case extprocv3.ProcessingMode_BUFFERED, extprocv3.ProcessingMode_BUFFERED_PARTIAL:
		return x.bufferedRequestBody(h)
	case extprocv3.ProcessingMode_STREAMED:
		return requestBody{stream: true}, true
	}
	return requestBody{reader: x.r.Body}, true
}

func (x *exchange) mutateOpts(replacing bool, d dirState) mutateOptions {
	return mutateOptions{replacing: replacing, dropContentLength: d.removesContentLength(), honorAppendAction: x.p.opts.HonorAppendAction}
}

// bufferedRequestBody reads the body up to the route's buffer limit and
// sends it in one message (BUFFERED; a larger body is answered 413), or
// sends the part up to the limit and lets the rest through unprocessed
// (BUFFERED_PARTIAL).
func (x *exchange) bufferedRequestBody(h *headerMap) (requestBody, bool) {
	limit := x.route.RequestBodyLimit
	if limit <= 0 {
		limit = defaultBufferLimit
	}
	data, complete, err := readUpTo(x.r.Body, limit)
	if err != nil {
		return requestBody{}, x.downstreamGone() != flowEnd
	}
	if !complete && x.dec.body == extprocv3.ProcessingMode_BUFFERED {
		x.envoyReply(http.StatusRequestEntityTooLarge, "Payload Too Large", "request_payload_too_large", "-")
		return requestBody{}, false
	}
	data, ok := x.bufferedBody(decoding, data, complete, h)
	if !ok {
		return requestBody{}, false
	}
	if complete {
		return requestBody{data: data}, true
	}
	return requestBody{reader: io.MultiReader(bytes.NewReader(data), x.r.Body)}, true
}

// bufferedBody sends a buffered body and applies the answer: header
// mutations (the headers have not left yet), the content-length check
// Envoy makes in BUFFERED mode, and the body mutation.
func (x *exchange) bufferedBody(dir direction, data []byte, complete bool, h *headerMap) ([]byte, bool) {
	st, want := &x.dec, wantRequestBody
	body := &extprocsvc.HttpBody{Body: data, EndOfStream: complete}
	req := &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestBody{RequestBody: body}}
	if dir == encoding {
		st, want = &x.enc, wantResponseBody
		req = &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_ResponseBody{ResponseBody: body}}
	}
	buffered := st.body == extprocv3.ProcessingMode_BUFFERED
	f := x.send(req, dir)
	var resp *extprocsvc.ProcessingResponse
	if f == flowAnswer {
		resp, f = x.await(want)
	}
	switch f {
	case flowEnd:
		return nil, false
	case flowSkip:
		return data, true
	}
	cr := resp.GetRequestBody().GetResponse()
	if dir == encoding {
		cr = resp.GetResponseBody().GetResponse()
	}
	if err := applyHeaderMutation(cr.GetHeaderMutation(), h, x.p.checker, x.mutateOpts(false, *st)); err != nil {
		return nil, x.mutationError(err) != flowEnd
	}
	bm := cr.GetBodyMutation()
	if bm == nil {
		return data, true
	}
	if cl, ok := h.get("content-length"); ok && buffered {
		if n, err := strconv.Atoi(cl); err == nil && n != len(bm.GetBody()) {
			return nil, x.mutationError(fmt.Errorf("%w: mismatch between content length and the length of the mutated body", errMutation)) != flowEnd
		}
	}
	out, ok := applyBodyMutation(bm, data)
	if !ok {
		return nil, x.spurious("spurious message: streamed_response is received while body_mode_ is not FULL_DUPLEX_STREAMED") != flowEnd
	}
	return out, true
}

// readUpTo reads r to its end if it holds at most limit bytes (complete is
// then true); otherwise it returns the first limit bytes and complete false,
// having consumed one byte more.
func readUpTo(r io.Reader, limit int64) (data []byte, complete bool, err error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, limit))
	if err != nil {
		return nil, false, err
	}
	if n < limit {
		return buf.Bytes(), true, nil
	}
	var probe [1]byte
	m, err := r.Read(probe[:])
	if m == 0 && err == io.EOF {
		return buf.Bytes(), true, nil
	}
	if m > 0 {
		return buf.Bytes(), false, nil
	}
	return buf.Bytes(), false, err
}

// forward sends the request upstream and the response back through ext_proc.
func (x *exchange) forward(h headerMap, body requestBody) {
	method, _ := h.get(":method")
	path, _ := h.get(":path")
	target := *x.p.opts.Upstream
	rawPath, rawQuery, _ := strings.Cut(path, "?")
	target.Path = strings.TrimSuffix(target.Path, "/") + rawPath
	target.RawPath = ""
	target.RawQuery = rawQuery
	ctx, cancel := context.WithCancel(x.r.Context())
	defer cancel()
	var timedOut atomic.Bool
	if t := x.route.Timeout; t > 0 {
		timer := time.AfterFunc(t, func() { timedOut.Store(true); cancel() })
		defer timer.Stop()
	}
	var rd io.Reader = http.NoBody
	length := int64(0)
	var pw *io.PipeWriter
	switch {
	case body.data != nil:
		rd, length = bytes.NewReader(body.data), -1
	case body.reader != nil:
		rd, length = body.reader, -1
	case body.stream:
		// STREAMED: the upstream request starts at once and reads the
		// processed chunks as ext_proc answers them.
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		rd, length = pr, -1
	}
	req, err := http.NewRequestWithContext(ctx, method, target.String(), rd)
	if err != nil {
		x.envoyReply(http.StatusBadRequest, "Bad Request", "invalid_request", "-")
		return
	}
	req.ContentLength = length
	for _, e := range h {
		if strings.HasPrefix(e.key, ":") {
			continue
		}
		if e.key == "content-length" {
			if n, err := strconv.ParseInt(e.value, 10, 64); err == nil {
				req.ContentLength = n
			}
			continue
		}
		req.Header.Add(e.key, e.value)
	}
	if rd == http.NoBody {
		req.ContentLength = 0
	}
	// auto_host_rewrite: the upstream's host, after ext_proc saw the client's.
	req.Host = target.Host
	x.rec.upstreamHost = target.Host
	resp, err := x.do(req, pw, cancel)
	if pw != nil && err == errBodyAborted {
		return
	}
	switch {
	case err != nil && timedOut.Load():
		x.envoyReply(http.StatusGatewayTimeout, "upstream request timeout", "upstream_response_timeout", "UT")
		return
	case err != nil && x.r.Context().Err() != nil:
		x.downstreamGone()
		return
	case err != nil:
		x.envoyReply(http.StatusServiceUnavailable,
			"upstream connect error or disconnect/reset before headers. reset reason: connection failure",
			"upstream_reset_before_response_started{connection_failure}", "UF")
		return
	}
	defer resp.Body.Close()
	x.encode(resp, "via_upstream", func() string {
		if timedOut.Load() {
			return "UT"
		}
		return "UR"
	})
}

var errBodyAborted = errors.New("request body processing ended the request")

// do sends req upstream. With a pipe it also streams the request body
// through ext_proc on this goroutine, so that local replies and resets stay
// on the handler's goroutine.
func (x *exchange) do(req *http.Request, pw *io.PipeWriter, cancel context.CancelFunc) (*http.Response, error) {
	if pw == nil {
		return x.p.client.Do(req)
	}
	type result struct {
		resp *http.Response
		err  error
	}
	results := make(chan result, 1)
	go func() {
		resp, err := x.p.client.Do(req)
		results <- result{resp, err}
	}()
	ok := x.streamBody(x.r.Body, decoding, func(b []byte) bool {
		_, err := pw.Write(b)
		return err == nil
	}, func() string { return "DC" })
	if ok {
		_ = pw.Close()
	} else {
		_ = pw.CloseWithError(errBodyAborted)
	}
	if !ok && x.ended {
		cancel()
		if res := <-results; res.resp != nil {
			res.resp.Body.Close()
		}
		return nil, errBodyAborted
	}
	res := <-results
	return res.resp, res.err
}

// envoyReply is a local reply Envoy itself makes (413, 503, 504). Unlike an
// ext_proc immediate response it goes through the encoder filters, so
// tollgate sees its response headers while processing is not complete.
func (x *exchange) envoyReply(status int, body, details, flags string) {
	x.rec.ResponseFlags = flags
	resp := &http.Response{
		StatusCode:    status,
		Header:        http.Header{"Content-Type": {"text/plain"}, "Content-Length": {strconv.Itoa(len(body))}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
	}
	x.encode(resp, details, func() string { return flags })
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
