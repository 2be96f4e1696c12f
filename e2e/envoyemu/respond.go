package envoyemu

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// encode runs the response (from upstream or made by Envoy) through ext_proc
// and writes it downstream. resetFlags names the cause when the upstream
// body breaks mid-way.
func (x *exchange) encode(resp *http.Response, details string, resetFlags func() string) {
	h := headerMap{{":status", strconv.Itoa(resp.StatusCode)}}
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if hopByHop[lk] {
			continue
		}
		for _, v := range resp.Header[k] {
			h.add(lk, v)
		}
	}
	hasBody := resp.ContentLength != 0 && x.r.Method != http.MethodHead &&
		resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified
	x.rec.ResponseCodeDetails = details
	var replaced *[]byte
	if !x.complete.Load() && x.enc.sendHeaders {
		req := &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_ResponseHeaders{
			ResponseHeaders: &extprocsvc.HttpHeaders{Headers: h.proto(), EndOfStream: !hasBody}}}
		f := x.send(req, encoding)
		if f == flowAnswer && x.enc.removesContentLength() {
			h.del("content-length")
		}
		var pr *extprocsvc.ProcessingResponse
		if f == flowAnswer {
			pr, f = x.await(wantResponseHeaders)
		}
		if f == flowEnd {
			return
		}
		if f == flowAnswer {
			cr := pr.GetResponseHeaders().GetResponse()
			replacing := cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE
			if err := applyHeaderMutation(cr.GetHeaderMutation(), &h, x.p.checker, x.mutateOpts(replacing, x.enc)); err != nil {
				x.mutationError(err)
				return
			}
			if replacing {
				if bm := cr.GetBodyMutation(); bm != nil {
					h.del("content-length")
					b, _ := applyBodyMutation(bm, nil)
					replaced = &b
				}
				x.enc.body = extprocv3.ProcessingMode_NONE
			}
		}
	} else if !x.complete.Load() && x.enc.removesContentLength() {
		h.del("content-length")
	}

	switch {
	case replaced != nil:
		if x.writeHeaders(h) {
			x.writeBody(*replaced)
		}
	case !hasBody || x.complete.Load() || x.enc.body == extprocv3.ProcessingMode_NONE:
		if x.writeHeaders(h) {
			x.copyBody(resp.Body, resetFlags)
		}
	case x.enc.body == extprocv3.ProcessingMode_STREAMED:
		if x.writeHeaders(h) {
			x.streamBody(resp.Body, encoding, x.writeBody, resetFlags)
		}
	default:
		data, complete, err := readUpTo(resp.Body, defaultBufferLimit)
		if err != nil {
			x.rec.ResponseFlags = resetFlags()
			x.reset()
		}
		if !complete && x.enc.body == extprocv3.ProcessingMode_BUFFERED {
			x.complete.Store(true)
			x.closeStream()
			x.localReply(http.StatusInternalServerError, []byte("Internal Server Error"), nil, "response_payload_too_large")
			return
		}
		data, ok := x.bufferedBody(encoding, data, complete, &h)
		if !ok || !x.writeHeaders(h) || !x.writeBody(data) {
			return
		}
		if !complete {
			x.copyBody(resp.Body, resetFlags)
		}
	}
}

// writeHeaders sends the response headers downstream.
func (x *exchange) writeHeaders(h headerMap) bool {
	st, _ := h.get(":status")
	code, err := strconv.Atoi(st)
	if err != nil || code < 100 {
		code = http.StatusBadGateway
	}
	out := x.w.Header()
	for _, e := range h {
		if !strings.HasPrefix(e.key, ":") {
			out.Add(e.key, e.value)
		}
	}
	x.w.WriteHeader(code)
	x.started = true
	x.rec.ResponseCode = code
	if err := http.NewResponseController(x.w).Flush(); err != nil {
		x.downstreamGone()
		return false
	}
	return true
}

// writeBody writes and flushes one piece of the body.
func (x *exchange) writeBody(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if _, err := x.w.Write(b); err != nil {
		x.downstreamGone()
		return false
	}
	if err := http.NewResponseController(x.w).Flush(); err != nil {
		x.downstreamGone()
		return false
	}
	return true
}

// copyBody passes the body through unprocessed, flushing every read.
func (x *exchange) copyBody(src io.Reader, resetFlags func() string) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !x.writeBody(buf[:n]) {
			return
		}
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			x.upstreamBroke(resetFlags)
			return
		}
	}
}

// upstreamBroke handles a body that ended in an error mid-way: Envoy resets
// the downstream stream and closes the ext_proc stream without sending an
// end_of_stream.
func (x *exchange) upstreamBroke(resetFlags func() string) {
	if x.r.Context().Err() != nil {
		x.downstreamGone()
		return
	}
	x.rec.ResponseFlags = resetFlags()
	x.complete.Store(true)
	x.closeStream()
	x.reset()
}

