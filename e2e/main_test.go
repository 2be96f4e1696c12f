package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// binDir holds the tollgate binary built for the scenarios that run it as a
// process (restarts, signals); it is removed when the suite ends.
var binDir string

func TestMain(m *testing.M) {
	// go-redis prints every failed dial through its own global logger;
	// tollgate's log already says when Redis is down, and the tests that
	// kill Redis would otherwise flood the output.
	redis.SetLogger(discardLogger{})
	dir, err := os.MkdirTemp("", "tollgate-e2e-")
	if err != nil {
		log.Fatal(err)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// tollgateBinary builds ./cmd/tollgate once per run of the suite.
func tollgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go is not on PATH: %w", err)
			return
		}
		buildPath = filepath.Join(binDir, "tollgate")
		out, err := exec.Command(goBin, "build", "-o", buildPath, "../cmd/tollgate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("cannot build tollgate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// freeAddr returns a loopback address no one listens on right now, for a
// process that must come back on the same address after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is tollgate running as its own process.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// startProcess runs the tollgate binary with the config at path on the
// given addresses and waits until its admin port answers /healthz.
func startProcess(t *testing.T, path, grpcAddr, adminAddr string, out io.Writer) *process {
	t.Helper()
	cmd := exec.Command(tollgateBinary(t), "serve", "--config", path, "--grpc-addr", grpcAddr, "--admin-addr", adminAddr)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start tollgate: %v", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("tollgate exited at start: %v", p.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tollgate did not answer /healthz within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig and returns without waiting.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("cannot signal tollgate: %v", err)
	}
}

// wait waits for the process to exit and returns how it exited.
func (p *process) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		t.Fatalf("tollgate did not exit within %v", within)
		return nil
	}
}

func (p *process) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
