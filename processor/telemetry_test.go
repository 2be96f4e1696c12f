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

// TestKeyAsModelIsNotReported: a client that puts an API key where the
// model goes does not get it into Envoy's access log (dynamic metadata) or
// the usage record, even when the key is too short to look like one.
func TestKeyAsModelIsNotReported(t *testing.T) {
	f := newFixture(t, "")
	reg := f.server.Policy().Consumers
	tel, err := telemetry.New(context.Background(), telemetry.Config{RequestLog: "off"}, telemetry.Options{
		IsKey: func(s string) bool { _, ok := reg.Authenticate(s, f.now); return ok },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	f.server.o.Telemetry = tel

	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-b")...))
	x.send(requestBody(`{"model":"sk-admin","messages":[{"role":"user","content":"hi"}]}`))
	x.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
	last := x.send(responseBody([]byte(`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`), true))
	x.close()
	md := last.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
	if got := md["model"].GetStringValue(); got != "[redacted]" {
		t.Errorf("dynamic metadata model = %q", got)
	}
	r := telemetry.Request{Model: "sk-admin", Consumer: "team-b"}
	ev, _ := tel.UsageRecordJSON(&r)
	if strings.Contains(string(ev), "sk-admin") {
		t.Errorf("usage record %s", ev)
	}
}
