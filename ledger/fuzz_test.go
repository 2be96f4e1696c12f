package ledger

import (
	"strings"
	"testing"
)

// FuzzRedisKeys checks that whatever a window or balance key looks like,
// its Redis key has a hash tag and its settlement marker lands in the same
// slot, so that one script may touch both in a cluster.
func FuzzRedisKeys(f *testing.F) {
	for _, k := range []string{"rl:{c:alice}:minute", "plain", "a{b", "a}b{", "{}x", "{{a}}", "x{}{y}", "}", "}{"} {
		f.Add(k, "req-1")
	}
	r := &Redis{prefix: "tollgate:"}
	f.Fuzz(func(t *testing.T, key, id string) {
		if key == "" {
			return // refused by validation before any key is built
		}
		rk := r.key(key)
		tag := tagOf(rk)
		if tag == "" {
			t.Fatalf("redis key %q of %q has no hash tag", rk, key)
		}
		if !strings.HasPrefix(rk, r.prefix) {
			t.Fatalf("redis key %q lacks the prefix", rk)
		}
		if got := tagOf(r.markerKey(tag, id)); got != tag {
			t.Fatalf("marker of %q has tag %q, want %q", key, got, tag)
		}
	})
}

// FuzzParseTotals feeds arbitrary usage hash fields to the totals parser:
// it must return an error or totals, never panic, and keep every known
// metric it was given.
func FuzzParseTotals(f *testing.F) {
	f.Add("requests:gpt-4o", "3", "input:gpt-4o", "120")
	f.Add("total:a:b", "-1", "bogus", "x")
	f.Add("estimated:", "99999999999999999999", "output:m", "7")
	f.Fuzz(func(t *testing.T, f1, v1, f2, v2 string) {
		fields := map[string]string{f1: v1, f2: v2}
		res, err := parseTotals("2026-05-01", fields, "")
		if err != nil {
			return
		}
		var requests int64
		for _, d := range res {
			requests += d.Requests
		}
		var want int64
		for f, v := range fields {
			if metric, _, _ := strings.Cut(f, ":"); metric == "requests" {
				n, _ := parseInt(v)
				want += n
			}
		}
		if requests != want {
			t.Fatalf("requests %d, want %d from %v", requests, want, fields)
		}
	})
}
