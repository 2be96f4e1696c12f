package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startTimeout bounds how long a child may take to be ready.
const startTimeout = 30 * time.Second

// stopTimeout bounds how long a child may take to exit after SIGTERM
// before it is killed.
const stopTimeout = 20 * time.Second

// portAttempts is how many free ports are tried when another process takes
// the one picked between probing it and the child binding it.
const portAttempts = 5

// children are the processes the tool started. Each is in its own process
// group (a terminal's Ctrl-C reaches the tool only, which then stops them
// in order) and is killed by the kernel if the tool dies first.
type children struct {
	dir string
	log io.Writer

	mu   sync.Mutex
	list []*child
}

type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// start runs name with args; its stderr (and stdout unless stdout is
// given) goes to a log file in the tool's directory.
func (cs *children) start(label, name string, args []string, stdout io.Writer) (*child, error) {
	logPath := filepath.Join(cs.dir, fmt.Sprintf("%s-%d.log", label, time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("cannot create the log of %s: %w", label, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stderr = logFile
	cmd.Stdout = logFile
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("cannot start %s: %w", label, err)
	}
	c := &child{name: label, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(c.exited)
	}()
	cs.mu.Lock()
	cs.list = append(cs.list, c)
	cs.mu.Unlock()
	return c, nil
}

// stop ends one child: SIGTERM, then SIGKILL after stopTimeout.
func (cs *children) stop(c *child) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		logf(cs.log, "%s did not stop in %s; killing it", c.name, stopTimeout)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// stopAll stops the children, the last started first (tollgate before the
// Redis it settles into).
func (cs *children) stopAll() {
	cs.mu.Lock()
	list := cs.list
	cs.list = nil
	cs.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		cs.stop(list[i])
	}
}

// tail returns the end of a child's log, for an error message.
func (c *child) tail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return strings.TrimSpace(string(b))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startRedis starts redis-server on a free loopback port, without
// persistence, and waits until it answers PING.
func (cs *children) startRedis(ctx context.Context, bin string) (*child, string, error) {
	var errs []error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		c, err := cs.start("redis-server", bin, []string{
			"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", cs.dir, "--logfile", "", "--maxclients", "10000",
		}, nil)
		if err != nil {
			return nil, "", err
		}
		if err := waitRedis(ctx, addr, c); err != nil {
			cs.stop(c)
			errs = append(errs, err)
			continue
		}
		return c, addr, nil
	}
	return nil, "", fmt.Errorf("cannot start redis-server: %w", errors.Join(errs...))
}

func waitRedis(ctx context.Context, addr string, c *child) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	return waitReady(ctx, c, func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
}

// waitReady polls ready until it succeeds, the child exits or
// startTimeout passes.
func waitReady(ctx context.Context, c *child, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		last = ready(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited before it was ready: %s", c.name, c.tail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w; log: %s", c.name, startTimeout, last, c.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// buildTollgate builds cmd/tollgate of the module the tool runs in.
func buildTollgate(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("cannot find the tollgate module (go env GOMOD): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the tollgate module: run from the repository or pass -tollgate-bin")
	}
	bin := filepath.Join(dir, "tollgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/tollgate")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build tollgate: %w\n%s", err, out)
	}
	return bin, nil
}

// startTollgate runs `tollgate serve` (argv before serve's flags given by
// cmd) with config on free loopback ports and waits for its gRPC health
// service to report SERVING.
func (cs *children) startTollgate(ctx context.Context, cmd []string, config string) (*child, string, error) {
	var errs []error
	for range portAttempts {
		grpcPort, err := freePort()
		if err != nil {
			return nil, "", err
		}
		adminPort, err := freePort()
		if err != nil {
			return nil, "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", grpcPort)
		args := append(append([]string{}, cmd[1:]...), "serve", "--config", config,
			"--grpc-addr", addr, "--admin-addr", fmt.Sprintf("127.0.0.1:%d", adminPort))
		c, err := cs.start("tollgate", cmd[0], args, nil)
		if err != nil {
			return nil, "", err
		}
		if err := waitServing(ctx, addr, c); err != nil {
			cs.stop(c)
			errs = append(errs, err)
			continue
		}
		return c, addr, nil
	}
	return nil, "", fmt.Errorf("cannot start tollgate: %w", errors.Join(errs...))
}

func waitServing(ctx context.Context, addr string, c *child) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("cannot dial %s: %w", addr, err)
	}
	defer cc.Close()
	h := healthpb.NewHealthClient(cc)
	return waitReady(ctx, c, func(ctx context.Context) error {
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health is %s", r.GetStatus())
		}
		return nil
	})
}

// startFloor runs this tool's own floor command and reads the address it
// listens on from its first line of output.
func (cs *children) startFloor(ctx context.Context, self string) (*child, string, error) {
	pr, pw := io.Pipe()
	c, err := cs.start("floor", self, []string{"floor", "-addr", "127.0.0.1:0"}, pw)
	if err != nil {
		return nil, "", err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		// The floor prints nothing more; drain in case it does.
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { <-c.exited; pw.Close() }()
	select {
	case line, ok := <-lines:
		addr, found := strings.CutPrefix(line, floorListening)
		if !ok || !found {
			cs.stop(c)
			return nil, "", fmt.Errorf("the floor server did not start: %q %s", line, c.tail())
		}
		return c, addr, nil
	case <-ctx.Done():
		return nil, "", ctx.Err()
	case <-time.After(startTimeout):
		cs.stop(c)
		return nil, "", fmt.Errorf("the floor server printed no address in %s: %s", startTimeout, c.tail())
	}
}

// floorListening starts the line the floor command prints once it listens.
const floorListening = "floor listening on "

// tollgateConfig is the standard shape's config: one consumer with a token
// window, a request window and a quota, the store on Redis. The limits are
// far above what a run can reach, so every request is admitted and does
// all of its work.
func tollgateConfig(redisAddr, key string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `# Written by the load tool: the standard shape of BENCHMARKS.md.
server:
  drain_timeout: 10s
store:
  type: redis
  redis:
    addrs: [%q]
consumers:
  - name: load
    keys: [%q]
token_ratelimit:
  - rule_name: per-consumer-tpm
    rule_items:
      - limit_by_per_consumer: ""
        limit_keys: [{key: "*", token_per_minute: 1000000000000}]
request_ratelimit:
  - rule_name: per-consumer-rpm
    rule_items:
      - limit_by_per_consumer: ""
        limit_keys: [{key: "*", query_per_minute: 1000000000}]
quota:
  default: {tokens: 1000000000000000, period: month, timezone: UTC}
`, redisAddr, key)
	return b.Bytes()
}
