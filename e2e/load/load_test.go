package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"

	"github.com/tollgate-ai/tollgate/e2e/load/floor"
	"github.com/tollgate-ai/tollgate/internal/app"
	"github.com/tollgate-ai/tollgate/internal/redistest"
)

// serve runs an ext_proc server on a loopback port for the test.
func serve(t *testing.T, srv extprocv3.ExternalProcessorServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(g, srv)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// counting wraps the floor and records how many streams were open at once.
type counting struct {
	floor.Server
	mu       sync.Mutex
	open     int
	maxOpen  int
	messages int
}

func (c *counting) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	c.mu.Lock()
	c.open++
	c.maxOpen = max(c.maxOpen, c.open)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.open--
		c.mu.Unlock()
	}()
	for {
		req, err := srv.Recv()
		if err != nil {
			return nil
		}
		c.mu.Lock()
		c.messages++
		c.mu.Unlock()
		if err := srv.Send(floor.Answer(req)); err != nil {
			return err
		}
	}
}

func tinyLoad(pipeline bool) LoadOptions {
	return LoadOptions{
		Shape:       Shape{Key: "sk-test", MessageBytes: 256, Chunks: 6, IncludeUsage: true},
		Concurrency: 3, Duration: 300 * time.Millisecond, Conns: 2, Pipeline: pipeline,
		RequestTimeout: 10 * time.Second,
	}
}

func TestLoadAgainstTheFloorCountsEveryMessage(t *testing.T) {
	for _, pipeline := range []bool{true, false} {
		t.Run("pipeline="+strconv.FormatBool(pipeline), func(t *testing.T) {
			srv := &counting{}
			addr := serve(t, srv)
			// The floor runs in this process, so this process's CPU and RSS
			// stand for the server's.
			res, err := Load(context.Background(), Target{Name: floorName, Addr: addr, PID: os.Getpid()}, tinyLoad(pipeline))
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 {
				t.Fatalf("errors against the floor: %v", res.ErrorKinds)
			}
			if res.Requests == 0 {
				t.Fatal("no request completed in 300 ms")
			}
			perReq := uint64(3 + 6)
			if res.Messages != res.Requests*perReq {
				t.Errorf("messages = %d for %d requests of %d", res.Messages, res.Requests, perReq)
			}
			srv.mu.Lock()
			seen := srv.messages
			srv.mu.Unlock()
			if uint64(seen) != res.Messages {
				t.Errorf("the server saw %d messages, the tool counted %d", seen, res.Messages)
			}
			if res.ReqLat.n != res.Requests || res.MsgLat.n != res.Messages {
				t.Errorf("latency samples: %d requests, %d messages; want %d, %d", res.ReqLat.n, res.MsgLat.n, res.Requests, res.Messages)
			}
			if p50, p99 := res.MsgLat.quantile(0.5), res.MsgLat.quantile(0.99); p50 <= 0 || p99 < p50 || res.ReqLat.quantile(0.5) < p50 {
				t.Errorf("latencies out of order: msg p50 %s p99 %s, req p50 %s", p50, p99, res.ReqLat.quantile(0.5))
			}
			if !res.HaveCPU || res.ServerCPU <= 0 {
				t.Errorf("server CPU not measured: %v %s", res.HaveCPU, res.ServerCPU)
			}
			if res.RSSPeak < 1<<20 || res.RSSEnd < 1<<20 || res.RSSEnd > res.RSSPeak {
				t.Errorf("RSS peak %d end %d", res.RSSPeak, res.RSSEnd)
			}
		})
	}
}

// refusing answers request headers with an immediate response.
type refusing struct {
	extprocv3.UnimplementedExternalProcessorServer
	status    typev3.StatusCode
	wrongKind bool
}

func (r *refusing) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	if _, err := srv.Recv(); err != nil {
		return nil
	}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: r.status}}}}
	if r.wrongKind {
		resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	}
	return srv.Send(resp)
}

func TestLoadCountsRefusalsAsErrors(t *testing.T) {
	tests := []struct {
		name string
		srv  *refusing
		kind string
	}{
		{"429", &refusing{status: typev3.StatusCode_TooManyRequests}, "immediate response 429"},
		{"answer of the wrong kind", &refusing{wrongKind: true}, errBadAnswer.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, tt.srv)
			res, err := Load(context.Background(), Target{Name: "x", Addr: addr}, tinyLoad(true))
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 0 || res.Errors == 0 {
				t.Fatalf("requests %d errors %d: a refused request must count as an error, not a request", res.Requests, res.Errors)
			}
			for k := range res.ErrorKinds {
				if !strings.Contains(k, tt.kind) {
					t.Errorf("error kind %q, want %q", k, tt.kind)
				}
			}
			if res.HaveCPU {
				t.Error("CPU reported for a target without a pid")
			}
		})
	}
}

// batching answers the response chunks only once it has received all of
// them: a client that waits for each answer never gets one, a pipelining
// client (Envoy) gets them all.
type batching struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (*batching) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	var held []*extprocv3.ProcessingRequest
	for {
		req, err := srv.Recv()
		if err != nil {
			return nil
		}
		if req.GetResponseBody() == nil {
			if err := srv.Send(floor.Answer(req)); err != nil {
				return err
			}
			continue
		}
		held = append(held, req)
		if !req.GetResponseBody().GetEndOfStream() {
			continue
		}
		for _, h := range held {
			if err := srv.Send(floor.Answer(h)); err != nil {
				return err
			}
		}
		held = held[:0]
	}
}

