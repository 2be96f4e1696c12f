package usage

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// runMeterNeverIdle is runMeter without Idle: the Meter keeps its buffers.
func runMeterNeverIdle(o MeterOptions, chunks [][]byte) (*Meter, []byte) {
	m := &Meter{}
	m.Reset(o)
	var fwd []byte
	for _, c := range chunks {
		if out, replaced := m.Write(c); replaced {
			fwd = append(fwd, out...)
		} else {
			fwd = append(fwd, c...)
		}
	}
	if out, replaced := m.Finish(); replaced {
		fwd = append(fwd, out...)
	}
	return m, fwd
}

// TestMetersLendBuffers reads every recorded stream through its own Meter,
// all at once and in turns — a chunk of one, then of another, each Meter
// going idle after its chunk as a stream waiting for the next does — so
// that the buffers of one pass to the others in the middle of their
// events. Each must come out as if read alone: the same usage, model,
// count and forwarded bytes.
func TestMetersLendBuffers(t *testing.T) {
	type run struct {
		name   string
		o      MeterOptions
		chunks [][]byte
		m      *Meter
		fwd    []byte
		next   int
	}
	type stream struct {
		name string
		api  API
		body []byte
	}
	var streams []stream
	for _, r := range loadRecorded(t) {
		if r.sse() {
			streams = append(streams, stream{r.name, r.api, r.response})
		}
	}
	for _, c := range synthCases {
		b, err := readSynth(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if c.sse() {
			streams = append(streams, stream{c.file, c.api, b}, stream{c.file + " without usage", c.api, withoutUsage(t, c, b)})
		}
	}
	rng := rand.New(rand.NewPCG(61, 62))
	var runs []*run
	for _, s := range streams {
		for _, drop := range []bool{false, true} {
			enc := encodingFor(t, "gpt-4o")
			o := MeterOptions{API: s.api, SSE: true, DropUsageChunk: drop, Counter: enc.NewCounter()}
			m := &Meter{}
			m.Reset(o)
			runs = append(runs, &run{name: s.name, o: o, chunks: splitRandom(s.body, rng), m: m})
		}
	}
	if len(runs) < 10 {
		t.Fatalf("only %d recorded streams", len(runs))
	}
	for left := len(runs); left > 0; {
		x := runs[rng.IntN(len(runs))]
		if x.next > len(x.chunks) {
			continue
		}
		if x.next == len(x.chunks) {
			if out, replaced := x.m.Finish(); replaced {
				x.fwd = append(x.fwd, out...)
			}
			x.next++
			left--
			continue
		}
		c := bytes.Clone(x.chunks[x.next])
		x.next++
		if out, replaced := x.m.Write(c); replaced {
			x.fwd = append(x.fwd, out...)
		} else {
			x.fwd = append(x.fwd, c...)
		}
		clear(c)
		x.m.Idle()
	}
	for _, x := range runs {
		enc := encodingFor(t, "gpt-4o")
		o := x.o
		o.Counter = enc.NewCounter()
		alone, fwd := runMeterNeverIdle(o, x.chunks)
		u, rep := x.m.Usage()
		au, arep := alone.Usage()
		if u != au || rep != arep || x.m.ResponseModel() != alone.ResponseModel() ||
			x.o.Counter.Count() != o.Counter.Count() || !bytes.Equal(x.fwd, fwd) {
			t.Errorf("%s (drop %v): interleaved %+v %v %q counted %d, alone %+v %v %q counted %d, forwarded equal: %v",
				x.name, x.o.DropUsageChunk, u, rep, x.m.ResponseModel(), x.o.Counter.Count(),
				au, arep, alone.ResponseModel(), o.Counter.Count(), bytes.Equal(x.fwd, fwd))
		}
	}
}
