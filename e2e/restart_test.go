package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate-ai/tollgate/e2e/fakellm"
	"github.com/tollgate-ai/tollgate/internal/redistest"
)

// streamResult is how one streamed call ended for its client.
type streamResult struct {
	text string
	err  error
}

// streamInBackground starts a slow streamed chat of n chunks and reports
// how it ended.
func streamInBackground(c openai.Client, n int, tag string) <-chan streamResult {
	out := make(chan streamResult, 1)
	go func() {
		opts := append(plan("chunks", fmt.Sprint(n), "delay", "40ms", "content", `"drain "`), option.WithHeader("x-e2e-tag", tag))
		st := c.Chat.Completions.NewStreaming(context.Background(), userChat("gpt-4o", "Keep talking while tollgate restarts."), opts...)
		var text strings.Builder
		for st.Next() {
			for _, ch := range st.Current().Choices {
				text.WriteString(ch.Delta.Content)
			}
		}
		out <- streamResult{text.String(), st.Err()}
	}()
	return out
}

// waitRequests waits until the fake LLM has received n requests.
func (u *upstream) waitRequests(t *testing.T, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d requests at the provider", n), func() error {
		if got := len(u.Requests()); got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// TestTollgateRestart runs tollgate as a process and restarts it during
// traffic. SIGTERM drains: the streams in flight finish for their clients
// and settle. A SIGKILL cuts the streams in flight (their clients see an
// error, never a clean end) and loses only their usage. Calls after each
// restart work, and the totals in Redis match the provider's report.
func TestTollgateRestart(t *testing.T) {
	t.Parallel()
	tollgateBinary(t)
	redis := redistest.Start(t)
	cfg := baseConfig(redisStore([]string{redis.Addr()}, "fail_closed", t.TempDir()), sharedLimits)
	path := writeConfig(t, t.TempDir(), cfg)
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	llm := startUpstream(t)
	log := newLog(t, "tollgate processes")
	first := startProcess(t, path, grpcAddr, adminAddr, log)
	env := startEnvoy(t, "envoy", grpcAddr, llm)
	c := openaiClient(env.URL, keyTeamB)
	call := func() error {
		_, err := c.Chat.Completions.New(context.Background(), userChat("gpt-4o", "Are you there?"), plan("chunks", "3")...)
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}

	// SIGTERM with four streams in flight.
	const drained, chunks = 4, 30
	var results []<-chan streamResult
	for range drained {
		results = append(results, streamInBackground(c, chunks, "drained"))
	}
	llm.waitRequests(t, 1+drained)
	first.signal(t, syscall.SIGTERM)
	for _, r := range results {
		res := <-r
		if res.err != nil {
			t.Errorf("a stream in flight at SIGTERM must finish: %v", res.err)
		} else if res.text != strings.Repeat("drain ", chunks) {
			t.Errorf("a drained stream delivered %q", res.text)
		}
	}
	if err := first.wait(t, 30*time.Second); err != nil {
		t.Errorf("a drained tollgate must exit cleanly: %v", err)
	}
	log.Write([]byte("==== restarted after SIGTERM ====\n"))
	second := startProcess(t, path, grpcAddr, adminAddr, log)
	eventually(t, "a call after the restart", call)
	for range 2 {
		if err := call(); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
	}
	expectTotals(t, adminAddr, "team-b", llm.totals("team-b"))

	// SIGKILL with two streams in flight.
	before := len(llm.Requests())
	const killed = 2
	results = results[:0]
	for range killed {
		results = append(results, streamInBackground(c, chunks, "killed"))
	}
	llm.waitRequests(t, before+killed)
	time.Sleep(200 * time.Millisecond) // a few chunks in
	second.signal(t, syscall.SIGKILL)
	for _, r := range results {
		res := <-r
		if res.err == nil && res.text == strings.Repeat("drain ", chunks) {
			t.Errorf("a stream whose ext_proc server died ended cleanly for its client; Envoy resets it")
		}
		if res.err == nil {
			t.Errorf("a stream cut by tollgate's death must end in an error for its client, got %d bytes and no error", len(res.text))
		}
	}
	_ = second.wait(t, 10*time.Second)
	log.Write([]byte("==== restarted after SIGKILL ====\n"))
	startProcess(t, path, grpcAddr, adminAddr, log)
	eventually(t, "a call after the restart", call)
	if err := call(); err != nil {
		t.Fatal(err)
	}
	// The killed process could not settle its streams: their usage is the
	// only thing missing.
	notKilled := func(r fakellm.Request) bool { return r.Header.Get("x-e2e-tag") != "killed" }
	expectTotals(t, adminAddr, "team-b", llm.totalsWhere("team-b", notKilled))
}
