package processor

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/telemetry"
)

// TestTelemetrySeesWhatWasSettled: the token counters exported on /metrics
// equal the usage committed, and refusals are counted by decision.
func TestTelemetrySeesWhatWasSettled(t *testing.T) {
	f := newFixture(t, "")
	tel, err := telemetry.New(context.Background(), telemetry.Config{}, telemetry.Options{
		Consumers: func() []string { return []string{"team-a", "team-b", "admin"} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	f.server.o.Telemetry = tel

	stream, _ := chatStream([]string{"Hello", " there"}, 11, 4)
	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-a")...))
	x.send(requestBody(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	x.send(responseHeaders(false, ":status", "200", "content-type", "text/event-stream"))
	x.send(responseBody(stream, true))
	x.close()

	y := f.envoy.open()
	y.send(requestHeaders(false, chatHeaders("sk-wrong")...))
	y.cancel()

	var metrics string
	for range 200 {
		rec := httptest.NewRecorder()
		tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		metrics = string(b)
		if strings.Contains(metrics, `decision="unauthenticated"`) {
			break
		}
		sleepBriefly()
	}
	for _, want := range []string{
		`tollgate_tokens_total{consumer="team-a",model="gpt-4o",`,
		`type="input"} 11`,
		`type="output"} 4`,
		`decision="allowed"`,
		`decision="unauthenticated"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, "tollgate_") {
				t.Log(l)
			}
		}
	}
}
