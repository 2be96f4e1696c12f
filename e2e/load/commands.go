package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate-ai/tollgate/e2e/load/floor"
	"github.com/tollgate-ai/tollgate/internal/app"
)

// defaultKey is the API key of the consumer in the config the tool writes.
const defaultKey = "sk-load-bench-0123456789"

// targetList collects repeated -target name=addr[,pid=PID] flags.
type targetList []Target

func (l *targetList) String() string { return fmt.Sprint(len(*l), " targets") }

func (l *targetList) Set(v string) error {
	t, err := parseTarget(v)
	if err != nil {
		return err
	}
	*l = append(*l, t)
	return nil
}

// parseTarget reads name=addr[,pid=PID].
func parseTarget(v string) (Target, error) {
	parts := strings.Split(v, ",")
	name, addr, ok := strings.Cut(parts[0], "=")
	if !ok || name == "" || addr == "" {
		return Target{}, fmt.Errorf("-target %q: want name=host:port[,pid=PID]", v)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Target{}, fmt.Errorf("-target %q: address: %w", v, err)
	}
	t := Target{Name: name, Addr: addr}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
		switch k {
		case "pid":
			pid, err := strconv.Atoi(val)
			if err != nil || pid <= 0 {
				return Target{}, fmt.Errorf("-target %q: pid %q is not a process id", v, val)
			}
			t.PID = pid
		default:
			return Target{}, fmt.Errorf("-target %q: unknown option %q (only pid=)", v, k)
		}
	}
	return t, nil
}

// setup is how the servers under test come to be: started by the tool,
// given with -target, or both.
type setup struct {
	start       string
	targets     targetList
	tollgateBin string
	redisAddr   string
	redisBin    string
	cpuProfile  string
	key         string
	keep        bool
}

func (s *setup) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.start, "start", "tollgate,floor", "servers to start and load, comma-separated: tollgate, floor; empty for only -target")
	fs.Var(&s.targets, "target", "another server to load, `name=host:port[,pid=PID]` (repeatable; pid enables CPU and RSS)")
	fs.StringVar(&s.tollgateBin, "tollgate-bin", "", "tollgate binary to start (default: go build ./cmd/tollgate)")
	fs.StringVar(&s.redisAddr, "redis-addr", "", "Redis for tollgate's store (default: start redis-server on a free loopback port)")
	fs.StringVar(&s.redisBin, "redis-bin", "redis-server", "redis-server binary")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "run tollgate inside this tool with a CPU profile written to `FILE` (instead of the built binary)")
	fs.StringVar(&s.key, "key", defaultKey, "API key sent as Authorization: Bearer (the started tollgate's consumer has it)")
	fs.BoolVar(&s.keep, "keep", false, "keep the working directory (configs, server logs)")
}

