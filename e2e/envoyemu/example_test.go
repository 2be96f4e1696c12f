package envoyemu_test

import (
	"fmt"
	"net/http/httptest"
	"net/url"

	"github.com/tollgate-ai/tollgate/e2e/envoyemu"
	"github.com/tollgate-ai/tollgate/e2e/fakellm"
)

// Example wires the e2e chain: client → emulated Envoy (configured from the
// shipped envoy.yaml) → fake LLM, with tollgate's ext_proc server at
// extProcAddr.
func Example() {
	cfg, err := envoyemu.LoadConfig("../../envoy/envoy.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	llm, err := fakellm.New(fakellm.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	upstream := httptest.NewServer(llm)
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	extProcAddr := "127.0.0.1:50051" // where the test started tollgate
	proxy, err := envoyemu.New(envoyemu.Options{
		Filter:          cfg.Filter,
		ExtProcAddr:     extProcAddr,
		Upstream:        u,
		Routes:          cfg.Routes,
		AccessLogFormat: cfg.AccessLogFormat,
		OnComplete: func(r envoyemu.Record) {
			// r.DynamicMetadata["tollgate"] holds what tollgate reported.
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer proxy.Close()
	front := httptest.NewServer(proxy) // point the OpenAI SDK at front.URL+"/v1"
	defer front.Close()
	fmt.Println(cfg.Filter.GetProcessingMode().GetResponseBodyMode())
	// Output: STREAMED
}
