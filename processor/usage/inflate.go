package usage

import "errors"

// inflater decodes a DEFLATE stream (RFC 1951) pushed to it in chunks cut
// anywhere. compress/flate cannot do that: it pulls from an io.Reader and an
// input that runs dry is a sticky error, so a streamed body would need a
// goroutine per response, or decoding everything again on every chunk
// (quadratic). Here every step (a block header, one literal or match) is
// decoded as a whole or not at all: when the input runs out mid-step the
// bit position goes back to the step's start and the step is retried once
// more input arrives. Held input is a step at most (a dynamic block header,
// under 600 bytes) and output goes out through the 32 KiB window, so memory
// is bounded and each input byte is decoded once.
type inflater struct {
	in    []byte // input not consumed yet
	pos   uint   // bit position in in
	state inflateState
	final bool // the current block is the last one

	storedLeft int // bytes left in a stored block
	lit, dist  huffman

	window    [windowSize]byte
	wpos      int // next write position in window
	filled    int // bytes of window written at least once
	flushFrom int // window[flushFrom:wpos] is not handed out yet
	emit      func(p []byte)
}

const (
	windowSize = 1 << 15
	maxBits    = 15
)

type inflateState uint8

const (
	stateBlockHeader inflateState = iota
	stateStored
	stateCodes
	stateDone
)

var errCorrupt = errors.New("corrupt compressed data")

// huffman is a canonical Huffman code: how many codes have each length, and
// the symbols ordered by code.
type huffman struct {
	count  [maxBits + 1]uint16
	symbol [288]uint16
}

func (f *inflater) reset() {
	f.in = f.in[:0]
	f.pos = 0
	f.state = stateBlockHeader
	f.final = false
	f.storedLeft = 0
	f.wpos, f.filled, f.flushFrom = 0, 0, 0
}

// run decodes as much of f.in as it can. It returns errCorrupt for an
// invalid stream; running out of input is not an error.
func (f *inflater) run() error {
	for {
		var ok bool
		var err error
		switch f.state {
		case stateBlockHeader:
			ok, err = f.blockHeader()
		case stateStored:
			ok = f.stored()
		case stateCodes:
			ok, err = f.codes()
		case stateDone:
			return nil
		}
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
	}
}

// bitsLeft is how many input bits are not consumed.
func (f *inflater) bitsLeft() uint { return uint(len(f.in))*8 - f.pos }

// peek returns the next up to 57 input bits, least significant first.
func (f *inflater) peek() uint64 {
	i := f.pos >> 3
	var w uint64
	for k := uint(0); k < 8 && int(i+k) < len(f.in); k++ {
		w |= uint64(f.in[i+k]) << (8 * k)
	}
	return w >> (f.pos & 7)
}

// bits reads n ≤ 32 bits, or reports that the input ran out.
func (f *inflater) bits(n uint) (uint32, bool) {
	if f.bitsLeft() < n {
		return 0, false
	}
	v := uint32(f.peek() & (1<<n - 1))
	f.pos += n
	return v, true
}

