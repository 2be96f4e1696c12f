package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// floorName is the target name the report divides by.
const floorName = "floor"

// writeTable prints the results as a markdown table, one row per target,
// with each target's CPU time per request divided by the floor's.
func writeTable(w io.Writer, o LoadOptions, rounds int, results []*Result) {
	m := compile(o.Shape)
	mode := "pipelined (as Envoy sends STREAMED chunks)"
	if !o.Pipeline {
		mode = "one at a time (each chunk waits for its answer)"
	}
	usage := "asks for stream usage"
	if !o.Shape.IncludeUsage {
		usage = "does not ask for stream usage"
	}
	measured := o.Duration.String()
	if rounds > 1 {
		measured = fmt.Sprintf("%s (%d rounds of %s, targets taking turns)", o.Duration*time.Duration(rounds), rounds, o.Duration)
	}
	fmt.Fprintf(w, "Load: %d concurrent streams over %d HTTP/2 connection(s), %s measured after %s of warm-up each; "+
		"each request is %d ext_proc messages (request headers, a %d-byte JSON body with a %d-byte user message that %s, "+
		"response headers, %d SSE chunks with usage in the last); chunks sent %s.\n\n",
		o.Concurrency, o.Conns, measured, o.Warmup, m.perRequest(), len(m.body.GetRequestBody().GetBody()),
		o.Shape.MessageBytes, usage, len(m.chunks), mode)

	var floor *Result
	for _, r := range results {
		if r.Target.Name == floorName && r.HaveCPU && r.Requests > 0 {
			floor = r
		}
	}
	fmt.Fprintln(w, "| target | requests | errors | req/s | req p50 | req p99 | msg p50 | msg p99 | server CPU/req | × floor | server CPU/msg | RSS peak | RSS end |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range results {
		cpuReq, ratio, cpuMsg := "n/a", "", "n/a"
		if r.HaveCPU && r.Requests > 0 {
			per := r.ServerCPU / time.Duration(r.Requests)
			cpuReq = fmtDur(per)
			cpuMsg = fmtDur(r.ServerCPU / time.Duration(r.Messages))
			if floor != nil {
				ratio = fmt.Sprintf("%.2f", float64(r.ServerCPU)/float64(r.Requests)/
					(float64(floor.ServerCPU)/float64(floor.Requests)))
			}
		}
		rssPeak, rssEnd := "n/a", "n/a"
		if r.RSSPeak > 0 {
			rssPeak, rssEnd = fmtBytes(float64(r.RSSPeak)), fmtBytes(float64(r.RSSEnd))
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Target.Name, r.Requests, r.Errors, float64(r.Requests)/r.Elapsed.Seconds(),
			fmtDur(r.ReqLat.quantile(0.5)), fmtDur(r.ReqLat.quantile(0.99)),
			fmtDur(r.MsgLat.quantile(0.5)), fmtDur(r.MsgLat.quantile(0.99)),
			cpuReq, ratio, cpuMsg, rssPeak, rssEnd)
	}
	fmt.Fprintln(w)
	for _, r := range results {
		var notes []string
		if r.Requests > 0 {
			for _, p := range r.Target.Aux {
				if cpu, ok := r.AuxCPU[p.Name]; ok {
					notes = append(notes, fmt.Sprintf("%s CPU/req %s", p.Name, fmtDur(cpu/time.Duration(r.Requests))))
				}
			}
			notes = append(notes, fmt.Sprintf("load tool CPU/req %s", fmtDur(r.LoadCPU/time.Duration(r.Requests))))
		}
		if r.HaveCPU && r.Elapsed > 0 {
			notes = append(notes, fmt.Sprintf("server busy %.2f cores", r.ServerCPU.Seconds()/r.Elapsed.Seconds()))
		}
		fmt.Fprintf(w, "- %s (%s): %s\n", r.Target.Name, r.Target.Addr, strings.Join(notes, "; "))
		for _, k := range sortedKinds(r.ErrorKinds) {
			fmt.Fprintf(w, "  - %d × %s\n", r.ErrorKinds[k], k)
		}
	}
}

// writeHoldTable prints hold results as a markdown table.
func writeHoldTable(w io.Writer, o HoldOptions, results []*HoldResult) {
	fmt.Fprintf(w, "Hold: %d streams over %d HTTP/2 connection(s), each paused after its response headers and %d of %d chunks; "+
		"RSS read %s after each phase settles.\n\n", o.Streams, o.Conns, o.PauseAfter, o.Shape.Chunks, o.Settle)
	fmt.Fprintln(w, "| target | streams | held | finished | errors | RSS idle | RSS held | RSS after | RSS per held stream | open all | finish all |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range results {
		idle, held, after, per := "n/a", "n/a", "n/a", "n/a"
		if r.HaveRSS {
			idle, held, after = fmtBytes(float64(r.RSSIdle)), fmtBytes(float64(r.RSSHeld)), fmtBytes(float64(r.RSSAfter))
			per = fmtBytes(r.PerStream())
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s |\n",
			r.Target.Name, r.Streams, r.Held, r.Finished, r.Errors, idle, held, after, per,
			r.OpenTime.Round(time.Millisecond), r.FinishTime.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		for _, k := range sortedKinds(r.ErrorKinds) {
			fmt.Fprintf(w, "- %s: %d × %s\n", r.Target.Name, r.ErrorKinds[k], k)
		}
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func fmtBytes(b float64) string {
	switch {
	case b < 0:
		return "-" + fmtBytes(-b)
	case b < 1<<10:
		return fmt.Sprintf("%.0f B", b)
	case b < 1<<20:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	}
}
