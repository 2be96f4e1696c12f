package telemetry

import (
	"strings"
	"sync/atomic"
	"time"
)

// redacted replaces a value that may hold a credential in logs and spans.
const redacted = "[redacted]"

// Keys of well-known providers and token formats start with one of these.
// A value holding one at a word start, followed by enough key characters,
// is treated as a credential.
var credentialPrefixes = []string{
	"sk-", "sk_", "rk-", "rk_", "pk-", "pk_", "gsk_", "xai-", "AIza", "hf_",
	"ghp_", "gho_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "AKIA", "ya29.",
	"Bearer ", "bearer ", "Basic ", "basic ",
}

// minKeyTail is how many key characters must follow a prefix.
const minKeyTail = 16

// minOpaqueRun is the length from which an unbroken run of key characters
// mixing upper case, lower case and digits is taken for a credential: model
// names and ids are broken by '/', '.', ':' or are shorter.
const minOpaqueRun = 40

func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '+' || c == '=' || c == '/'
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// looksLikeCredential reports whether v appears to contain an API key or a
// bearer token. Values tollgate reports come from clients (a model name, a
// request id) and a client may paste a key anywhere; such a value must not
// reach a log, a span or a metric label.
func looksLikeCredential(v string) bool {
	for i := 0; i < len(v); i++ {
		if i > 0 && isWordChar(v[i-1]) {
			continue // prefixes count only at a word start
		}
		for _, p := range credentialPrefixes {
			if len(v)-i >= len(p)+minKeyTail && v[i] == p[0] && v[i:i+len(p)] == p && keyRun(v[i+len(p):]) >= minKeyTail {
				return true
			}
		}
	}
	return hasOpaqueRun(v)
}

func keyRun(v string) int {
	n := 0
	for n < len(v) && isKeyChar(v[n]) {
		n++
	}
	return n
}

// hasOpaqueRun reports a run of at least minOpaqueRun characters without
// '/', '.', ':' or spaces that mixes upper case, lower case and digits.
func hasOpaqueRun(v string) bool {
	run, up, low, dig := 0, false, false, false
	for i := 0; i <= len(v); i++ {
		if i < len(v) {
			c := v[i]
			if isKeyChar(c) && c != '/' {
				run++
				up = up || c >= 'A' && c <= 'Z'
				low = low || c >= 'a' && c <= 'z'
				dig = dig || c >= '0' && c <= '9'
				continue
			}
		}
		if run >= minOpaqueRun && up && low && dig {
			return true
		}
		run, up, low, dig = 0, false, false, false
	}
	return false
}

// minSecretLen keeps short strings given as secrets from redacting
// everything that happens to contain them.
const minSecretLen = 8

// secrets holds the exact values (provider keys and the like) that must
// never be reported, read from a callback at most once a second, and
// recognizes consumer keys.
type secrets struct {
	list  func() []string
	isKey func(string) bool
	clock func() time.Time
	vals  atomic.Pointer[[]string]
	next  atomic.Int64
}

func (s *secrets) current() []string {
	if s.list == nil {
		return nil
	}
	now := s.clock().UnixNano()
	if p := s.vals.Load(); p != nil && now < s.next.Load() {
		return *p
	}
	var keep []string
	for _, v := range s.list() {
		if len(v) >= minSecretLen {
			keep = append(keep, v)
		}
	}
	s.vals.Store(&keep)
	s.next.Store(now + int64(time.Second))
	return keep
}

// scrub returns v, or a placeholder when v holds a known secret or looks
// like a credential.
func (s *secrets) scrub(v string) string {
	if v == "" {
		return v
	}
	for _, k := range s.current() {
		if strings.Contains(v, k) {
			return redacted
		}
	}
	if looksLikeCredential(v) || s.isKey != nil && s.isKey(strings.TrimSpace(v)) {
		return redacted
	}
	return v
}
