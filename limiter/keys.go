package limiter

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/tollgate-ai/tollgate/ledger"
)

// Window keys have the shape
//
//	rl:{<tag>}:<unit>:<rule>:<source>:<size>
//
// for example "rl:{c:team-a}:tokens:default_rule:consumer:1m". The hash tag
// decides the Redis Cluster slot: windows that count one consumer use
// "{c:<consumer>}" so they sit beside that consumer's quota; a global
// threshold uses "{g:<rule>}"; every other window uses
// "{r:<rule>:<digest>}" where the digest is a truncated SHA-256 of the value
// counted (or of the limit key, for a pattern whose matches share one
// counter). Values read from headers, parameters and cookies may be
// credentials, so they appear in keys only as digests. No limit number goes
// into a key: changing a limit keeps the counter.

const keyPrefix = "rl:{"

// digestLen is the number of hex digits of a digest in a tag: 128 bits, so
// that no client can find a value sharing another client's counter.
const digestLen = 32

// Digest inputs start with a mode byte so that a counter of a value can never
// be the counter of a pattern, whatever the value.
const (
	modeValue   = 'v'
	modePattern = 'k'
)

// appendDigest appends the truncated hex SHA-256 of mode, source and s.
func appendDigest[S ~string | ~[]byte](dst []byte, mode byte, source string, s S) []byte {
	var buf [192]byte
	b := append(buf[:0], "tollgate/rl"...)
	b = append(b, 0, mode)
	b = append(b, source...)
	b = append(b, 0)
	b = append(b, s...)
	sum := sha256.Sum256(b)
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return append(dst, h[:digestLen]...)
}

// appendConsumerTag appends the tag of a consumer's windows without the
// braces (see [ledger.ConsumerTag]).
func appendConsumerTag(dst []byte, consumer string) []byte {
	return append(dst, strings.Trim(ledger.ConsumerTag(consumer), "{}")...)
}

// ConsumerTag returns the Redis hash tag, braces included, under which the
// windows of one consumer are kept: [ledger.ConsumerTag], shared with the
// consumer's quota balance and usage totals so they sit in one Cluster slot.
func ConsumerTag(consumer string) string { return ledger.ConsumerTag(consumer) }

// appendRuleTag appends "r:<rule>:<digest>".
func appendRuleTag[S ~string | ~[]byte](dst []byte, rule string, mode byte, source string, s S) []byte {
	dst = append(dst, "r:"...)
	dst = append(dst, rule...)
	dst = append(dst, ':')
	return appendDigest(dst, mode, source, s)
}

// windowTail returns the part of a key after the tag.
func windowTail(ws windowSpec, rule, source string) string {
	return "}:" + unitKey(ws.unit, ws.tokenType) + ":" + rule + ":" + source + ":" + sizeKey(ws.size)
}
