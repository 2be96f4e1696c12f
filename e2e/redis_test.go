package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/internal/redistest"
)

// sharedLimits gives team-b a token window, a request window and a monthly
// quota, so that every admission and settlement touches Redis.
const sharedLimits = `
token_ratelimit:
  - rule_name: tpm
    rule_items:
      - limit_by_per_consumer: ""
        limit_keys: [{key: "*", token_per_minute: 1000000}]
request_ratelimit:
  - rule_name: rpm
    rule_items:
      - limit_by_per_consumer: ""
        limit_keys: [{key: "*", query_per_minute: 10000}]
quota:
  admin_consumer: admin
  default: {tokens: 100000000, period: month}
`

// TestRedisDown kills Redis in the middle of traffic — one stream in
// flight, more calls while it is down — and brings it back, in each failure
// mode. fail_closed refuses new calls with 503; fail_open lets them through.
// Either way, once Redis is back, what tollgate committed equals what the
// provider reported: the spooled settlements arrive, and arrive once, also
// after tollgate itself restarts on the same spool.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"fail_closed", "fail_open"} {
		t.Run(mode, func(t *testing.T) {
			redis := redistest.StartWith(t, redistest.Options{AppendOnly: true})
			spool := t.TempDir()
			cfg := baseConfig(redisStore([]string{redis.Addr()}, mode, spool), sharedLimits)
			s := newStack(t, cfg)
			c := openaiClient(s.envoy.URL, keyTeamB)
			ctx := context.Background()
			call := func() error {
				_, err := c.Chat.Completions.New(ctx, userChat("gpt-4o", "What happens when Redis is down?"), plan("chunks", "4")...)
				return err
			}
			for range 3 {
				if err := call(); err != nil {
					t.Fatalf("with Redis up: %v", err)
				}
			}

			// A stream admitted while Redis is up ends while it is down: its
			// settlement must wait in the spool.
			var wg sync.WaitGroup
			wg.Add(1)
			streamErr := make(chan error, 1)
			go func() {
				defer wg.Done()
				st := c.Chat.Completions.NewStreaming(ctx, userChat("gpt-4o", "A long answer, please."), plan("chunks", "20", "delay", "40ms")...)
				for st.Next() {
				}
				streamErr <- st.Err()
			}()
			eventually(t, "the stream to start", func() error {
				if len(s.llm.Requests()) < 4 {
					return fmt.Errorf("not yet")
				}
				return nil
			})
			redis.Kill()
			wg.Wait()
			if err := <-streamErr; err != nil {
				t.Fatalf("a stream admitted before Redis died must finish: %v", err)
			}

			for i := range 3 {
				err := call()
				switch mode {
				case "fail_closed":
					apiErr, code := apiStatus(t, err)
					if code != http.StatusServiceUnavailable || apiErr.Code != "store_unavailable" {
						t.Errorf("call %d with Redis down: got %d %q, want 503 store_unavailable", i, code, apiErr.Code)
					}
				case "fail_open":
					if err != nil {
						t.Errorf("call %d with Redis down must go on (fail_open): %v", i, err)
					}
				}
			}

			redis.Restart()
			eventually(t, "calls to pass once Redis is back", func() error { return call() })
			for range 2 {
				if err := call(); err != nil {
					t.Fatalf("with Redis back: %v", err)
				}
			}
			want := s.llm.totals("team-b")
			wantCalls := map[string]int64{"fail_closed": 3 + 1 + 1 + 2, "fail_open": 3 + 1 + 3 + 1 + 2}[mode]
			if want.Requests < wantCalls {
				t.Fatalf("the provider saw %d calls, want at least %d", want.Requests, wantCalls)
			}
			expectTotals(t, s.tollgate.adminAddr, "team-b", want)

			// Settling again — the replayer going on, or a restart replaying
			// the spool file — must not charge twice.
			if err := s.tollgate.Stop(); err != nil {
				t.Fatalf("tollgate stopped with %v", err)
			}
			again := startTollgate(t, "tollgate (restarted on the same spool)", cfg)
			time.Sleep(time.Second)
			got, err := committedTotals(t, again.adminAddr, "team-b")
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("after a restart on the same spool tollgate has %v, want %v", got, want)
			}
		})
	}
}

// TestRedisDownAtStart starts tollgate while Redis is not there yet: it
// starts anyway and follows its failure mode until Redis comes.
func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	redis.Kill()
	s := newStack(t, baseConfig(redisStore([]string{redis.Addr()}, "fail_closed", t.TempDir()), sharedLimits))
	c := openaiClient(s.envoy.URL, keyTeamB)
	_, err := c.Chat.Completions.New(context.Background(), userChat("gpt-4o", "hi"))
	if apiErr, code := apiStatus(t, err); code != http.StatusServiceUnavailable || !strings.Contains(apiErr.Message, "retry") {
		t.Fatalf("got %d %q, want a 503 telling the client to retry", code, apiErr.Message)
	}
	redis.Restart()
	eventually(t, "a call once Redis is up", func() error {
		_, err := c.Chat.Completions.New(context.Background(), userChat("gpt-4o", "hi"), plan("usage", "input=5,output=5")...)
		return err
	})
	s.checkAgainstUpstream(t, "team-b")
}
