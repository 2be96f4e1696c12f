package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// driver plays Envoy's side of ext_proc streams of one shape.
type driver struct {
	msgs *messages
	// pipeline sends the response chunks without waiting for each answer,
	// as Envoy does in STREAMED mode; answers still come back in order.
	pipeline bool
	// base is the origin of the send times a pipelined call shares
	// between its sending and receiving goroutines.
	base time.Time
}

func newDriver(m *messages, pipeline bool) *driver {
	return &driver{msgs: m, pipeline: pipeline, base: time.Now()}
}

// requestIDs numbers the requests of the whole run for their x-request-id,
// unique across targets and rounds.
var requestIDs atomic.Uint64

// call is one request's ext_proc stream.
type call struct {
	d      *driver
	s      extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
	// lat, when not nil, receives the latency of every message: from
	// sending it to receiving its answer.
	lat *hist
	// next is the index of the next response chunk to send.
	next int
	// sentAt is scratch for the pipelined sender, reused across calls.
	sentAt []atomic.Int64
}

// immediateError is an ImmediateResponse where a CONTINUE was expected: the
// server refused the request (401, 403, 429, 503 …).
type immediateError struct{ status int32 }

func (e immediateError) Error() string {
	return fmt.Sprintf("immediate response %d", e.status)
}

// errBadAnswer is an answer of the wrong kind for the message sent, which
// Envoy treats as a protocol error and fails the request for.
var errBadAnswer = errors.New("answer of the wrong kind")

// open starts a call: request headers, the buffered request body and the
// response headers, each waiting for its answer as Envoy does.
func (d *driver) open(ctx context.Context, client extprocv3.ExternalProcessorClient, lat *hist, scratch []atomic.Int64) (*call, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := client.Process(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cannot open the stream: %w", err)
	}
	c := &call{d: d, s: s, cancel: cancel, lat: lat, sentAt: scratch}
	for _, req := range []*extprocv3.ProcessingRequest{d.msgs.requestHeaders(requestIDs.Add(1)), d.msgs.body, d.msgs.headers} {
		if err := c.roundTrip(req); err != nil {
			cancel()
			return nil, err
		}
	}
	return c, nil
}

func (c *call) roundTrip(req *extprocv3.ProcessingRequest) error {
	t0 := time.Now()
	if err := c.s.Send(req); err != nil {
		return c.sendError(err)
	}
	resp, err := c.s.Recv()
	if err != nil {
		return fmt.Errorf("cannot receive: %w", err)
	}
	if c.lat != nil {
		c.lat.add(time.Since(t0))
	}
	return check(req, resp)
}

// sendError explains a failed Send: gRPC reports only io.EOF there and
// keeps the stream's real status for Recv.
func (c *call) sendError(err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := c.s.Recv(); rerr != nil {
			return fmt.Errorf("cannot send: %w", rerr)
		}
	}
	return fmt.Errorf("cannot send: %w", err)
}

// chunks sends the next n response chunks.
func (c *call) chunks(n int) error {
	n = min(n, len(c.d.msgs.chunks)-c.next)
	if n <= 0 {
		return nil
	}
	if !c.d.pipeline {
		for range n {
			if err := c.roundTrip(c.d.msgs.chunks[c.next]); err != nil {
				return err
			}
			c.next++
		}
		return nil
	}
	first := c.next
	if c.lat != nil && len(c.sentAt) < n {
		c.sentAt = make([]atomic.Int64, len(c.d.msgs.chunks))
	}
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if c.lat != nil {
				c.sentAt[i].Store(int64(time.Since(c.d.base)))
			}
			if err := c.s.Send(c.d.msgs.chunks[first+i]); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range n {
		resp, err := c.s.Recv()
		if err == nil {
			if c.lat != nil {
				c.lat.add(time.Since(c.d.base) - time.Duration(c.sentAt[i].Load()))
			}
			err = check(c.d.msgs.chunks[first+i], resp)
		} else {
			err = fmt.Errorf("cannot receive: %w", err)
		}
		if err != nil {
			c.cancel() // unblocks a sender held by flow control
			<-sent
			return err
		}
	}
	c.next += n
	if err := <-sent; err != nil {
		return fmt.Errorf("cannot send: %w", err)
	}
	return nil
}

// finish half-closes the stream, as Envoy does after the last answer, and
// waits for the server to end it: by then a metering server has settled
// the request, so its work is inside the measured time.
func (c *call) finish() error {
	defer c.cancel()
	if err := c.s.CloseSend(); err != nil {
		return fmt.Errorf("cannot close the stream: %w", err)
	}
	resp, err := c.s.Recv()
	if err == nil {
		return fmt.Errorf("%w: a message after the last answer: %v", errBadAnswer, resp)
	}
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("stream ended with %w", err)
	}
	return nil
}

// abort cancels the stream, as Envoy does when the client goes away.
func (c *call) abort() { c.cancel() }

// check verifies that resp is the answer Envoy expects to req.
func check(req *extprocv3.ProcessingRequest, resp *extprocv3.ProcessingResponse) error {
	if ir := resp.GetImmediateResponse(); ir != nil {
		return immediateError{status: int32(ir.GetStatus().GetCode())}
	}
	var ok bool
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		ok = resp.GetRequestHeaders() != nil
	case *extprocv3.ProcessingRequest_RequestBody:
		ok = resp.GetRequestBody() != nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		ok = resp.GetResponseHeaders() != nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		ok = resp.GetResponseBody() != nil
	}
	if !ok {
		return fmt.Errorf("%w: %T answered with %T", errBadAnswer, req.Request, resp.Response)
	}
	return nil
}

// request runs one whole request and returns its latency: from opening
// the stream to the answer to the last chunk.
func (d *driver) request(ctx context.Context, client extprocv3.ExternalProcessorClient, lat *hist, scratch []atomic.Int64) (time.Duration, error) {
	t0 := time.Now()
	c, err := d.open(ctx, client, lat, scratch)
	if err != nil {
		return 0, err
	}
	if err := c.chunks(len(d.msgs.chunks)); err != nil {
		c.abort()
		return 0, err
	}
	took := time.Since(t0)
	return took, c.finish()
}
