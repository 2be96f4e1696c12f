package envoyemu

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// sideStream is the one ext_proc gRPC stream of a downstream request.
type sideStream struct {
	client extprocsvc.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
	recv   chan recvResult
	timer  *msgTimer

	sendMu sync.Mutex
	closed bool
}

type recvResult struct {
	resp *extprocsvc.ProcessingResponse
	err  error
}

// openStream starts the stream. Its context is not the downstream request's:
// Envoy ends the stream itself (half-close, then reset) rather than having it
// torn down from under it, and so does close.
func openStream(conn *grpc.ClientConn) (*sideStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	client, err := extprocsvc.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &sideStream{client: client, cancel: cancel, recv: make(chan recvResult), timer: newMsgTimer()}
	go func() {
		for {
			resp, err := client.Recv()
			select {
			case s.recv <- recvResult{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return s, nil
}

// send writes one message and (re)starts the message timer, as Envoy does
// for every message that expects an answer.
func (s *sideStream) send(req *extprocsvc.ProcessingRequest, timeout time.Duration) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.closed {
		return io.EOF
	}
	s.timer.arm(timeout)
	return s.client.Send(req)
}

// close ends the stream as Envoy's ExternalProcessorStreamImpl::close does:
// half-close, then reset. The server sees io.EOF or a cancelled context, and
// no end_of_stream it was not sent.
func (s *sideStream) close() {
	// A Send blocked on flow control holds sendMu; then skip the half-close
	// and only reset, which unblocks it.
	if s.sendMu.TryLock() {
		if !s.closed {
			_ = s.client.CloseSend()
		}
		s.closed = true
		s.sendMu.Unlock()
	}
	s.timer.stop()
	s.cancel()
}

type outcomeKind int

const (
	gotResponse    outcomeKind = iota
	streamClosed               // the server ended the stream with OK
	streamFailed               // the stream failed with a gRPC error
	timedOut                   // message_timeout expired
	downstreamGone             // the client went away
)

type outcome struct {
	kind outcomeKind
	resp *extprocsvc.ProcessingResponse
	err  error
}

// await waits for the next answer. Answers that only extend the timer
// (override_message_timeout) are applied and skipped, as Envoy does: it then
// ignores the rest of such a message.
func (s *sideStream) await(done <-chan struct{}, maxOverride time.Duration) outcome {
	for {
		expired, changed := s.timer.channels()
		select {
		case r := <-s.recv:
			if r.err != nil {
				s.timer.stop()
				if errors.Is(r.err, io.EOF) {
					return outcome{kind: streamClosed}
				}
				return outcome{kind: streamFailed, err: r.err}
			}
			if d := r.resp.GetOverrideMessageTimeout(); d != nil {
				if v := d.AsDuration(); maxOverride >= time.Millisecond && v >= time.Millisecond && v <= maxOverride {
					s.timer.extend(v)
				}
				continue
			}
			s.timer.stop()
			return outcome{kind: gotResponse, resp: r.resp}
		case <-expired:
			return outcome{kind: timedOut}
		case <-changed:
		case <-done:
			return outcome{kind: downstreamGone}
		}
	}
}

// grpcCode returns the gRPC status code of a stream failure.
func grpcCode(err error) uint32 { return uint32(status.Code(err)) }

// msgTimer is Envoy's per-message timer: started by each message sent,
// stopped by each answer, so with several chunks in flight it measures from
// the latest send, and after an answer it is idle until the next send.
type msgTimer struct {
	mu       sync.Mutex
	t        *time.Timer
	expired  chan struct{}
	changed  chan struct{}
	extended bool
}

func newMsgTimer() *msgTimer { return &msgTimer{changed: make(chan struct{}, 1)} }

func (m *msgTimer) arm(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.startLocked(d)
	m.extended = false
}

func (m *msgTimer) startLocked(d time.Duration) {
	if m.t != nil {
		m.t.Stop()
	}
	ch := make(chan struct{})
	m.expired = ch
	m.t = time.AfterFunc(d, func() { close(ch) })
	m.notify()
}

// extend restarts a running timer with d, once per message, as
// override_message_timeout does; it reports whether it did.
func (m *msgTimer) extend(d time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.expired == nil || m.extended {
		return false
	}
	m.startLocked(d)
	m.extended = true
	return true
}

func (m *msgTimer) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.t != nil {
		m.t.Stop()
	}
	m.t, m.expired = nil, nil
	m.notify()
}

// channels returns the channel closed when the running timer expires (nil
// when none runs) and one signalled when the timer changes.
func (m *msgTimer) channels() (expired, changed <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.expired, m.changed
}

func (m *msgTimer) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}
