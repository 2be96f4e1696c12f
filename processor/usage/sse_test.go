package usage

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// recorder collects events; it drops those whose data equals drop. A
// large event is recorded by its size and checksum.
type recorder struct {
	events []string
	drop   string
	big    []byte
}

func (r *recorder) event(name, data []byte) bool {
	r.events = append(r.events, string(name)+"|"+string(data))
	return r.drop != "" && string(data) == r.drop
}

func (r *recorder) bigStart()        { r.big = r.big[:0] }
func (r *recorder) bigData(p []byte) { r.big = append(r.big, p...) }
func (r *recorder) bigEnd(name []byte) {
	r.events = append(r.events, fmt.Sprintf("%s|big %d %08x", name, len(r.big), crc32.ChecksumIEEE(r.big)))
}

// frame runs a parser over chunks and returns the events and the bytes it
// forwarded.
func frame(chunks [][]byte, drop string) (events []string, fwd []byte, malformed int) {
	var p sseParser
	p.reset(true)
	r := &recorder{drop: drop}
	for _, c := range chunks {
		c = bytes.Clone(c)
		p.feed(c, r)
		fwd = append(fwd, p.b.out...)
		clear(c)
	}
	p.finish(r)
	fwd = append(fwd, p.b.tail...)
	return r.events, fwd, p.malformed
}

// splittings returns the ways a test cuts a stream: whole, every byte, and
// random points.
func splittings(b []byte, n int, seed uint64) [][][]byte {
	out := [][][]byte{{b}, splitBytes(b)}
	rng := rand.New(rand.NewPCG(seed, uint64(len(b))))
	for range n {
		out = append(out, splitRandom(b, rng))
	}
	return out
}

func TestSSEFraming(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []string
	}{
		{"single", "data: a\n\n", []string{"|a"}},
		{"named", "event: message_start\ndata: {}\n\n", []string{"message_start|{}"}},
		{"multi-line data", "data: a\ndata: b\ndata:c\n\n", []string{"|a\nb\nc"}},
		{"one space stripped", "data:  a \n\n", []string{"| a "}},
		{"empty data", "data:\n\n", []string{"|"}},
		{"no data, no event", "event: ping\n\n: comment\n\n", nil},
		{"comments", ": keep-alive\ndata: a\n: more\n\n", []string{"|a"}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"|a", "|b"}},
		{"cr only", "data: a\r\rdata: b\r\r", []string{"|a", "|b"}},
		{"mixed ends", "data: a\r\ndata: b\rdata: c\n\r\n", []string{"|a\nb\nc"}},
		{"field without colon", "data\n\n", []string{"|"}},
		{"unknown fields", "id: 7\nretry: 10\nfoo: bar\ndata: a\n\n", []string{"|a"}},
		{"event name reset", "event: x\ndata: a\n\ndata: b\n\n", []string{"x|a", "|b"}},
		{"bom", "\xef\xbb\xbfdata: a\n\n", []string{"|a"}},
		{"bom only at start", "data: a\n\n\xef\xbb\xbfdata: b\n\n", []string{"|a"}},
		{"cut without blank line", "data: a\n\ndata: b\n", []string{"|a", "|b"}},
		{"cut mid line", "data: a\n\ndata: b", []string{"|a", "|b"}},
		{"done", "data: x\n\ndata: [DONE]\n\n", []string{"|x", "|[DONE]"}},
		{"utf-8", "data: héllo 世界 🎉\n\n", []string{"|héllo 世界 🎉"}},
		{"blank lines between", "\n\n\ndata: a\n\n\n\n", []string{"|a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, chunks := range splittings([]byte(tt.stream), 200, 1) {
				got, fwd, _ := frame(chunks, "")
				if !slices.Equal(got, tt.want) {
					t.Fatalf("splitting %d: events %q, want %q", i, got, tt.want)
				}
				if string(fwd) != tt.stream {
					t.Fatalf("splitting %d: forwarded %q, want the stream unchanged", i, fwd)
				}
			}
		})
	}
}

