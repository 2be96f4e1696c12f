package processor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/alerts"
)

// TestQuotaThresholdAlert: a request that takes a consumer past 80% of its
// quota sends one notification to the webhook, with what was used.
func TestQuotaThresholdAlert(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v map[string]any
		_ = json.Unmarshal(b, &v)
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
	}))
	defer hook.Close()

	f := newFixture(t, `
quota:
  consumers: {team-b: {tokens: 100, period: month}}
`)
	var cfg alerts.Config
	if err := yaml.Unmarshal([]byte("webhook: {url: "+hook.URL+"}\nquota_thresholds: [0.8, 1.0]\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	al, err := alerts.New(alerts.Options{Config: cfg, Store: alerts.StoreFor(nil, f.server.o.Clock), Clock: f.server.o.Clock})
	if err != nil {
		t.Fatal(err)
	}
	f.server.o.Alerts = al

	x := f.envoy.open()
	x.send(requestHeaders(false, chatHeaders("sk-b")...))
	x.send(requestBody(`{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	x.send(responseHeaders(false, ":status", "200", "content-type", "application/json"))
	x.send(responseBody([]byte(`{"choices":[],"usage":{"prompt_tokens":80,"completion_tokens":5}}`), true))
	x.close()
	if err := al.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0]["type"] != "quota_threshold" || got[0]["consumer"] != "team-b" ||
		got[0]["threshold"] != 0.8 || got[0]["used"] != 85.0 || got[0]["allotment"] != 100.0 {
		t.Fatalf("webhook got %v", got)
	}
}