// bring starts what s asks for and returns every target; stop ends what
// was started.
func (s *setup) bring(ctx context.Context, log io.Writer) (targets []Target, stop func(), err error) {
	dir, err := os.MkdirTemp("", "tollgate-load-")
	if err != nil {
		return nil, nil, fmt.Errorf("cannot create a working directory: %w", err)
	}
	cs := &children{dir: dir, log: log}
	stopAll := func() {
		cs.stopAll()
		if s.keep {
			logf(log, "logs and config kept in %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	for _, name := range strings.Split(s.start, ",") {
		switch strings.TrimSpace(name) {
		case "":
		case "tollgate":
			t, err := s.startTollgate(ctx, cs, log)
			if err != nil {
				return nil, nil, err
			}
			targets = append(targets, t)
		case floorName:
			self, err := os.Executable()
			if err != nil {
				return nil, nil, fmt.Errorf("cannot find this program to start the floor: %w", err)
			}
			c, addr, err := cs.startFloor(ctx, self)
			if err != nil {
				return nil, nil, err
			}
			logf(log, "floor: pid %d on %s", c.pid(), addr)
			targets = append(targets, Target{Name: floorName, Addr: addr, PID: c.pid()})
		default:
			return nil, nil, fmt.Errorf("-start: %q is not tollgate or floor", name)
		}
	}
	targets = append(targets, s.targets...)
	if len(targets) == 0 {
		return nil, nil, errors.New("nothing to load: -start is empty and no -target given")
	}
	return targets, stopAll, nil
}

func (s *setup) startTollgate(ctx context.Context, cs *children, log io.Writer) (Target, error) {
	t := Target{Name: "tollgate"}
	redisAddr := s.redisAddr
	if redisAddr == "" {
		bin, err := exec.LookPath(s.redisBin)
		if err != nil {
			return t, fmt.Errorf("redis-server not found (apt-get install -y redis-server, or pass -redis-addr): %w", err)
		}
		c, addr, err := cs.startRedis(ctx, bin)
		if err != nil {
			return t, err
		}
		logf(log, "redis-server: pid %d on %s", c.pid(), addr)
		redisAddr = addr
		t.Aux = append(t.Aux, Proc{Name: "redis-server", PID: c.pid()})
	}
	config := filepath.Join(cs.dir, "tollgate.yaml")
	if err := os.WriteFile(config, tollgateConfig(redisAddr, s.key), 0o600); err != nil {
		return t, fmt.Errorf("cannot write tollgate's config: %w", err)
	}
	var cmd []string
	switch {
	case s.cpuProfile != "":
		self, err := os.Executable()
		if err != nil {
			return t, fmt.Errorf("cannot find this program to run tollgate in: %w", err)
		}
		prof, err := filepath.Abs(s.cpuProfile)
		if err != nil {
			return t, fmt.Errorf("-cpuprofile: %w", err)
		}
		cmd = []string{self, "tollgate", "-cpuprofile", prof}
	case s.tollgateBin != "":
		cmd = []string{s.tollgateBin}
	default:
		logf(log, "building tollgate")
		bin, err := buildTollgate(ctx, cs.dir)
		if err != nil {
			return t, err
		}
		cmd = []string{bin}
	}
	c, addr, err := cs.startTollgate(ctx, cmd, config)
	if err != nil {
		return t, err
	}
	logf(log, "tollgate: pid %d on %s (log %s)", c.pid(), addr, c.logPath)
	t.Addr, t.PID = addr, c.pid()
	return t, nil
}

// shapeFlags registers the flags of the request shape.
func shapeFlags(fs *flag.FlagSet, s *Shape) {
	fs.IntVar(&s.MessageBytes, "msg", 2048, "bytes of the user message in the request body")
	fs.IntVar(&s.Chunks, "chunks", 200, "response body chunks (SSE events) per request, usage in the last")
	fs.BoolVar(&s.IncludeUsage, "include-usage", true, "the request sets stream_options.include_usage")
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s setup
	s.flags(fs)
	var o LoadOptions
	shapeFlags(fs, &o.Shape)
	fs.IntVar(&o.Concurrency, "c", 8, "concurrent streams")
	fs.DurationVar(&o.Duration, "d", 20*time.Second, "measured duration per target and round")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "unmeasured warm-up per target and round")
	fs.BoolVar(&o.Pipeline, "pipeline", true, "send response chunks without waiting for each answer, as Envoy does")
	fs.IntVar(&o.Conns, "conns", 2, "HTTP/2 connections the streams share")
	rounds := fs.Int("rounds", 1, "rounds; targets take turns in each, and their figures are summed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	o.Shape.Key = s.key
	o.Log = stderr
	if err := o.Validate(); err != nil {
		return err
	}
	if *rounds < 1 {
		return errors.New("-rounds must be >= 1")
	}
	targets, stop, err := s.bring(ctx, stderr)
	if err != nil {
		return err
	}
	defer stop()

	// Everything is bounded: a run can take no longer than its rounds
	// plus a generous margin for requests in flight.
	limit := time.Duration(*rounds*len(targets))*(o.Warmup+o.Duration+2*time.Minute) + time.Minute
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	loadBefore := loadAverage()
	results := make([]*Result, len(targets))
	for r := range *rounds {
		for i, t := range targets {
			if *rounds > 1 {
				logf(stderr, "round %d of %d", r+1, *rounds)
			}
			res, err := Load(ctx, t, o)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
			if results[i] == nil {
				results[i] = res
			} else {
				results[i].merge(res)
			}
		}
	}
	writeTable(stdout, o, *rounds, results)
	// The machine may be shared: how busy it was says how far to trust
	// the latencies (CPU time per request suffers much less from it).
	fmt.Fprintf(stdout, "\nMachine load average (1, 5, 15 min): %s before, %s after.\n", loadBefore, loadAverage())
	return nil
}

func hold(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s setup
	s.flags(fs)
	var o HoldOptions
	shapeFlags(fs, &o.Shape)
	fs.IntVar(&o.Streams, "streams", 10000, "streams held open at once")
	fs.IntVar(&o.PauseAfter, "pause-after", 3, "response chunks each stream sends before it pauses")
	fs.IntVar(&o.Parallel, "parallel", 64, "streams being opened or finished at the same moment")
	fs.IntVar(&o.Conns, "conns", 2, "HTTP/2 connections the streams share")
	fs.BoolVar(&o.Pipeline, "pipeline", true, "send the chunks after the pause without waiting for each answer")
	fs.DurationVar(&o.Settle, "settle", 2*time.Second, "wait before each RSS reading")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "bound on opening all streams, and on finishing them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("hold: unexpected arguments %q", fs.Args())
	}
	o.Shape.Key = s.key
	o.Log = stderr
	if err := o.Validate(); err != nil {
		return err
	}
	raiseFileLimit(stderr)
	targets, stop, err := s.bring(ctx, stderr)
	if err != nil {
		return err
	}
	defer stop()
	var results []*HoldResult
	for _, t := range targets {
		res, err := Hold(ctx, t, o)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		results = append(results, res)
	}
	writeHoldTable(stdout, o, results)
	for _, r := range results {
		if r.Errors > 0 {
			return fmt.Errorf("%s: %d streams failed", r.Target.Name, r.Errors)
		}
	}
	return nil
}

// loadAverage returns the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// raiseFileLimit lifts the soft limit on open files to the hard one. The
// servers the tool starts inherit it: with one connection per stream
// (-conns as large as -streams) both sides need a descriptor per stream.
func raiseFileLimit(log io.Writer) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf(log, "cannot read the open-file limit: %v", err)
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf(log, "cannot raise the open-file limit: %v", err)
		return
	}
	logf(log, "open-file limit %d (inherited by the servers started here)", lim.Cur)
}

func serveFloor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:50061", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", *addr, err)
	}
	srv := floor.NewGRPCServer()
	fmt.Fprintf(stdout, "%s%s\n", floorListening, lis.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("floor server stopped: %w", err)
	case <-ctx.Done():
		srv.Stop()
		return nil
	}
}

// serveTollgate runs the tollgate command in this process, so that a CPU
// profile of it under load can be taken: tollgate itself serves no pprof.
func serveTollgate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tollgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return fmt.Errorf("cannot create the profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cannot start the profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return app.Run(ctx, fs.Args(), app.Env{Stdout: stdout, Stderr: stderr})
}
