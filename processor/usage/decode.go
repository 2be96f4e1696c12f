package usage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"

	"github.com/andybalholm/brotli"
)

// maxHeld bounds the compressed input held while a step cannot be decoded
// yet: a gzip header's file name and extra field have no length limit, a
// decoder waiting on them for longer gives up.
const maxHeld = 64 << 10

type encKind uint8

const (
	encIdentity encKind = iota
	encGzip
	encDeflate
	encBrotli
	encUnsupported
)

type wrapState uint8

const (
	wrapHeader wrapState = iota
	wrapBody
	wrapTrailer
	wrapEnd
)

// sink takes decoded body bytes.
type sink interface{ consume(p []byte) }

// errNeedInput is what the brotli reader's source answers when the chunk
// at hand is used up; the reader keeps its state and resumes on the next.
var errNeedInput = errors.New("need more input")

// decoder decodes a content-encoded body incrementally, chunk by chunk, for
// reading only. gzip and deflate (zlib-wrapped, or raw as some servers send
// it) go through the push-based inflater; brotli through andybalholm's
// reader, whose decoder is a resumable state machine, over a source that
// reports the end of each chunk. A corrupt stream stops decoding for good
// (failed); a truncated one is just a short body: what was decoded stands,
// like a cut identity body.
type decoder struct {
	kind   encKind
	failed bool // corrupt or unsupported: nothing more is decoded
	done   bool // the compressed stream ended: what follows is ignored
	sink   sink

	inf     *inflater
	wrap    wrapState
	members int    // gzip members decoded
	raw     bool   // deflate without its zlib wrapper
	crc     uint32 // gzip CRC-32 of the member's output
	size    uint32 // gzip ISIZE: output length mod 2^32
	adler   uint32 // zlib Adler-32 of the output

	br    *brotli.Reader
	src   chunkSource
	out   []byte
	brIn  int64 // compressed bytes given to brotli
	brOut int64 // bytes it decoded
}

// maxBrotliRatio bounds brotli's expansion. DEFLATE cannot expand more than
// about 1032 times, but a few kilobytes of brotli can claim gigabytes
// (text compresses 5 to 20 times, repetitive JSON a few hundred); a
// stream decoding past this ratio (plus maxBrotliSlack) is given up on as
// a decompression bomb rather than spending the CPU to read it.
const (
	maxBrotliRatio = 4096
	maxBrotliSlack = 16 << 20
)

func encodingKind(s string) encKind {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || strings.EqualFold(s, "identity"):
		return encIdentity
	case strings.EqualFold(s, "gzip") || strings.EqualFold(s, "x-gzip"):
		return encGzip
	case strings.EqualFold(s, "deflate"):
		return encDeflate
	case strings.EqualFold(s, "br"):
		return encBrotli
	}
	return encUnsupported
}

func (d *decoder) reset(encoding string) {
	d.kind = encodingKind(encoding)
	d.failed = d.kind == encUnsupported
	d.done = false
	d.wrap = wrapHeader
	d.members = 0
	d.raw = false
	d.crc, d.size, d.adler = 0, 0, 1
	switch d.kind {
	case encGzip, encDeflate:
		if d.inf == nil {
			d.inf = &inflater{}
			d.inf.emit = d.inflated
		}
		d.inf.reset()
	case encBrotli:
		if d.br == nil {
			d.br = brotli.NewReader(nil)
			d.out = make([]byte, 32<<10)
		}
		d.src.b = nil
		d.brIn, d.brOut = 0, 0
		_ = d.br.Reset(&d.src) // documented to always return nil
	}
}

// write decodes chunk, handing the output to s.
func (d *decoder) write(chunk []byte, s sink) {
	if d.failed || d.done {
		return
	}
	d.sink = s
	switch d.kind {
	case encGzip, encDeflate:
		if err := d.inflate(chunk); err != nil {
			d.failed = true
		}
	case encBrotli:
		d.brotli(chunk)
	}
	d.sink = nil
}

func (d *decoder) inflate(chunk []byte) error {
	f := d.inf
	f.in = append(f.in, chunk...)
	defer f.compact()
	for {
		switch d.wrap {
		case wrapHeader:
			ok, err := d.header()
			if err != nil || !ok {
				if err == nil && len(f.in)-int(f.pos>>3) > maxHeld {
					err = errCorrupt
				}
				return err
			}
		case wrapBody:
			err := f.run()
			f.flush()
			if err != nil {
				return err
			}
			if f.state != stateDone {
				return nil
			}
			f.pos = (f.pos + 7) &^ 7
			d.wrap = wrapTrailer
		case wrapTrailer:
			ok, err := d.trailer()
			if err != nil || !ok {
				return err
			}
		case wrapEnd:
			f.in, f.pos = f.in[:0], 0
			return nil
		}
	}
}

