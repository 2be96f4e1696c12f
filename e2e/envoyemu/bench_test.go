package envoyemu

import (
	"net/http"
	"testing"
)

// BenchmarkStreamedRequest measures one emulated request end to end: a
// buffered request body and a 20-chunk streamed response, each message
// answered by a CONTINUE-only ext_proc server, all on loopback.
func BenchmarkStreamedRequest(b *testing.B) {
	llm := fakeLLM(b)
	e := newEnv(b, shippedFilter(b), func(s *serverStream) error { return s.answerAll(nil) }, llm)
	hdr := http.Header{"X-Fakellm-Chunks": {"20"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, _, err := e.do(b, http.MethodPost, "/v1/chat/completions",
			`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, hdr)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v %v", resp, err)
		}
		<-e.records
		<-e.ext.doneCh
	}
}
