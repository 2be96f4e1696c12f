package limiter

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/ledger"
)

// compileYAML decodes a configuration the way the binary does (unknown
// top-level fields refused) and compiles it.
func compileYAML(t testing.TB, doc string) *Rules {
	t.Helper()
	c := decodeYAML(t, doc)
	r, err := Compile(c)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

func decodeYAML(t testing.TB, doc string) Config {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode: %v\n%s", err, doc)
	}
	return c
}

// req builds a Request; attrs holds "h:<name>", "q:<name>", "c:<name>"
// entries for headers, query parameters and cookies.
type req struct {
	consumer, model, path, host, route, ip string
	attrs                                  map[string]string
}

func (r req) build() *Request {
	out := &Request{Consumer: r.consumer, Model: r.model, Path: r.path, Host: r.host, Route: r.route}
	if r.ip != "" {
		out.IP = netip.MustParseAddr(r.ip)
	}
	get := func(prefix string) func(string) (string, bool) {
		return func(name string) (string, bool) {
			v, ok := r.attrs[prefix+name]
			return v, ok
		}
	}
	out.Header, out.Query, out.Cookie = get("h:"), get("q:"), get("c:")
	return out
}

// describe summarises windows for comparison: "rule: tokens per minute <= 100".
func describe(ws []ledger.Window) []string {
	var out []string
	for i := range ws {
		out = append(out, fmt.Sprintf("%s: %s <= %d", ws[i].Rule, WindowName(&ws[i]), ws[i].Limit))
	}
	return out
}

func keys(ws []ledger.Window) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Key)
	}
	return out
}

// tagOf returns the hash tag of a key, without braces, and checks there is
// exactly one.
func tagOf(t testing.TB, key string) string {
	t.Helper()
	if strings.Count(key, "{") != 1 || strings.Count(key, "}") != 1 {
		t.Fatalf("key %q does not hold exactly one hash tag", key)
	}
	open, end := strings.IndexByte(key, '{'), strings.IndexByte(key, '}')
	if open != len("rl:") || end < open {
		t.Fatalf("key %q does not start with rl:{<tag>}", key)
	}
	return key[open+1 : end]
}