func TestPipelineSendsChunksWithoutWaiting(t *testing.T) {
	addr := serve(t, &batching{})
	o := tinyLoad(true)
	res, err := Load(context.Background(), Target{Name: "x", Addr: addr}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests == 0 {
		t.Fatalf("pipelined: %d requests, errors %v", res.Requests, res.ErrorKinds)
	}
	o = tinyLoad(false)
	o.Concurrency, o.Duration, o.RequestTimeout = 1, 50*time.Millisecond, 200*time.Millisecond
	res, err = Load(context.Background(), Target{Name: "x", Addr: addr}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 {
		t.Fatalf("one at a time: %d requests, %d errors; want every request to time out", res.Requests, res.Errors)
	}
}

func TestHoldKeepsEveryStreamOpenAtOnce(t *testing.T) {
	srv := &counting{}
	addr := serve(t, srv)
	o := HoldOptions{
		Shape:   Shape{Key: "sk-test", MessageBytes: 128, Chunks: 6},
		Streams: 200, PauseAfter: 2, Parallel: 16, Conns: 2, Pipeline: true,
		Settle: 10 * time.Millisecond, Timeout: time.Minute,
	}
	res, err := Hold(context.Background(), Target{Name: floorName, Addr: addr, PID: os.Getpid()}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Held != 200 || res.Finished != 200 {
		t.Fatalf("held %d finished %d errors %v", res.Held, res.Finished, res.ErrorKinds)
	}
	srv.mu.Lock()
	maxOpen, open := srv.maxOpen, srv.open
	srv.mu.Unlock()
	if maxOpen < 200 {
		t.Errorf("at most %d streams were open at once, want all 200", maxOpen)
	}
	if open != 0 {
		t.Errorf("%d streams still open after the hold", open)
	}
	if !res.HaveRSS || res.RSSIdle <= 0 || res.RSSHeld <= 0 || res.RSSAfter <= 0 {
		t.Errorf("RSS not read: %+v", res)
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		bad  bool
	}{
		{in: "ai-gateway=127.0.0.1:1063", want: Target{Name: "ai-gateway", Addr: "127.0.0.1:1063"}},
		{in: "t=[::1]:50051,pid=42", want: Target{Name: "t", Addr: "[::1]:50051", PID: 42}},
		{in: "127.0.0.1:1063", bad: true},
		{in: "t=localhost", bad: true},
		{in: "t=127.0.0.1:1,pid=x", bad: true},
		{in: "t=127.0.0.1:1,cpu=1", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTarget(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("accepted %q as %+v", tt.in, got)
				}
				return
			}
			if err != nil || got.Name != tt.want.Name || got.Addr != tt.want.Addr || got.PID != tt.want.PID {
				t.Fatalf("parseTarget = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestBenchCommandPrintsTheTable runs the command as make does, against
// targets given by address, and reads the table it prints.
func TestBenchCommandPrintsTheTable(t *testing.T) {
	a, b := serve(t, &floor.Server{}), serve(t, &floor.Server{})
	pid := strconv.Itoa(os.Getpid())
	var out, log bytes.Buffer
	err := run(context.Background(), []string{"bench", "-start", "",
		"-target", "floor=" + a + ",pid=" + pid, "-target", "other=" + b + ",pid=" + pid,
		"-d", "200ms", "-warmup", "50ms", "-c", "2", "-chunks", "4", "-msg", "100", "-rounds", "2"}, &out, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	table := out.String()
	for _, want := range []string{"| target |", "| floor |", "| other |", "each request is 7 ext_proc messages", "2 concurrent streams", "400ms (2 rounds of 200ms, targets taking turns) measured"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| floor |") && !strings.Contains(line, "| 1.00 |") {
			t.Errorf("the floor's own ratio is not 1.00: %s", line)
		}
	}
	if err := run(context.Background(), []string{"bench", "-start", ""}, io.Discard, io.Discard); err == nil {
		t.Error("a bench with nothing to load must fail")
	}
}

func TestTollgateConfigIsValid(t *testing.T) {
	c, err := app.ParseConfig(bytes.NewReader(tollgateConfig("127.0.0.1:6379", defaultKey)), func(string) string { return "" })
	if err != nil {
		t.Fatalf("the config the tool writes is invalid: %v", err)
	}
	if c.Store.Type != "redis" || len(c.Limits.TokenRules) != 1 || len(c.Limits.RequestRules) != 1 || c.Quota.Default == nil {
		t.Fatalf("the config is not the standard shape (redis, a token window, a request window, a quota): %+v", c)
	}
}

// TestTollgateAdmitsTheShape loads tollgate itself, in-process, with the
// config the tool writes on a real Redis: every request of the standard
// shape must be admitted and answered.
func TestTollgateAdmitsTheShape(t *testing.T) {
	rds := redistest.Start(t)
	path := filepath.Join(t.TempDir(), "tollgate.yaml")
	if err := os.WriteFile(path, tollgateConfig(rds.Addr(), defaultKey), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"serve", "--config", path, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"},
			app.Env{Stdout: io.Discard, Stderr: io.Discard, Hooks: app.Hooks{Listening: func(g, _ string) { addrc <- g }}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("tollgate: %v", err)
		}
	})
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("tollgate did not start: %v", err)
	}
	o := tinyLoad(true)
	o.Shape = Shape{Key: defaultKey, MessageBytes: 2048, Chunks: 20, IncludeUsage: false}
	res, err := Load(context.Background(), Target{Name: "tollgate", Addr: addr}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests == 0 {
		t.Fatalf("tollgate: %d requests, errors %v", res.Requests, res.ErrorKinds)
	}
	o.Shape.Key = "sk-not-a-consumer"
	o.Duration = 50 * time.Millisecond
	res, err = Load(context.Background(), Target{Name: "tollgate", Addr: addr}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.ErrorKinds["immediate response 401"] == 0 {
		t.Fatalf("an unknown key: %d requests, errors %v; want 401s", res.Requests, res.ErrorKinds)
	}
}
