package fakellm_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/e2e/fakellm"
)

// TestSynthChatStreamingUsage checks OpenAI's include_usage contract and the
// usage faults on a synthesized chat stream.
func TestSynthChatStreamingUsage(t *testing.T) {
	tests := []struct {
		name          string
		includeUsage  bool
		fault         string
		wantUsage     bool
		wantNullUsage bool
	}{
		{"no include_usage: no usage at all", false, "", false, false},
		{"include_usage: null on chunks, numbers at the end", true, "", true, true},
		{"omit-usage: asked but not sent", true, "omit-usage", false, true},
		{"null-usage: null everywhere, never numbers", false, "null-usage", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts, c := start(t, fakellm.Options{})
			body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"three words here"}]`
			if tt.includeUsage {
				body += `,"stream_options":{"include_usage":true}`
			}
			hdr := map[string]string{"x-fakellm-chunks": "7", "x-fakellm-content": `"ab "`}
			if tt.fault != "" {
				hdr["x-fakellm-fault"] = tt.fault
			}
			resp, raw, err := post(t, c, ts.URL+"/v1/chat/completions", body+"}", hdr)
			if err != nil {
				t.Fatal(err)
			}
			evs := parseSSE(t, raw)
			if evs[len(evs)-1].data != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]: %q", evs[len(evs)-1].data)
			}
			var text strings.Builder
			var usage gjson.Result
			for _, ev := range evs[:len(evs)-1] {
				text.WriteString(gjson.Get(ev.data, "choices.0.delta.content").String())
				u := gjson.Get(ev.data, "usage")
				if tt.wantNullUsage && !u.IsObject() && u.Type != gjson.Null {
					t.Errorf("chunk without \"usage\": null: %s", ev.data)
				}
				if u.IsObject() {
					usage = u
				}
				if !tt.wantNullUsage && u.Exists() {
					t.Errorf("chunk has a usage field: %s", ev.data)
				}
			}
			if got := text.String(); got != strings.Repeat("ab ", 7) {
				t.Errorf("text = %q", got)
			}
			rep, _ := s.Reported(resp.Header.Get(fakellm.HeaderRequestID))
			if rep.Chunks != 7 || !rep.Completed || rep.Usage.Input != 3 || rep.Usage.Output != 7 {
				t.Errorf("report = %+v", rep)
			}
			if rep.UsageSent != tt.wantUsage || usage.Exists() != tt.wantUsage {
				t.Fatalf("usage sent = %v (report %v), want %v", usage.Exists(), rep.UsageSent, tt.wantUsage)
			}
			if tt.wantUsage && (usage.Get("prompt_tokens").Int() != rep.Usage.Input || usage.Get("completion_tokens").Int() != rep.Usage.Output ||
				usage.Get("total_tokens").Int() != rep.Usage.Total()) {
				t.Errorf("wire usage %s differs from the ledger %+v", usage.Raw, rep.Usage)
			}
		})
	}
}

// TestSynthNonStreamedUsageMatchesLedger checks each API's non-streamed body
// reports the ledger's numbers in that API's own fields.
func TestSynthNonStreamedUsageMatchesLedger(t *testing.T) {
	u := "input=40,output=9,cached=10,cache_creation=5,reasoning=3"
	tests := []struct {
		path, body string
		check      func(g gjson.Result, u fakellm.Usage) bool
	}{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, func(g gjson.Result, u fakellm.Usage) bool {
			return g.Get("usage.prompt_tokens").Int() == u.Input && g.Get("usage.completion_tokens").Int() == u.Output &&
				g.Get("usage.prompt_tokens_details.cached_tokens").Int() == u.CachedInput &&
				g.Get("usage.completion_tokens_details.reasoning_tokens").Int() == u.Reasoning
		}},
		{"/v1/completions", `{"model":"m","prompt":"hi"}`, func(g gjson.Result, u fakellm.Usage) bool {
			return g.Get("usage.prompt_tokens").Int() == u.Input && g.Get("usage.completion_tokens").Int() == u.Output
		}},
		{"/v1/responses", `{"model":"m","input":"hi"}`, func(g gjson.Result, u fakellm.Usage) bool {
			return g.Get("usage.input_tokens").Int() == u.Input && g.Get("usage.output_tokens").Int() == u.Output &&
				g.Get("usage.total_tokens").Int() == u.Total()
		}},
		{"/v1/embeddings", `{"model":"m","input":["a b","c"]}`, func(g gjson.Result, u fakellm.Usage) bool {
			return g.Get("usage.prompt_tokens").Int() == u.Input && len(g.Get("data").Array()) == 2
		}},
		{"/v1/messages", `{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, func(g gjson.Result, u fakellm.Usage) bool {
			return g.Get("usage.input_tokens").Int()+g.Get("usage.cache_read_input_tokens").Int()+
				g.Get("usage.cache_creation_input_tokens").Int() == u.Input &&
				g.Get("usage.cache_read_input_tokens").Int() == u.CachedInput && g.Get("usage.output_tokens").Int() == u.Output
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			s, ts, c := start(t, fakellm.Options{})
			resp, body, err := post(t, c, ts.URL+tt.path, tt.body, map[string]string{"x-fakellm-usage": u})
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d err %v: %s", resp.StatusCode, err, body)
			}
			rep, _ := s.Reported(resp.Header.Get(fakellm.HeaderRequestID))
			if !rep.UsageSent || rep.Stream || rep.Usage.Input != 40 {
				t.Errorf("report = %+v", rep)
			}
			if !tt.check(gjson.ParseBytes(body), rep.Usage) {
				t.Errorf("body %s does not report %+v", body, rep.Usage)
			}
		})
	}
}

