// Command demo runs tollgate the way a newcomer tries it first: tollgate
// with the in-memory store and demo.yaml, an emulated Envoy (configured from
// envoy/envoy.yaml) on :8080 in front of it, and a fake OpenAI/Anthropic
// provider on a free port. It prints the addresses and curl commands to
// paste, and stops everything on Ctrl-C. `make demo` runs it from the
// repository root.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tollgate-ai/tollgate/e2e/envoyemu"
	"github.com/tollgate-ai/tollgate/e2e/fakellm"
	"github.com/tollgate-ai/tollgate/internal/app"
)

//go:embed demo.yaml
var demoConfig []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], options{Stdout: os.Stdout, Stderr: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// options are what run needs from its surroundings.
type options struct {
	Stdout, Stderr io.Writer
	// Ready, when set, is called with the emulated Envoy's and tollgate's
	// admin addresses once everything serves.
	Ready func(envoyAddr, adminAddr string)
}

func run(ctx context.Context, args []string, o options) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address of the emulated Envoy")
	adminAddr := fs.String("admin-addr", "127.0.0.1:8081", "address of tollgate's admin API")
	envoyYAML := fs.String("envoy-config", "envoy/envoy.yaml", "Envoy bootstrap whose ext_proc filter is emulated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ecfg, err := envoyemu.LoadConfig(*envoyYAML)
	if err != nil {
		return fmt.Errorf("cannot read %s (run from the repository root, or `make demo`): %w", *envoyYAML, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The fake provider.
	llm, err := fakellm.New(fakellm.Options{
		DefaultPlan: &fakellm.Plan{Chunks: 6, Content: "hello "},
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	llmLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("cannot listen for the fake LLM: %w", err)
	}
	llmSrv := &http.Server{Handler: llm, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = llmSrv.Serve(llmLis) }()
	defer llmSrv.Close()

	// tollgate, in this process, on free ports.
	dir, err := os.MkdirTemp("", "tollgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(cfgPath, demoConfig, 0o600); err != nil {
		return err
	}
	type addrs struct{ grpc, admin string }
	ready := make(chan addrs, 1)
	tgDone := make(chan error, 1)
	go func() {
		tgDone <- app.Run(ctx, []string{"serve", "--config", cfgPath, "--grpc-addr", "127.0.0.1:0", "--admin-addr", *adminAddr}, app.Env{
			Stdout: o.Stderr, Stderr: o.Stderr,
			Hooks: app.Hooks{Listening: func(g, a string) { ready <- addrs{g, a} }},
		})
	}()
	var tg addrs
	select {
	case tg = <-ready:
	case err := <-tgDone:
		return fmt.Errorf("tollgate did not start (is %s taken? try -admin-addr 127.0.0.1:8091): %w", *adminAddr, err)
	}

	// The emulated Envoy in front.
	upstream, _ := url.Parse("http://" + llmLis.Addr().String())
	proxy, err := envoyemu.New(envoyemu.Options{
		Filter:          ecfg.Filter,
		ExtProcAddr:     tg.grpc,
		Upstream:        upstream,
		Routes:          ecfg.Routes,
		AccessLogFormat: ecfg.AccessLogFormat,
		Logger:          slog.New(slog.NewTextHandler(o.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	defer proxy.Close()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (is something else on it? try -listen 127.0.0.1:8090): %w", *listen, err)
	}
	front := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	frontDone := make(chan error, 1)
	go func() { frontDone <- front.Serve(lis) }()

	printWelcome(o.Stdout, lis.Addr().String(), tg.grpc, tg.admin, llmLis.Addr().String())
	if o.Ready != nil {
		o.Ready(lis.Addr().String(), tg.admin)
	}

	var runErr error
	tgStopped := false
	select {
	case <-ctx.Done():
	case err := <-tgDone:
		tgStopped = true
		runErr = fmt.Errorf("tollgate stopped: %w", err)
	case err := <-frontDone:
		runErr = fmt.Errorf("the emulated Envoy stopped: %w", err)
	}
	fmt.Fprintln(o.Stdout, "\nstopping…")
	cancel()
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := front.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("cannot stop the emulated Envoy: %w", err)
	}
	if !tgStopped {
		if err := <-tgDone; err != nil && runErr == nil {
			runErr = fmt.Errorf("tollgate stopped: %w", err)
		}
	}
	return runErr
}

func printWelcome(w io.Writer, envoy, grpc, admin, llm string) {
	base := "http://" + envoy
	fmt.Fprintf(w, `
tollgate demo is running (Ctrl-C stops it):

  Envoy (emulated)   %s          ← send your LLM calls here
  tollgate ext_proc  %s
  tollgate admin     http://%s   (token: admin-demo-token)
  fake LLM           http://%s

Consumers (e2e/demo/demo.yaml): sk-team-a-demo, sk-team-b-demo (3 calls and 1,000 tokens
a minute), sk-team-q-demo (empty quota), sk-admin-demo (quota admin).

A completion:
  curl %s/v1/chat/completions -H 'Authorization: Bearer sk-team-a-demo' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'

A 401 (unknown key):
  curl -i %s/v1/chat/completions -H 'Authorization: Bearer sk-wrong' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'

A 429 (team-b may make 3 calls a minute; the 4th is refused, with retry-after):
  for i in 1 2 3 4; do curl -s -o /dev/null -w '%%{http_code}\n' %s/v1/chat/completions \
    -H 'Authorization: Bearer sk-team-b-demo' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'; done

A quota top-up (team-q starts at 0: 403, then +1000 through Higress's in-band endpoint):
  curl '%s/v1/chat/completions/quota?consumer=team-q' -H 'Authorization: Bearer sk-admin-demo'
  curl '%s/v1/chat/completions/quota/delta' -H 'Authorization: Bearer sk-admin-demo' -d 'consumer=team-q&value=1000'

What tollgate committed:
  curl -H 'Authorization: Bearer admin-demo-token' 'http://%s/v1/usage?consumer=team-a'

`, base, grpc, admin, llm, base, base, base, base, base, admin)
}