// localReply is Envoy's sendLocalReply for ext_proc's own replies (immediate
// responses and errors); it bypasses ext_proc. Once response headers went
// downstream it can only reset the stream.
func (x *exchange) localReply(code int, body []byte, mut *extprocsvc.HeaderMutation, details string) flow {
	x.rec.ResponseCodeDetails = details
	x.ended = true
	if x.started {
		x.reset()
	}
	h := headerMap{{":status", strconv.Itoa(code)}}
	if len(body) > 0 {
		h.add("content-type", "text/plain")
		h.add("content-length", strconv.Itoa(len(body)))
	}
	// Envoy applies the filter's mutation rules here too and only logs a
	// mutation it refuses.
	if err := applyHeaderMutation(mut, &h, x.p.checker, mutateOptions{honorAppendAction: x.p.opts.HonorAppendAction}); err != nil {
		x.p.opts.Logger.Warn("envoyemu: immediate response mutation failed", "err", err)
	}
	if x.writeHeaders(h) {
		x.writeBody(body)
	}
	return flowEnd
}

// reset aborts the downstream stream, as Envoy resets an HTTP/2 stream or
// closes an HTTP/1 connection mid-response. http.ErrAbortHandler is the
// net/http way to do it; the deferred finish still runs.
func (x *exchange) reset() {
	x.ended = true
	x.rec.Reset = true
	x.complete.Store(true)
	x.closeStream()
	panic(http.ErrAbortHandler)
}

// chunk is one read of a streamed body on its way through ext_proc.
type chunk struct {
	data []byte
	eos  bool
	sent bool
	err  error
}

// streamBody is STREAMED mode: every read is sent at once as a body chunk
// (end_of_stream on the last, an empty one when the end comes alone) without
// waiting for earlier answers, as Envoy pipelines them; answers are matched
// to chunks in order and each body mutation replaces only its own chunk.
func (x *exchange) streamBody(src io.ReadCloser, dir direction, sink func([]byte) bool, resetFlags func() string) bool {
	if x.open() == flowEnd {
		return false
	}
	want := wantResponseBody
	if dir == decoding {
		want = wantRequestBody
	}
	queue := make(chan chunk, 64)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		x.produce(src, dir, queue, done)
	}()
	// The producer touches the exchange; it must be gone before the request
	// ends, even by a reset. Closing src ends a read it may be blocked in.
	defer func() {
		close(done)
		_ = src.Close()
		<-exited
	}()
	for c := range queue {
		if c.err != nil {
			if dir == decoding {
				x.downstreamGone()
			} else {
				x.upstreamBroke(resetFlags)
			}
			return false
		}
		data := c.data
		if c.sent && !x.complete.Load() {
			resp, f := x.await(want)
			if f == flowEnd {
				return false
			}
			if f == flowAnswer {
				cr := resp.GetRequestBody().GetResponse()
				if dir == encoding {
					cr = resp.GetResponseBody().GetResponse()
				}
				// Header mutations are ignored: the headers are gone.
				if bm := cr.GetBodyMutation(); bm != nil {
					out, ok := applyBodyMutation(bm, data)
					if !ok {
						if x.spurious("spurious message: streamed_response is received while body_mode_ is not FULL_DUPLEX_STREAMED") == flowEnd {
							return false
						}
					} else {
						data = out
					}
				}
			}
		}
		if !sink(data) {
			return false
		}
		if c.eos {
			return true
		}
	}
	return false
}

// produce reads src and sends each read to ext_proc while processing lasts.
func (x *exchange) produce(src io.Reader, dir direction, queue chan<- chunk, done <-chan struct{}) {
	defer close(queue)
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		eos := errors.Is(err, io.EOF)
		if err != nil && !eos {
			select {
			case queue <- chunk{err: err}:
			case <-done:
			}
			return
		}
		if n == 0 && !eos {
			continue
		}
		c := chunk{data: bytes.Clone(buf[:n]), eos: eos}
		if !x.complete.Load() {
			body := &extprocsvc.HttpBody{Body: c.data, EndOfStream: eos}
			req := &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_ResponseBody{ResponseBody: body}}
			if dir == decoding {
				req = &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestBody{RequestBody: body}}
			}
			x.decorate(req, dir)
			x.rec.MessagesSent++
			// A failed Send surfaces as the stream's error when the answer
			// is awaited.
			_ = x.stream.send(req, x.timeout)
			c.sent = true
		}
		select {
		case queue <- c:
		case <-done:
			return
		}
		if eos {
			return
		}
	}
}