// TestSynthResponsesStream checks the Responses API event sequence: deltas,
// then response.completed with the usage.
func TestSynthResponsesStream(t *testing.T) {
	s, ts, c := start(t, fakellm.Options{})
	resp, body, err := post(t, c, ts.URL+"/v1/responses", `{"model":"gpt-4o","stream":true,"input":"one two"}`,
		map[string]string{"x-fakellm-chunks": "4", "x-fakellm-usage": "input=2,output=4,cached=1,reasoning=1"})
	if err != nil {
		t.Fatal(err)
	}
	evs := parseSSE(t, body)
	var names []string
	deltas := 0
	for i, ev := range evs {
		if got := gjson.Get(ev.data, "sequence_number").Int(); got != int64(i) {
			t.Errorf("event %d has sequence_number %d", i, got)
		}
		if gjson.Get(ev.data, "type").String() != ev.name {
			t.Errorf("event %q has type %q", ev.name, gjson.Get(ev.data, "type"))
		}
		if ev.name == "response.output_text.delta" {
			deltas++
			continue
		}
		names = append(names, ev.name)
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if strings.Join(names, ",") != strings.Join(want, ",") || deltas != 4 {
		t.Errorf("events = %v with %d deltas", names, deltas)
	}
	done := gjson.Get(evs[len(evs)-1].data, "response.usage")
	rep, _ := s.Reported(resp.Header.Get(fakellm.HeaderRequestID))
	if done.Get("input_tokens").Int() != 2 || done.Get("output_tokens").Int() != 4 ||
		done.Get("input_tokens_details.cached_tokens").Int() != 1 || !rep.UsageSent {
		t.Errorf("completed usage %s, report %+v", done.Raw, rep)
	}
	if u := gjson.Get(evs[0].data, "response.usage"); u.Type != gjson.Null {
		t.Errorf("response.created carries usage %s, want null", u.Raw)
	}
}

// TestSynthAnthropicStream checks the Messages event sequence and that the
// input side (with cache reads apart) and output side add up to the ledger.
func TestSynthAnthropicStream(t *testing.T) {
	s, ts, c := start(t, fakellm.Options{})
	resp, body, err := post(t, c, ts.URL+"/v1/messages", `{"model":"claude-sonnet-4","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"x-fakellm-chunks": "3", "x-fakellm-usage": "input=30,output=3,cached=20,cache_creation=4"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var start, delta gjson.Result
	for _, ev := range parseSSE(t, body) {
		names = append(names, ev.name)
		switch ev.name {
		case "message_start":
			start = gjson.Get(ev.data, "message.usage")
		case "message_delta":
			delta = gjson.Get(ev.data, "usage")
		}
	}
	want := "message_start,content_block_start,ping,content_block_delta,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop"
	if strings.Join(names, ",") != want {
		t.Errorf("events = %v", names)
	}
	if start.Get("input_tokens").Int() != 6 || start.Get("cache_read_input_tokens").Int() != 20 ||
		start.Get("cache_creation_input_tokens").Int() != 4 || delta.Get("output_tokens").Int() != 3 {
		t.Errorf("message_start usage %s, message_delta usage %s", start.Raw, delta.Raw)
	}
	rep, _ := s.Reported(resp.Header.Get(fakellm.HeaderRequestID))
	if rep.Usage.Input != 30 || rep.Usage.Output != 3 || !rep.UsageSent || rep.Text != "tok tok tok " {
		t.Errorf("report = %+v", rep)
	}
}

// TestGzipFault compresses like a provider: only when the request accepts
// gzip, unless gzip-always; the stream decompresses to the plain stream.
func TestGzipFault(t *testing.T) {
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`
	tests := []struct {
		name, fault, accept string
		wantGzip            bool
	}{
		{"gzip accepted", "gzip", "gzip, deflate", true},
		{"gzip not accepted", "gzip", "identity", false},
		{"gzip-always", "gzip-always", "identity", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts, c := start(t, fakellm.Options{})
			resp, raw, err := post(t, c, ts.URL+"/v1/chat/completions", body,
				map[string]string{"x-fakellm-fault": tt.fault, "Accept-Encoding": tt.accept, "x-fakellm-content": "z"})
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tt.wantGzip {
				t.Fatalf("Content-Encoding = %q", resp.Header.Get("Content-Encoding"))
			}
			if tt.wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				if raw, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if evs := parseSSE(t, raw); evs[len(evs)-1].data != "[DONE]" || len(evs) != 8 {
				t.Errorf("decoded stream has %d events: %q", len(evs), raw)
			}
		})
	}
}

// TestCutAfterAbortsTheConnection checks that the client sees the stream break
// after N content chunks and that the ledger says it was not completed.
func TestCutAfterAbortsTheConnection(t *testing.T) {
	for _, path := range []string{"/v1/chat/completions", "/v1/messages", "/v1/responses"} {
		t.Run(path, func(t *testing.T) {
			s, ts, c := start(t, fakellm.Options{})
			resp, raw, err := post(t, c, ts.URL+path,
				`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`,
				map[string]string{"x-fakellm-fault": "cut-after=2", "x-fakellm-chunks": "5", "x-fakellm-content": "Q"})
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("read error = %v, want unexpected EOF", err)
			}
			if got := strings.Count(string(raw), `Q"`); got != 2 {
				t.Errorf("client got %d content chunks before the cut, want 2: %q", got, raw)
			}
			rep, _ := s.Reported(resp.Header.Get(fakellm.HeaderRequestID))
			if rep.Completed || rep.UsageSent || rep.Chunks != 2 {
				t.Errorf("report = %+v", rep)
			}
		})
	}
}

