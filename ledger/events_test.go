package ledger

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tollgate-ai/tollgate/processor/usage"
)

// TestUsageEventsOncePerID: each settlement appends its record to the
// stream once; replaying it (as the spool does) appends nothing.
func TestUsageEventsOncePerID(t *testing.T) {
	for _, target := range redisTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			c := target.client(t)
			r, err := NewRedis(RedisOptions{Client: c, KeyPrefix: "ev:", Events: EventsConfig{Stream: "usage-events", MaxLen: 1000}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t)
			w := Window{Key: "rl:{c:team-a}:tokens:r:consumer:1m", Limit: 1000, Size: 60e9, Unit: Tokens, Rule: "r"}
			for i := range 3 {
				res := &Reservation{ID: fmt.Sprintf("id-%d", i), Windows: []Window{w}, Input: 10, Output: 10}
				d, err := r.Reserve(ctx, res)
				if err != nil || !d.Allowed {
					t.Fatalf("reserve: %v %+v", err, d)
				}
				rec := fmt.Sprintf(`{"requestId":"id-%d","consumer":"team-a","totalTokens":"12"}`, i)
				s := &Settlement{ID: res.ID, Consumer: "team-a", Model: "gpt-4o", Day: "2026-11-26", Reservation: res, Hold: d.Hold,
					Usage: usage.Usage{Input: 7, Output: 5}, Event: json.RawMessage(rec)}
				for range 2 { // the second is a replay
					if err := r.Settle(ctx, s); err != nil {
						t.Fatal(err)
					}
				}
			}
			key := "ev:usage-events"
			if target.name == "cluster" {
				key = "ev:usage-events:{c:team-a}"
			}
			msgs, err := c.XRange(ctx, key, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 3 {
				t.Fatalf("%s holds %d records, want 3 (one per request, none for replays)", key, len(msgs))
			}
			for i, m := range msgs {
				var rec struct {
					RequestID string `json:"requestId"`
				}
				if err := json.Unmarshal([]byte(fmt.Sprint(m.Values["record"])), &rec); err != nil || rec.RequestID != fmt.Sprintf("id-%d", i) {
					t.Errorf("record %d = %v (%v)", i, m.Values, err)
				}
			}
		})
	}
}