// header reads a gzip member header or the zlib header.
func (d *decoder) header() (bool, error) {
	f := d.inf
	b := f.in[f.pos>>3:]
	if d.kind == encDeflate {
		if len(b) < 2 {
			return false, nil
		}
		cmf, flg := b[0], b[1]
		if cmf&15 == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0 {
			if flg&0x20 != 0 {
				return false, errCorrupt // a preset dictionary we do not have
			}
			f.pos += 16
		} else {
			d.raw = true
		}
		d.wrap = wrapBody
		return true, nil
	}
	if len(b) == 0 {
		return false, nil
	}
	if b[0] != 0x1f || (len(b) > 1 && b[1] != 0x8b) || (len(b) > 2 && b[2] != 8) {
		if d.members > 0 {
			d.wrap = wrapEnd // trailing bytes after a complete member
			return true, nil
		}
		return false, errCorrupt
	}
	if len(b) < 10 {
		return false, nil
	}
	flg := b[3]
	if flg&0xe0 != 0 {
		return false, errCorrupt
	}
	n := 10
	if flg&4 != 0 {
		if len(b) < n+2 {
			return false, nil
		}
		n += 2 + int(binary.LittleEndian.Uint16(b[n:]))
	}
	for _, bit := range [...]byte{8, 16} { // file name, comment
		if flg&bit == 0 {
			continue
		}
		if n > len(b) {
			return false, nil
		}
		z := bytes.IndexByte(b[n:], 0)
		if z < 0 {
			return false, nil
		}
		n += z + 1
	}
	if flg&2 != 0 {
		n += 2
	}
	if n > len(b) {
		return false, nil
	}
	f.pos += uint(n) * 8
	f.state, f.final = stateBlockHeader, false
	d.crc, d.size = 0, 0
	d.wrap = wrapBody
	return true, nil
}

// trailer checks a gzip member's CRC-32 and size or zlib's Adler-32.
func (d *decoder) trailer() (bool, error) {
	f := d.inf
	b := f.in[f.pos>>3:]
	switch {
	case d.kind == encGzip:
		if len(b) < 8 {
			return false, nil
		}
		if binary.LittleEndian.Uint32(b) != d.crc || binary.LittleEndian.Uint32(b[4:]) != d.size {
			return false, errCorrupt
		}
		f.pos += 64
		d.members++
		d.wrap = wrapHeader
	case d.raw:
		d.wrap = wrapEnd
	default:
		if len(b) < 4 {
			return false, nil
		}
		if binary.BigEndian.Uint32(b) != d.adler {
			return false, errCorrupt
		}
		f.pos += 32
		d.wrap = wrapEnd
	}
	return true, nil
}

// inflated is the inflater's output: checksummed, then read.
func (d *decoder) inflated(p []byte) {
	if d.kind == encGzip {
		d.crc = crc32.Update(d.crc, crc32.IEEETable, p)
		d.size += uint32(len(p))
	} else if !d.raw {
		d.adler = adler32Update(d.adler, p)
	}
	d.sink.consume(p)
}

func (d *decoder) brotli(chunk []byte) {
	d.src.b = chunk
	d.brIn += int64(len(chunk))
	for {
		n, err := d.br.Read(d.out)
		if n > 0 {
			d.brOut += int64(n)
			if d.brOut > maxBrotliRatio*d.brIn+maxBrotliSlack {
				d.failed = true
				return
			}
			d.sink.consume(d.out[:n])
		}
		if err != nil {
			switch {
			case errors.Is(err, errNeedInput):
			case err.Error() == brotliExcessInput:
				// The stream ended; what follows it is not ours to read.
				// Fed a byte at a time, the reader also says so for the
				// stream's own last bytes held in its bit buffer.
				d.done = true
			default:
				d.failed = true
			}
			return
		}
		if n == 0 {
			return
		}
	}
}

// brotliExcessInput is the message of the brotli reader's unexported error
// for input past the end of the stream.
const brotliExcessInput = "brotli: excessive input"

// chunkSource serves the chunk at hand to the brotli reader.
type chunkSource struct{ b []byte }

func (c *chunkSource) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, errNeedInput
	}
	n := copy(p, c.b)
	c.b = c.b[n:]
	return n, nil
}

// adler32Update extends an Adler-32 checksum (RFC 1950); hash/adler32 only
// offers a one-shot function or an allocated hash.Hash32.
func adler32Update(adler uint32, p []byte) uint32 {
	const mod = 65521
	// 5552 is the most bytes that can be summed before b overflows 32 bits.
	const nmax = 5552
	a, b := adler&0xffff, adler>>16
	for len(p) > 0 {
		n := min(len(p), nmax)
		for _, c := range p[:n] {
			a += uint32(c)
			b += a
		}
		a %= mod
		b %= mod
		p = p[n:]
	}
	return b<<16 | a
}

// Decodable reports whether the Meter reads bodies with this
// content-encoding ("" and identity included).
func Decodable(encoding string) bool { return encodingKind(encoding) != encUnsupported }