// TestStatusFaultsUseProviderErrorFormat fails requests the way each provider does.
func TestStatusFaultsUseProviderErrorFormat(t *testing.T) {
	tests := []struct {
		path     string
		status   int
		wantType string
		typePath string
	}{
		{"/v1/chat/completions", 429, "requests", "error.type"},
		{"/v1/chat/completions", 500, "server_error", "error.type"},
		{"/v1/messages", 429, "rate_limit_error", "error.type"},
		{"/v1/messages", 500, "api_error", "error.type"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+http.StatusText(tt.status), func(t *testing.T) {
			s, ts, c := start(t, fakellm.Options{})
			resp, body, err := post(t, c, ts.URL+tt.path, `{"model":"m"}`,
				map[string]string{"x-fakellm-fault": "status=" + strconv.Itoa(tt.status)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || gjson.GetBytes(body, tt.typePath).String() != tt.wantType {
				t.Errorf("got %d %s", resp.StatusCode, body)
			}
			if tt.status == 429 && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			if rep, _ := s.Reported(resp.Header.Get(fakellm.HeaderRequestID)); rep.Status != tt.status || rep.UsageSent {
				t.Errorf("report = %+v", rep)
			}
		})
	}
}

// TestSplitAndDelayKeepTheBytes checks that pacing and small writes change
// how the stream travels, not what it says.
func TestSplitAndDelayKeepTheBytes(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var slept []time.Duration
	opts := fakellm.Options{
		Now: func() time.Time { return now },
		Sleep: func(_ <-chan struct{}, d time.Duration) error {
			slept = append(slept, d)
			return nil
		},
	}
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`
	get := func(hdr map[string]string) string {
		_, ts, c := start(t, opts)
		_, raw, err := post(t, c, ts.URL+"/v1/chat/completions", body, hdr)
		if err != nil {
			t.Fatal(err)
		}
		// Ids are random per request; compare the rest.
		return gjsonStrip(string(raw))
	}
	plain := get(map[string]string{"x-fakellm-chunks": "6"})
	split := get(map[string]string{"x-fakellm-chunks": "6", "x-fakellm-split": "3", "x-fakellm-delay": "15ms"})
	if plain != split {
		t.Errorf("split/delayed stream differs:\n%s\n%s", plain, split)
	}
	if len(slept) != 12 || slept[len(slept)-1] != 15*time.Millisecond {
		t.Errorf("slept %v, want 6 zero pauses then 6 of 15ms", slept)
	}
}

func gjsonStrip(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok && gjson.Valid(d) {
			m := gjson.Parse(d).Value().(map[string]any)
			delete(m, "id")
			b, _ := json.Marshal(m)
			line = "data: " + string(b)
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
