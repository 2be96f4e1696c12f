package telemetry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/processor/usage"
	"github.com/tollgate-ai/tollgate/telemetry"
)

// A request's life as the processor reports it: phases while it runs, one
// RequestDone at its end, and the usage record its settlement publishes.
func Example() {
	tel, err := telemetry.New(context.Background(), telemetry.Config{Models: []string{"gpt-4o*"}, RequestLog: "off"},
		telemetry.Options{Consumers: func() []string { return []string{"team-a"} }, Getenv: func(string) string { return "" }})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tel.Shutdown(context.Background())

	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tel.Phase(telemetry.RequestHeaders, 15*time.Microsecond)
	tel.StoreCall("reserve", 400*time.Microsecond, nil)
	tel.Phase(telemetry.RequestBody, 600*time.Microsecond)
	r := &telemetry.Request{
		ID: "9f1c", Consumer: "team-a", Model: "gpt-4o", Provider: "openai",
		Operation: telemetry.Operation(usage.APIChatCompletions), Status: 200,
		Usage: usage.Usage{Input: 1200, Output: 300},
		Start: start, FirstToken: start.Add(250 * time.Millisecond), End: start.Add(3 * time.Second),
	}
	tel.RequestDone(r)

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "tollgate_tokens_total") {
			fmt.Println(line)
		}
	}
	b, _ := telemetry.UsageRecordJSON(r)
	var event map[string]any
	_ = json.Unmarshal(b, &event)
	fmt.Println(event["request_id"], event["total_tokens"])
	// Output:
	// tollgate_tokens_total{consumer="team-a",model="gpt-4o",provider="openai",type="input"} 1200
	// tollgate_tokens_total{consumer="team-a",model="gpt-4o",provider="openai",type="output"} 300
	// 9f1c 1500
}
