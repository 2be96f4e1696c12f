package limiter

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/ledger"
)

func i64(v int64) *int64 { return &v }

func TestConsumerWindows(t *testing.T) {
	tier := Limits{TokenPerMinute: i64(1000), QueryPerMinute: i64(60), TokenType: "input"}
	own := Limits{TokenPerMinute: i64(5000), TokenPerDay: i64(100000)}
	ws, err := ConsumerWindows("team-a", own.Over(tier))
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Window{
		{Key: "rl:{c:team-a}:input_tokens:@consumer:consumer:1m", Limit: 5000, Size: time.Minute, Unit: ledger.Tokens, TokenType: ledger.InputTokens, Rule: ConsumerRule},
		{Key: "rl:{c:team-a}:input_tokens:@consumer:consumer:1d", Limit: 100000, Size: 24 * time.Hour, Unit: ledger.Tokens, TokenType: ledger.InputTokens, Rule: ConsumerRule},
		{Key: "rl:{c:team-a}:requests:@consumer:consumer:1m", Limit: 60, Size: time.Minute, Unit: ledger.Requests, Rule: ConsumerRule},
	}
	if len(ws) != len(want) {
		t.Fatalf("got %+v", ws)
	}
	for i := range want {
		if ws[i] != want[i] {
			t.Errorf("window %d = %+v, want %+v", i, ws[i], want[i])
		}
	}
	var r *Rules
	if msg := r.Rejection(&ws[0]).Message; !strings.Contains(msg, "this consumer's own limit") {
		t.Errorf("message %q", msg)
	}
	if (Limits{}).IsZero() != true || own.IsZero() {
		t.Error("IsZero")
	}
}

func TestLimitsValidate(t *testing.T) {
	err := Limits{TokenPerMinute: i64(0), QueryPerDay: i64(-1), TokenType: "both"}.Validate("tiers[0].limits")
	for _, want := range []string{"tiers[0].limits: token_per_minute must be > 0", "tiers[0].limits: query_per_day must be > 0", `unknown token_type "both"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if err := (Limits{TokenType: "input"}).Validate("l"); err == nil {
		t.Error("token_type without a token window must be refused")
	}
}