// TestSSELineEndings converts a recorded stream to each line ending and
// checks that the events do not change.
func TestSSELineEndings(t *testing.T) {
	for _, r := range loadRecorded(t) {
		if !r.sse() {
			continue
		}
		want, _, _ := frame([][]byte{r.response}, "")
		if len(want) < 3 {
			t.Fatalf("%s: %d events", r.name, len(want))
		}
		for _, end := range []string{"\r\n", "\r"} {
			body := []byte(strings.ReplaceAll(string(r.response), "\n", end))
			for i, chunks := range splittings(body, 50, 2) {
				got, _, _ := frame(chunks, "")
				if !slices.Equal(got, want) {
					t.Fatalf("%s with %q, splitting %d: events differ", r.name, end, i)
				}
			}
		}
	}
}

func TestSSEOversizeEvent(t *testing.T) {
	big := strings.Repeat("x", maxEventSize+10)
	stream := "data: a\n\ndata: " + big + "\n\n: c\ndata: b\n\n"
	for i, chunks := range splittings([]byte(stream), 20, 3) {
		got, fwd, malformed := frame(chunks, "b")
		bigEv := fmt.Sprintf("|big %d %08x", len(big)+1, crc32.ChecksumIEEE([]byte(big+"\n")))
		if want := []string{"|a", bigEv, "|b"}; !slices.Equal(got, want) {
			t.Fatalf("splitting %d: events %q, want %q", i, got, want)
		}
		if malformed != 1 {
			t.Fatalf("splitting %d: malformed %d, want 1", i, malformed)
		}
		// The oversize event is forwarded untouched, the dropped one is not.
		if want := "data: a\n\ndata: " + big + "\n\n"; string(fwd) != want {
			t.Fatalf("splitting %d: forwarded %d bytes, want %d", i, len(fwd), len(want))
		}
	}
}

// TestSSEBoundedMemory feeds a line that never ends: the parser's buffers
// stay bounded.
func TestSSEBoundedMemory(t *testing.T) {
	var p sseParser
	p.reset(true)
	r := &recorder{}
	chunk := bytes.Repeat([]byte("y"), 64<<10)
	copy(chunk, "data: ")
	for range 64 { // 4 MiB
		p.feed(chunk, r)
		if len(p.b.data) > maxEventSize || len(p.b.pending) > maxEventSize || len(p.b.out) > len(chunk)+maxEventSize {
			t.Fatalf("buffers grew to data %d, pending %d, out %d", len(p.b.data), len(p.b.pending), len(p.b.out))
		}
	}
	p.feed([]byte("\n\ndata: ok\n\n"), r)
	if len(r.events) != 2 || r.events[1] != "|ok" || p.malformed != 1 {
		t.Fatalf("events %q, malformed %d", r.events, p.malformed)
	}
}

// TestSSEDrop checks that dropping an event removes exactly its bytes,
// including a \r\n split between chunks after it.
func TestSSEDrop(t *testing.T) {
	for _, end := range []string{"\n", "\r\n", "\r"} {
		events := []string{": hi", "data: a", "event: e\ndata: U", "data: b", "data: U", "data: [DONE]"}
		var stream, want strings.Builder
		for _, e := range events {
			ev := strings.ReplaceAll(e, "\n", end) + end + end
			stream.WriteString(ev)
			if !strings.HasSuffix(e, "U") {
				want.WriteString(ev)
			}
		}
		for i, chunks := range splittings([]byte(stream.String()), 200, 4) {
			_, fwd, _ := frame(chunks, "U")
			if string(fwd) != want.String() {
				t.Fatalf("end %q splitting %d: forwarded %q, want %q", end, i, fwd, want.String())
			}
		}
	}
}

func ExampleMeter() {
	var m Meter
	m.Reset(MeterOptions{API: APIChatCompletions, SSE: true})
	m.Write([]byte("data: {\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choi"))
	m.Write([]byte("ces\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"))
	m.Finish()
	u, reported := m.Usage()
	fmt.Println(m.ResponseModel(), u.Input, u.Output, reported)
	// Output: gpt-4o 9 1 true
}
