package usage

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strings"
)

// Image prices as OpenAI documents them ("Images and vision: calculating
// costs"). Tile models scale an image to fit 2048×2048, then its short side
// to 768, and charge a base plus a price per 512-pixel tile; "low" detail
// is the base alone. Patch models (the small recent ones) charge 32-pixel
// patches, at most 1536, times a per-model multiplier.
const (
	tileBase      = 85
	tilePrice     = 170
	maxPatches    = 1536
	patchSide     = 32
	unknownSide   = 1024  // an image whose size is unknown (a remote URL) counts as 1024×1024
	imageSniffLen = 65536 // base64 characters read to find an image's size
)

var patchMultipliers = []struct {
	prefix string
	mult   float64
}{
	{"gpt-5-mini", 1.62},
	{"gpt-5-nano", 2.46},
	{"gpt-4.1-mini", 1.62},
	{"gpt-4.1-nano", 2.46},
	{"o4-mini", 1.72},
}

// imageTokens estimates an OpenAI image part of model: url is its
// image_url (a data: URL is measured), detail "low", "high" or "auto".
func imageTokens(model, url, detail string) int64 {
	w, h, ok := dataImageSize(url)
	if !ok {
		w, h = unknownSide, unknownSide
	}
	model = strings.ToLower(model)
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	for _, p := range patchMultipliers {
		if strings.HasPrefix(model, p.prefix) {
			return int64(math.Ceil(float64(patches(w, h)) * p.mult))
		}
	}
	if detail == "low" {
		return tileBase
	}
	fw, fh := float64(w), float64(h)
	if s := 2048 / max(fw, fh); s < 1 {
		fw, fh = fw*s, fh*s
	}
	if s := 768 / min(fw, fh); s < 1 {
		fw, fh = fw*s, fh*s
	}
	tiles := math.Ceil(fw/512) * math.Ceil(fh/512)
	return tileBase + tilePrice*int64(tiles)
}

// patches counts the 32-pixel patches of a w×h image, scaled down to at
// most maxPatches.
func patches(w, h int) int64 {
	fw, fh := float64(w), float64(h)
	n := math.Ceil(fw/patchSide) * math.Ceil(fh/patchSide)
	if n <= maxPatches {
		return int64(n)
	}
	s := math.Sqrt(patchSide * patchSide * maxPatches / (fw * fh))
	fw, fh = fw*s, fh*s
	s2 := min(math.Floor(fw/patchSide)/(fw/patchSide), math.Floor(fh/patchSide)/(fh/patchSide))
	fw, fh = fw*s2, fh*s2
	return int64(min(maxPatches, math.Ceil(fw/patchSide)*math.Ceil(fh/patchSide)))
}

// dataImageSize reads the pixel size of a base64 data: URL holding a PNG,
// GIF, JPEG or WebP image from its first bytes.
func dataImageSize(url string) (w, h int, ok bool) {
	const marker = ";base64,"
	if !strings.HasPrefix(url, "data:") {
		return 0, 0, false
	}
	i := strings.Index(url, marker)
	if i < 0 {
		return 0, 0, false
	}
	b64 := url[i+len(marker):]
	b64 = b64[:min(len(b64), imageSniffLen)&^3]
	b := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, _ := base64.StdEncoding.Decode(b, []byte(b64))
	b = b[:n]
	switch {
	case len(b) >= 24 && string(b[:8]) == "\x89PNG\r\n\x1a\n":
		return int(binary.BigEndian.Uint32(b[16:])), int(binary.BigEndian.Uint32(b[20:])), true
	case len(b) >= 10 && (string(b[:6]) == "GIF87a" || string(b[:6]) == "GIF89a"):
		return int(binary.LittleEndian.Uint16(b[6:])), int(binary.LittleEndian.Uint16(b[8:])), true
	case len(b) >= 30 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return webpSize(b)
	case len(b) >= 4 && b[0] == 0xff && b[1] == 0xd8:
		return jpegSize(b)
	}
	return 0, 0, false
}

func webpSize(b []byte) (int, int, bool) {
	switch string(b[12:16]) {
	case "VP8 ":
		return int(binary.LittleEndian.Uint16(b[26:]) & 0x3fff), int(binary.LittleEndian.Uint16(b[28:]) & 0x3fff), true
	case "VP8L":
		v := binary.LittleEndian.Uint32(b[21:])
		return int(v&0x3fff) + 1, int(v>>14&0x3fff) + 1, true
	case "VP8X":
		w := int(b[24]) | int(b[25])<<8 | int(b[26])<<16
		h := int(b[27]) | int(b[28])<<8 | int(b[29])<<16
		return w + 1, h + 1, true
	}
	return 0, 0, false
}

// jpegSize walks the JPEG segments to the first start-of-frame marker.
func jpegSize(b []byte) (int, int, bool) {
	for i := 2; i+9 < len(b); {
		if b[i] != 0xff {
			return 0, 0, false
		}
		m := b[i+1]
		if m == 0xff {
			i++
			continue
		}
		seg := int(binary.BigEndian.Uint16(b[i+2:]))
		if m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc {
			return int(binary.BigEndian.Uint16(b[i+7:])), int(binary.BigEndian.Uint16(b[i+5:])), true
		}
		i += 2 + seg
	}
	return 0, 0, false
}
