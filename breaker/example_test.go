package breaker_test

import (
	"fmt"
	"time"

	"github.com/tollgate-ai/tollgate/breaker"
)

// The calls a request makes: Allow once its provider is known, Done when
// the response headers come, Cancel when the request ends without them.
func Example() {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	set := breaker.New(breaker.Config{MinRequests: 4}, breaker.Options{Clock: func() time.Time { return now }})

	request := func(upstreamStatus int) {
		permit, v := set.Allow("openai")
		if !v.Allowed() {
			fmt.Printf("503, retry-after %v\n", v.RetryAfter)
			return
		}
		// … admission, the upstream call …
		if upstreamStatus == 0 {
			permit.Cancel() // the client went away first
			return
		}
		permit.Done(upstreamStatus, 800*time.Millisecond, false)
		fmt.Println(upstreamStatus, set.State("openai"))
	}
	request(200)
	request(0)
	request(503)
	request(502)
	request(500)
	request(200)
	now = now.Add(30 * time.Second)
	request(200) // the probe
	h := set.Health()[0]
	fmt.Printf("%s: %d requests, error rate %.2f, p50 %.0fms\n", h.Name, h.Requests, h.ErrorRate, h.LatencyMsP50)
	// Output:
	// 200 closed
	// 503 closed
	// 502 closed
	// 500 open
	// 503, retry-after 30s
	// 200 closed
	// openai: 1 requests, error rate 0.00, p50 803ms
}
