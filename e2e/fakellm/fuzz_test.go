package fakellm

import (
	"net/http"
	"testing"
)

// FuzzPlanFrom checks that any x-fakellm-* header values either parse into a
// usable plan or are refused, never a plan with negative sizes.
func FuzzPlanFrom(f *testing.F) {
	f.Add("5", "10ms", "cut-after=2,gzip", "input=1,output=2", "3", `"tok "`)
	f.Add("-1", "x", "status=99", "bogus=1", "0", `"unterminated`)
	f.Fuzz(func(t *testing.T, chunks, delay, fault, usage, split, content string) {
		h := http.Header{}
		for k, v := range map[string]string{"X-Fakellm-Chunks": chunks, "X-Fakellm-Delay": delay, "X-Fakellm-Fault": fault,
			"X-Fakellm-Usage": usage, "X-Fakellm-Split": split, "X-Fakellm-Content": content} {
			h.Set(k, v)
		}
		p, err := planFrom(h, nil)
		if err != nil {
			return
		}
		if p.Chunks < 0 || p.Delay < 0 || p.Split < 0 || p.CutAfter < 0 || (p.Status != 0 && (p.Status < 400 || p.Status > 599)) {
			t.Fatalf("accepted plan %+v", p)
		}
	})
}
