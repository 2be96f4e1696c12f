package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// HoldOptions describe a hold: many streams open at once, each paused in
// the middle of its response, to weigh what an in-flight stream costs the
// server in memory.
type HoldOptions struct {
	Shape Shape
	// Streams is the number of streams held open at once.
	Streams int
	// PauseAfter is the number of response chunks each stream sends (and
	// has answered) before it pauses.
	PauseAfter int
	// Parallel bounds how many streams are being opened or finished at
	// the same moment.
	Parallel int
	// Conns is the number of HTTP/2 connections the streams share.
	Conns int
	// Pipeline sends the chunks after the pause without waiting for each
	// answer.
	Pipeline bool
	// Settle is how long to wait before each RSS reading, so the server's
	// reading reflects a steady state.
	Settle time.Duration
	// Timeout bounds opening all the streams, and then finishing them.
	Timeout time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// Validate names every option that is out of range.
func (o HoldOptions) Validate() error {
	var errs []error
	if err := o.Shape.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Streams < 1 {
		errs = append(errs, errors.New("-streams must be >= 1"))
	}
	if o.PauseAfter < 0 || o.PauseAfter >= o.Shape.Chunks {
		errs = append(errs, fmt.Errorf("-pause-after must be in [0, %d)", o.Shape.Chunks))
	}
	if o.Parallel < 1 {
		errs = append(errs, errors.New("-parallel must be >= 1"))
	}
	if o.Conns < 1 {
		errs = append(errs, errors.New("-conns must be >= 1"))
	}
	if o.Timeout <= 0 {
		errs = append(errs, errors.New("-timeout must be > 0"))
	}
	return errors.Join(errs...)
}

// HoldResult is what holding the streams cost one target.
type HoldResult struct {
	Target Target
	// Streams were attempted; Held reached the pause; Finished ran to the
	// end cleanly afterwards.
	Streams, Held, Finished int
	// Errors are the streams that failed, by kind.
	Errors     uint64
	ErrorKinds map[string]uint64
	// RSSIdle is the server's RSS after a warm-up, with no stream open;
	// RSSHeld with the streams held; RSSAfter once they all finished.
	RSSIdle, RSSHeld, RSSAfter int64
	HaveRSS                    bool
	// OpenTime is how long opening every stream took; FinishTime how long
	// finishing them did.
	OpenTime, FinishTime time.Duration
}

// PerStream is the server's RSS growth per held stream.
func (r *HoldResult) PerStream() float64 {
	if r.Held == 0 {
		return 0
	}
	return float64(r.RSSHeld-r.RSSIdle) / float64(r.Held)
}

// Hold opens o.Streams streams against t, pauses each after its response
// headers and o.PauseAfter chunks, reads the server's RSS, then lets every
// stream finish cleanly.
func Hold(ctx context.Context, t Target, o HoldOptions) (*HoldResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	clients, closeAll, err := dial(t.Addr, o.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	d := newDriver(compile(o.Shape), o.Pipeline)
	res := &HoldResult{Target: t, Streams: o.Streams, ErrorKinds: map[string]uint64{}}

	// Warm the server up, so that its idle RSS includes what any request
	// brings in once (pools, tables, connections).
	logf(o.Log, "%s: warming up", t.Name)
	warm := LoadOptions{Shape: o.Shape, Concurrency: min(8, o.Streams), Duration: time.Second, Conns: o.Conns, RequestTimeout: o.Timeout}
	for _, tl := range runWorkers(ctx, d, clients, warm, warm.Duration) {
		if len(tl.errors) > 0 {
			return nil, fmt.Errorf("%s: the warm-up failed: %v", t.Name, tl.errors)
		}
	}
	res.RSSIdle, res.HaveRSS = settledRSS(ctx, t.PID, o.Settle)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		held     atomic.Int64
		finished atomic.Int64
		opened   sync.WaitGroup
		ended    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		res.ErrorKinds[errorKind(err)]++
		res.Errors++
		mu.Unlock()
	}
	sem := make(chan struct{}, o.Parallel)
	release := make(chan struct{})
	logf(o.Log, "%s: opening %d streams", t.Name, o.Streams)
	start := time.Now()
	for i := range o.Streams {
		client := clients[i%len(clients)]
		opened.Add(1)
		ended.Add(1)
		go func() {
			defer ended.Done()
			c, err := holdOpen(ctx, d, client, o.PauseAfter, sem)
			if err != nil {
				fail(err)
				opened.Done()
				return
			}
			held.Add(1)
			opened.Done()
			select {
			case <-release:
			case <-ctx.Done():
				c.abort()
				fail(fmt.Errorf("held stream cancelled: %w", ctx.Err()))
				return
			}
			sem <- struct{}{}
			err = c.chunks(len(d.msgs.chunks))
			if err == nil {
				err = c.finish()
			} else {
				c.abort()
			}
			<-sem
			if err != nil {
				fail(err)
				return
			}
			finished.Add(1)
		}()
	}
	// A server that stops answering must not hang the hold: past the
	// timeout every stream is cancelled, and counted as failed.
	wait(&opened, o.Timeout, cancel)
	res.OpenTime = time.Since(start)
	res.Held = int(held.Load())
	logf(o.Log, "%s: %d streams held (%d failed) after %s", t.Name, res.Held, res.Errors, res.OpenTime.Round(time.Millisecond))
	if rss, ok := settledRSS(ctx, t.PID, o.Settle); ok {
		res.RSSHeld = rss
	}

	logf(o.Log, "%s: finishing the streams", t.Name)
	start = time.Now()
	close(release)
	wait(&ended, o.Timeout, cancel)
	res.FinishTime = time.Since(start)
	res.Finished = int(finished.Load())
	if rss, ok := settledRSS(ctx, t.PID, o.Settle); ok {
		res.RSSAfter = rss
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// wait waits for wg; past timeout it calls cancel and waits on.
func wait(wg *sync.WaitGroup, timeout time.Duration, cancel func()) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancel()
		<-done
	}
}

// holdOpen opens a stream and runs it to its pause.
func holdOpen(ctx context.Context, d *driver, client extprocv3.ExternalProcessorClient, pauseAfter int, sem chan struct{}) (*call, error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("not opened: %w", ctx.Err())
	}
	defer func() { <-sem }()
	c, err := d.open(ctx, client, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := c.chunks(pauseAfter); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

// settledRSS waits for settle, then returns the largest of five RSS
// readings 100 ms apart: the server's garbage collector runs on its own
// schedule, and the largest reading is what the machine must provide.
func settledRSS(ctx context.Context, pid int, settle time.Duration) (int64, bool) {
	if pid <= 0 {
		return 0, false
	}
	sleep(ctx, settle)
	var peak int64
	ok := false
	for i := range 5 {
		if i > 0 {
			sleep(ctx, 100*time.Millisecond)
		}
		if v, err := rss(pid); err == nil {
			peak, ok = max(peak, v), true
		}
	}
	return peak, ok
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
