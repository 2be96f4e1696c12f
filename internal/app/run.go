// Package app is the tollgate command: its subcommands, the config file
// that composes every package's config, and the wiring of the servers.
package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tollgate-ai/tollgate/consumer"
)

const usageText = `tollgate — token gateway for LLM traffic (Envoy ext_proc)

Usage:
  tollgate serve --config FILE [--grpc-addr ADDR] [--admin-addr ADDR]
  tollgate check-config FILE
  tollgate hash-key            (reads a key on stdin, prints sha256:<hex>)
`

// Env is what Run reads from its surroundings, replaceable in tests.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	Hooks  Hooks
}

// Run runs the tollgate command with args (without the program name) until
// it is done or ctx is cancelled.
func Run(ctx context.Context, args []string, env Env) error {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdin == nil {
		env.Stdin = os.Stdin
	}
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usageText)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], env)
	case "check-config":
		return checkConfig(args[1:], env)
	case "hash-key":
		return hashKey(env)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usageText)
		return nil
	default:
		fmt.Fprint(env.Stderr, usageText)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func serve(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", "", "config file (YAML)")
	grpcAddr := fs.String("grpc-addr", "", "ext_proc and health gRPC address (overrides server.grpc_addr)")
	adminAddr := fs.String("admin-addr", "", "admin HTTP address (overrides server.admin_addr)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("serve: --config FILE is required")
	}
	load := func() (*Config, error) {
		c, err := LoadConfig(*path, env.Getenv)
		if err != nil {
			return nil, err
		}
		if *grpcAddr != "" {
			c.Server.GRPCAddr = *grpcAddr
		}
		if *adminAddr != "" {
			c.Server.AdminAddr = *adminAddr
		}
		return c, nil
	}
	c, err := load()
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	log := newLogger(c.Log, env.Stderr)

	// SIGHUP reloads consumers, limits, quotas and providers; the store and
	// the listeners need a restart.
	reload := make(chan *Config)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				nc, err := load()
				if err != nil {
					log.Error("config reload refused; the running config stays", "err", err)
					continue
				}
				select {
				case reload <- nc:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return Serve(ctx, c, log, env.Getenv, reload, env.Hooks)
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func checkConfig(args []string, env Env) error {
	if len(args) != 1 {
		return errors.New("check-config: give exactly one config file")
	}
	if _, err := LoadConfig(args[0], env.Getenv); err != nil {
		fmt.Fprintf(env.Stderr, "%s: invalid:\n", args[0])
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(env.Stderr, "  - %s\n", line)
		}
		return errors.New("config is invalid")
	}
	fmt.Fprintf(env.Stdout, "%s: ok\n", args[0])
	return nil
}

func hashKey(env Env) error {
	line, err := bufio.NewReader(io.LimitReader(env.Stdin, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot read the key from stdin: %w", err)
	}
	key := strings.TrimRight(line, "\r\n")
	if key == "" {
		return errors.New("hash-key: no key on stdin")
	}
	fmt.Fprintln(env.Stdout, consumer.HashKey(key).String())
	return nil
}
