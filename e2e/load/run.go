package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Target is an ext_proc server under load.
type Target struct {
	// Name labels the target in the report; "floor" is the yardstick.
	Name string
	// Addr is its gRPC address (host:port on loopback).
	Addr string
	// PID is its process, for CPU time and RSS; 0 when unknown, and then
	// those columns stay empty.
	PID int
	// Aux are processes working for the target, such as its redis-server,
	// whose CPU time is reported beside the server's.
	Aux []Proc
}

// Proc is a named process.
type Proc struct {
	Name string
	PID  int
}

// LoadOptions are the load applied to each target.
type LoadOptions struct {
	Shape Shape
	// Concurrency is the number of streams open at once, each running
	// requests back to back.
	Concurrency int
	// Duration is how long the measured part lasts; requests started
	// before its end run to completion.
	Duration time.Duration
	// Warmup is run before and not measured: connections, pools, caches.
	Warmup time.Duration
	// Pipeline sends the response chunks without waiting for each answer.
	Pipeline bool
	// Conns is the number of HTTP/2 connections the streams share, like
	// the worker threads of an Envoy each holding one.
	Conns int
	// RequestTimeout bounds one request; a server that stops answering
	// makes errors, not a hung run.
	RequestTimeout time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// Validate names every option that is out of range.
func (o LoadOptions) Validate() error {
	var errs []error
	if err := o.Shape.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Concurrency < 1 {
		errs = append(errs, errors.New("-c must be >= 1"))
	}
	if o.Duration <= 0 {
		errs = append(errs, errors.New("-d must be > 0"))
	}
	if o.Warmup < 0 {
		errs = append(errs, errors.New("-warmup must be >= 0"))
	}
	if o.Conns < 1 {
		errs = append(errs, errors.New("-conns must be >= 1"))
	}
	return errors.Join(errs...)
}

// Result is what one target did under load.
type Result struct {
	Target Target
	// Requests completed without error, and their messages.
	Requests, Messages uint64
	// Errors is the number of requests that failed, by kind in ErrorKinds.
	Errors     uint64
	ErrorKinds map[string]uint64
	// Elapsed is the wall time of the measured part.
	Elapsed time.Duration
	// ReqLat is per request (stream open to last answer); MsgLat per
	// message (sent to answered).
	ReqLat, MsgLat *hist
	// ServerCPU is the server's user+system CPU time over Elapsed;
	// HaveCPU says whether it could be read.
	ServerCPU time.Duration
	HaveCPU   bool
	// AuxCPU is the CPU time of each of the target's Aux processes.
	AuxCPU map[string]time.Duration
	// LoadCPU is the load tool's own CPU time over Elapsed.
	LoadCPU time.Duration
	// RSSPeak and RSSEnd are the server's resident set: the largest of the
	// samples taken every 100 ms, and the last.
	RSSPeak, RSSEnd int64
}

func (r *Result) merge(o *Result) {
	r.Requests += o.Requests
	r.Messages += o.Messages
	r.Errors += o.Errors
	for k, v := range o.ErrorKinds {
		r.ErrorKinds[k] += v
	}
	r.Elapsed += o.Elapsed
	r.ReqLat.merge(o.ReqLat)
	r.MsgLat.merge(o.MsgLat)
	r.ServerCPU += o.ServerCPU
	r.HaveCPU = r.HaveCPU && o.HaveCPU
	for k, v := range o.AuxCPU {
		r.AuxCPU[k] += v
	}
	r.LoadCPU += o.LoadCPU
	r.RSSPeak = max(r.RSSPeak, o.RSSPeak)
	r.RSSEnd = o.RSSEnd
}

// tally is one worker's counts, merged at the end.
type tally struct {
	requests, messages uint64
	reqLat, msgLat     hist
	errors             map[string]uint64
}

func (t *tally) fail(err error) {
	if t.errors == nil {
		t.errors = map[string]uint64{}
	}
	t.errors[errorKind(err)]++
}

// errorKind shortens an error to what tells failures apart.
func errorKind(err error) string {
	var ie immediateError
	if errors.As(err, &ie) {
		return ie.Error()
	}
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// dial opens n connections to addr with default grpc-go settings.
func dial(addr string, n int) ([]extprocv3.ExternalProcessorClient, func(), error) {
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	clients := make([]extprocv3.ExternalProcessorClient, 0, n)
	for range n {
		// Each ClientConn is its own HTTP/2 connection.
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("cannot dial %s: %w", addr, err)
		}
		conns = append(conns, cc)
		clients = append(clients, extprocv3.NewExternalProcessorClient(cc))
	}
	return clients, closeAll, nil
}

// Load runs the load against t: a warm-up, then the measured part.
func Load(ctx context.Context, t Target, o LoadOptions) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = time.Minute
	}
	clients, closeAll, err := dial(t.Addr, o.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	d := newDriver(compile(o.Shape), o.Pipeline)
	if o.Warmup > 0 {
		logf(o.Log, "%s: warming up for %s", t.Name, o.Warmup)
		for _, tl := range runWorkers(ctx, d, clients, o, o.Warmup) {
			if len(tl.errors) > 0 {
				logf(o.Log, "%s: warm-up errors: %v", t.Name, tl.errors)
				break
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}

	res := &Result{Target: t, ErrorKinds: map[string]uint64{}, AuxCPU: map[string]time.Duration{}, ReqLat: new(hist), MsgLat: new(hist)}
	var cpu0 time.Duration
	var cpuErr error
	if t.PID > 0 {
		if cpu0, cpuErr = cpuTime(t.PID); cpuErr != nil {
			logf(o.Log, "%s: no CPU time or RSS: %v", t.Name, cpuErr)
		}
	}
	aux0 := map[string]time.Duration{}
	for _, p := range t.Aux {
		if v, err := cpuTime(p.PID); err == nil {
			aux0[p.Name] = v
		}
	}
	self0, _ := cpuTime(os.Getpid())
	stopSampling := sampleRSS(t.PID, res)
	logf(o.Log, "%s: %d streams for %s", t.Name, o.Concurrency, o.Duration)
	start := time.Now()
	tallies := runWorkers(ctx, d, clients, o, o.Duration)
	res.Elapsed = time.Since(start)
	if t.PID > 0 && cpuErr == nil {
		cpu1, err := cpuTime(t.PID)
		if err == nil {
			res.ServerCPU, res.HaveCPU = cpu1-cpu0, true
		}
	}
	for _, p := range t.Aux {
		if v, err := cpuTime(p.PID); err == nil {
			res.AuxCPU[p.Name] = v - aux0[p.Name]
		}
	}
	self1, _ := cpuTime(os.Getpid())
	res.LoadCPU = self1 - self0
	stopSampling()
	for _, tl := range tallies {
		res.Requests += tl.requests
		res.Messages += tl.messages
		res.ReqLat.merge(&tl.reqLat)
		res.MsgLat.merge(&tl.msgLat)
		for k, v := range tl.errors {
			res.ErrorKinds[k] += v
			res.Errors += v
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// runWorkers runs o.Concurrency workers, each sending requests back to back
// until d has passed.
func runWorkers(ctx context.Context, d *driver, clients []extprocv3.ExternalProcessorClient, o LoadOptions, dur time.Duration) []*tally {
	deadline := time.Now().Add(dur)
	tallies := make([]*tally, o.Concurrency)
	var wg sync.WaitGroup
	for i := range o.Concurrency {
		tl := &tally{}
		tallies[i] = tl
		client := clients[i%len(clients)]
		wg.Go(func() {
			scratch := make([]atomic.Int64, len(d.msgs.chunks))
			for time.Now().Before(deadline) && ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
				took, err := d.request(rctx, client, &tl.msgLat, scratch)
				cancel()
				if err != nil {
					tl.fail(err)
					// A server that refuses everything must not turn the
					// worker into a busy loop.
					time.Sleep(10 * time.Millisecond)
					continue
				}
				tl.requests++
				tl.messages += uint64(d.msgs.perRequest())
				tl.reqLat.add(took)
			}
		})
	}
	wg.Wait()
	return tallies
}

// sampleRSS records the peak and last RSS of pid into res until the
// returned func is called.
func sampleRSS(pid int, res *Result) (stop func()) {
	if pid <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := rss(pid); err == nil {
				res.RSSPeak = max(res.RSSPeak, v)
				res.RSSEnd = v
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		if v, err := rss(pid); err == nil {
			res.RSSPeak = max(res.RSSPeak, v)
			res.RSSEnd = v
		}
	}
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// sortedKinds lists error kinds, the most frequent first.
func sortedKinds(m map[string]uint64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	return ks
}
