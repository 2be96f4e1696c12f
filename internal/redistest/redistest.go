// Package redistest starts real redis-server processes for tests: a single
// node on a random loopback port, or a small cluster. Every process lives in
// the test's temporary directory and is stopped and reaped when the test ends.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 15 * time.Second

// stopTimeout bounds how long a redis-server may take to exit after SIGTERM
// before it is killed.
const stopTimeout = 5 * time.Second

// portAttempts is how many free ports are tried when another process takes
// the one picked between probing it and redis-server binding it.
const portAttempts = 5

const notFound = "redis-server not found: install it (apt-get install -y redis-server) or run `make test`, which installs it"

// Options tune a server started by [StartWith].
type Options struct {
	// AppendOnly turns on the append-only file with an fsync per write, so
	// that data acknowledged before a [Server.Kill] survives the
	// [Server.Restart]. Without it a restarted server starts empty.
	AppendOnly bool
	// Args are extra redis-server arguments, e.g. "--maxmemory", "10mb".
	Args []string
}

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	args []string

	mu   sync.Mutex
	port int
	proc *process
}

// process is a running redis-server and the channel closed once it has
// been reaped.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// Start starts a redis-server with no persistence on a free loopback port
// and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a redis-server tuned by o on a free loopback port and
// stops it when the test ends.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin := lookPath(t)
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	s.args = append(s.args, "--save", "")
	if o.AppendOnly {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		s.args = append(s.args, "--appendonly", "no")
	}
	s.args = append(s.args, o.Args...)
	t.Cleanup(s.Stop)
	if err := s.startOnFreePort(nil); err != nil {
		t.Fatalf("cannot start redis-server: %v", err)
	}
	return s
}

func lookPath(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf(notFound)
	}
	return bin
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the server's port.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it
// has exited. Clients see connection errors until [Server.Restart].
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-s.proc.exited
	s.proc = nil
}

// Restart starts the server again on the same port (killing it first if it
// still runs) and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	// The port was ours a moment ago; only a racing process can take it, so
	// a few attempts cover a slow release of the old socket.
	for range portAttempts {
		var p *process
		p, err = s.spawn(s.port, nil)
		if err == nil {
			s.proc = p
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("cannot restart redis-server on port %d: %v", s.port, err)
}

// Stop ends the server gracefully (SIGTERM, then SIGKILL after a few
// seconds) and waits until it has exited. It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	stopProcess(s.proc)
	s.proc = nil
}

func stopProcess(p *process) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// startOnFreePort picks a free port (and a free cluster bus port when
// busPort is not nil) and starts the server there, trying other ports when
// another process takes the picked one first.
func (s *Server) startOnFreePort(busPort *int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for range portAttempts {
		ports, err := freePorts(1 + boolInt(busPort != nil))
		if err != nil {
			return err
		}
		var bus *int
		if busPort != nil {
			bus = &ports[1]
		}
		p, err := s.spawn(ports[0], bus)
		if err == nil {
			s.port, s.proc = ports[0], p
			if busPort != nil {
				*busPort = ports[1]
			}
			return nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return errors.Join(errs...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var errAddrInUse = errors.New("address already in use")

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		ls = append(ls, l)
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			return nil, fmt.Errorf("unexpected listener address %v", l.Addr())
		}
		ports = append(ports, addr.Port)
	}
	return ports, nil
}

// spawn runs redis-server on port and waits until it answers PING. On
// failure the process is reaped and the error carries the tail of its log.
func (s *Server) spawn(port int, busPort *int) (*process, error) {
	logFile := filepath.Join(s.dir, "redis.log")
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", logFile,
		"--daemonize", "no",
	}
	if busPort != nil {
		args = append(args, "--cluster-port", strconv.Itoa(*busPort))
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	// Its own process group, so a signal to the test's group (Ctrl-C) does
	// not race the orderly Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot run %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		if ping(ctx, addr) == nil {
			return p, nil
		}
		select {
		case <-p.exited:
			log := tail(logFile)
			err := fmt.Errorf("redis-server exited (%v): %s", p.err, log)
			if strings.Contains(log, "already in use") {
				err = fmt.Errorf("%w: %w", errAddrInUse, err)
			}
			return nil, err
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
			return nil, fmt.Errorf("redis-server on %s did not answer PING within %v: %s", addr, startTimeout, tail(logFile))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends one inline PING and expects +PONG, without a client library so
// that readiness does not depend on the code under test.
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}

// tail returns the last lines of a log file for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o755) }
