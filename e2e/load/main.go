// Command load drives Envoy ext_proc servers the way Envoy does, one gRPC
// stream per HTTP request, and reports what each server costs: requests
// per second, latency per request and per message, errors, the server's
// own CPU time per request (read from /proc, so the load tool's cost does
// not enter it) and its resident memory. It ships the floor, a do-nothing
// ext_proc server that every figure is compared with.
//
//	load bench   start Redis, tollgate and the floor, load each in turn, print the table
//	load hold    hold thousands of streams open mid-response, report RSS per stream
//	load floor   serve the do-nothing ext_proc server
//	load tollgate [-cpuprofile FILE] serve …   run tollgate in this process, profiled
//
// `make bench-load` and `make bench-hold` run the first two with the
// standard shape; BENCHMARKS.md has the figures and how to read them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usageText = `load — drive Envoy ext_proc servers like Envoy does and measure their cost

Usage:
  load bench [flags]     start Redis, tollgate and the floor; load each; print a markdown table
  load hold [flags]      hold -streams streams open mid-response; report the server's RSS per stream
  load floor [-addr A]   serve the do-nothing ext_proc server (prints its address)
  load tollgate [-cpuprofile FILE] serve --config …   run tollgate in-process (for profiles)

Run "load <command> -h" for the flags of each.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "load:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return errors.New("no command given")
	}
	switch args[0] {
	case "bench":
		return bench(ctx, args[1:], stdout, stderr)
	case "hold":
		return hold(ctx, args[1:], stdout, stderr)
	case "floor":
		return serveFloor(ctx, args[1:], stdout, stderr)
	case "tollgate":
		return serveTollgate(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		fmt.Fprint(stderr, usageText)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