// decode reads one symbol of h: ok is false when the input ran out.
func (f *inflater) decode(h *huffman) (sym int, ok bool, err error) {
	avail := f.bitsLeft()
	w := f.peek()
	code, first, index := 0, 0, 0
	for n := uint(1); n <= maxBits; n++ {
		if n > avail {
			return 0, false, nil
		}
		code |= int(w & 1)
		w >>= 1
		count := int(h.count[n])
		if code-count < first {
			f.pos += n
			return int(h.symbol[index+code-first]), true, nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, false, errCorrupt
}

// build makes h from code lengths. Over-subscribed lengths are corrupt;
// incomplete ones are accepted (RFC 1951 allows a single distance code) and
// fail in decode if an unused code shows up.
func (h *huffman) build(lengths []uint8) error {
	h.count = [maxBits + 1]uint16{}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for n := 1; n <= maxBits; n++ {
		left = left<<1 - int(h.count[n])
		if left < 0 {
			return errCorrupt
		}
	}
	var offs [maxBits + 2]uint16
	for n := 1; n <= maxBits; n++ {
		offs[n+1] = offs[n] + h.count[n]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	h.count[0] = 0
	return nil
}

func (f *inflater) blockHeader() (bool, error) {
	if f.final {
		f.state = stateDone
		return true, nil
	}
	start := f.pos
	h, ok := f.bits(3)
	if !ok {
		return false, nil
	}
	switch h >> 1 {
	case 0:
		f.pos = (f.pos + 7) &^ 7
		v, ok := f.bits(32)
		if !ok {
			f.pos = start
			return false, nil
		}
		if uint16(v) != ^uint16(v>>16) {
			return false, errCorrupt
		}
		f.storedLeft = int(uint16(v))
		f.state = stateStored
	case 1:
		f.fixedTables()
		f.state = stateCodes
	case 2:
		ok, err := f.dynamicTables()
		if err != nil {
			return false, err
		}
		if !ok {
			f.pos = start
			return false, nil
		}
		f.state = stateCodes
	default:
		return false, errCorrupt
	}
	f.final = h&1 == 1
	return true, nil
}

func (f *inflater) stored() bool {
	if f.storedLeft == 0 {
		f.state = stateBlockHeader
		return true
	}
	i := int(f.pos >> 3)
	n := min(f.storedLeft, len(f.in)-i)
	if n == 0 {
		return false
	}
	for _, c := range f.in[i : i+n] {
		f.put(c)
	}
	f.pos += uint(n) * 8
	f.storedLeft -= n
	return true
}

var fixedLit, fixedDist huffman

func init() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	_ = fixedLit.build(l[:]) // complete by RFC 1951: cannot fail
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	_ = fixedDist.build(d[:]) // incomplete but not over-subscribed
}

func (f *inflater) fixedTables() {
	f.lit = fixedLit
	f.dist = fixedDist
}

// codeLengthOrder is the order of the code length code lengths (RFC 1951
// section 3.2.7).
var codeLengthOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamicTables reads a dynamic block's code definitions; ok is false when
// the input ran out (the caller rewinds).
func (f *inflater) dynamicTables() (bool, error) {
	v, ok := f.bits(14)
	if !ok {
		return false, nil
	}
	nlen := int(v&31) + 257
	ndist := int(v>>5&31) + 1
	ncode := int(v>>10) + 4
	if nlen > 286 || ndist > 30 {
		return false, errCorrupt
	}
	var lengths [320]uint8
	for i := 0; i < ncode; i++ {
		l, ok := f.bits(3)
		if !ok {
			return false, nil
		}
		lengths[codeLengthOrder[i]] = uint8(l)
	}
	var lencode huffman
	if err := lencode.build(lengths[:19]); err != nil {
		return false, err
	}
	lengths = [320]uint8{}
	for i := 0; i < nlen+ndist; {
		sym, ok, err := f.decode(&lencode)
		if err != nil || !ok {
			return false, err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var prev uint8
		var rep uint32
		switch sym {
		case 16:
			if i == 0 {
				return false, errCorrupt
			}
			prev = lengths[i-1]
			rep, ok = f.bits(2)
			rep += 3
		case 17:
			rep, ok = f.bits(3)
			rep += 3
		default:
			rep, ok = f.bits(7)
			rep += 11
		}
		if !ok {
			return false, nil
		}
		if i+int(rep) > nlen+ndist {
			return false, errCorrupt
		}
		for ; rep > 0; rep-- {
			lengths[i] = prev
			i++
		}
	}
	if lengths[256] == 0 {
		return false, errCorrupt // no end-of-block code
	}
	if err := f.lit.build(lengths[:nlen]); err != nil {
		return false, err
	}
	if err := f.dist.build(lengths[nlen : nlen+ndist]); err != nil {
		return false, err
	}
	return true, nil
}

var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// codes decodes literals and matches until the block ends or the input
// runs out mid-symbol (then the partial symbol is left for later).
func (f *inflater) codes() (bool, error) {
	for {
		start := f.pos
		sym, ok, err := f.decode(&f.lit)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, nil
		}
		switch {
		case sym < 256:
			f.put(byte(sym))
			continue
		case sym == 256:
			f.state = stateBlockHeader
			return true, nil
		}
		sym -= 257
		if sym >= len(lengthBase) {
			return false, errCorrupt
		}
		extra, ok := f.bits(uint(lengthExtra[sym]))
		if !ok {
			f.pos = start
			return false, nil
		}
		length := int(lengthBase[sym]) + int(extra)
		dsym, ok, err := f.decode(&f.dist)
		if err != nil {
			return false, err
		}
		if !ok {
			f.pos = start
			return false, nil
		}
		if dsym >= len(distBase) {
			return false, errCorrupt
		}
		extra, ok = f.bits(uint(distExtra[dsym]))
		if !ok {
			f.pos = start
			return false, nil
		}
		dist := int(distBase[dsym]) + int(extra)
		if dist > f.filled {
			return false, errCorrupt
		}
		for ; length > 0; length-- {
			f.put(f.window[(f.wpos-dist)&(windowSize-1)])
		}
	}
}

// put appends one output byte, handing the window out as it wraps.
func (f *inflater) put(c byte) {
	f.window[f.wpos] = c
	f.wpos++
	if f.filled < windowSize {
		f.filled++
	}
	if f.wpos == windowSize {
		f.emit(f.window[f.flushFrom:])
		f.wpos, f.flushFrom = 0, 0
	}
}

// flush hands out the output not handed out yet.
func (f *inflater) flush() {
	if f.wpos > f.flushFrom {
		f.emit(f.window[f.flushFrom:f.wpos])
		f.flushFrom = f.wpos
	}
}

// compact drops consumed input, keeping a partial byte's bits.
func (f *inflater) compact() {
	n := int(f.pos >> 3)
	if n == 0 {
		return
	}
	f.in = f.in[:copy(f.in, f.in[n:])]
	f.pos &= 7
}
