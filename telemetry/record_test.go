package telemetry

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate-ai/tollgate/processor/usage"
	tollgatev1 "github.com/tollgate-ai/tollgate/proto/tollgate/v1"
)

func TestUsageRecord(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)
	r := &Request{
		ID: "tg-1", RequestID: "req-1", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Consumer: "alice", Model: "gpt-4o", ResponseModel: "gpt-4o-2024-08-06", Provider: "openai", Route: "llm", Operation: "chat",
		Decision: Allowed, Status: 200,
		Usage: usage.Usage{Input: 1200, Output: 300, CachedInput: 1000, CacheCreation: 5, Reasoning: 100, Estimated: true},
		Start: start, FirstToken: start.Add(250 * time.Millisecond), End: start.Add(3 * time.Second), Cancelled: true,
	}
	b, err := UsageRecordJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	// What a billing pipeline reading the stream with any JSON library sees.
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	for k, want := range map[string]any{
		"request_id": "tg-1", "envoy_request_id": "req-1", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
		"consumer": "alice", "model": "gpt-4o", "response_model": "gpt-4o-2024-08-06", "provider": "openai", "route": "llm",
		"operation": "chat", "decision": "allowed", "status": float64(200),
		"input_tokens": "1200", "output_tokens": "300", "cached_input_tokens": "1000", "cache_creation_tokens": "5",
		"reasoning_tokens": "100", "total_tokens": "1500", "estimated": true, "cancelled": true,
		"start_time": "2026-03-01T12:00:00.000000500Z", "end_time": "2026-03-01T12:00:03.000000500Z", "time_to_first_token": "0.250s",
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	back, err := tollgatev1.UnmarshalRecordJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, NewUsageRecord(r)) {
		t.Errorf("round trip changed the record:\n%v\n%v", back, NewUsageRecord(r))
	}
}

func TestUsageRecordRefusal(t *testing.T) {
	b, err := UsageRecordJSON(&Request{ID: "tg-2", Consumer: "bob", Model: "gpt-4o", Decision: RateLimited, Rule: "per-minute"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["decision"] != "rate_limited" || m["rule"] != "per-minute" || m["input_tokens"] != nil || m["start_time"] != nil {
		t.Errorf("refusal record = %s", b)
	}
}
