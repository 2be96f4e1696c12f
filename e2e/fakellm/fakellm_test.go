package fakellm_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/e2e/fakellm"
)

// start runs a fake LLM behind an httptest server. Its client neither asks
// for nor undoes compression, so tests see the bytes as sent.
func start(t *testing.T, opts fakellm.Options) (*fakellm.Server, *httptest.Server, *http.Client) {
	t.Helper()
	s, err := fakellm.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts, &http.Client{Transport: &http.Transport{DisableCompression: true}}
}

func post(t *testing.T, c *http.Client, url, body string, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

type recordedCassette struct {
	Interactions []struct {
		Request struct {
			Body string `yaml:"body"`
			URL  string `yaml:"url"`
		} `yaml:"request"`
		Response struct {
			Body    string              `yaml:"body"`
			Headers map[string][]string `yaml:"headers"`
			Code    int                 `yaml:"code"`
		} `yaml:"response"`
	} `yaml:"interactions"`
}

func readCassette(t *testing.T, path string) recordedCassette {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c recordedCassette
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReplayByHeaderServesRecordedResponse replays every cassette by name and
// checks status, headers and body are the recorded ones, byte for byte.
func TestReplayByHeaderServesRecordedResponse(t *testing.T) {
	_, ts, c := start(t, fakellm.Options{})
	files, err := filepath.Glob("testdata/recorded/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cassettes: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			want := readCassette(t, f).Interactions[0]
			path := "/v1/" + want.Request.URL[strings.LastIndex(want.Request.URL, "/v1/")+4:]
			path, _, _ = strings.Cut(path, "?")
			resp, body, err := post(t, c, ts.URL+path, want.Request.Body, map[string]string{"x-fakellm-cassette": name})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != want.Response.Code {
				t.Errorf("status = %d, want %d", resp.StatusCode, want.Response.Code)
			}
			if !bytes.Equal(body, []byte(want.Response.Body)) {
				t.Errorf("body differs from the recording:\n got %q\nwant %q", body, want.Response.Body)
			}
			if got, w := resp.Header.Get("Content-Type"), want.Response.Headers["Content-Type"]; len(w) > 0 && got != w[0] {
				t.Errorf("Content-Type = %q, want %q", got, w[0])
			}
		})
	}
}

// TestReplayFindsCassetteByRequestBody matches recorded requests by body, also
// when a gateway added fields such as stream_options.
func TestReplayFindsCassetteByRequestBody(t *testing.T) {
	s, ts, c := start(t, fakellm.Options{})
	rec := readCassette(t, "testdata/recorded/chat-streaming.yaml").Interactions[0]
	var req map[string]any
	if err := json.Unmarshal([]byte(rec.Request.Body), &req); err != nil {
		t.Fatal(err)
	}
	req["stream_options"] = map[string]any{"include_usage": true}
	withOptions, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body, wantCassette string
	}{
		{"recorded body", rec.Request.Body, "chat-streaming"},
		{"recorded body plus stream_options", string(withOptions), "chat-streaming"},
		{"other prompt", `{"model":"gpt-5-nano","messages":[{"role":"user","content":"not recorded"}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := post(t, c, ts.URL+"/v1/chat/completions", tt.body, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, err %v", resp.StatusCode, err)
			}
			rep, ok := s.Reported(resp.Header.Get(fakellm.HeaderRequestID))
			if !ok {
				t.Fatal("request not in the ledger")
			}
			if rep.Cassette != tt.wantCassette {
				t.Errorf("cassette = %q, want %q", rep.Cassette, tt.wantCassette)
			}
			if tt.wantCassette != "" && !bytes.Equal(body, []byte(rec.Response.Body)) {
				t.Error("body is not the recorded one")
			}
		})
	}
}

// TestReplayLedgerHasProviderUsage checks the ledger reports the provider's
// own numbers for a recorded stream that carries usage.
func TestReplayLedgerHasProviderUsage(t *testing.T) {
	s, ts, c := start(t, fakellm.Options{})
	rec := readCassette(t, "testdata/recorded/chat-streaming-detailed-usage.yaml").Interactions[0]
	resp, body, err := post(t, c, ts.URL+"/v1/chat/completions", rec.Request.Body, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want gjson.Result
	for _, ev := range parseSSE(t, body) {
		if u := gjson.Get(ev.data, "usage"); u.IsObject() {
			want = u
		}
	}
	if !want.Exists() {
		t.Fatal("the recording has no usage chunk")
	}
	rep, _ := s.Reported(resp.Header.Get(fakellm.HeaderRequestID))
	if !rep.UsageSent || !rep.Completed || rep.Cassette != "chat-streaming-detailed-usage" {
		t.Errorf("report = %+v", rep)
	}
	if rep.Usage.Input != want.Get("prompt_tokens").Int() || rep.Usage.Output != want.Get("completion_tokens").Int() ||
		rep.Usage.Reasoning != want.Get("completion_tokens_details.reasoning_tokens").Int() {
		t.Errorf("ledger usage %+v, recorded %s", rep.Usage, want.Raw)
	}
}

type sseEvent struct{ name, data string }

func parseSSE(t *testing.T, body []byte) []sseEvent {
	t.Helper()
	var out []sseEvent
	for _, block := range strings.Split(string(body), "\n\n") {
		if strings.TrimSpace(block) == "" {
			continue
		}
		var ev sseEvent
		sc := bufio.NewScanner(strings.NewReader(block))
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				ev.name = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				ev.data = v
			} else {
				t.Fatalf("unexpected SSE line %q", line)
			}
		}
		out = append(out, ev)
	}
	return out
}

// TestRecordsRequestsAsReceived keeps every request with its headers and body,
// filed under the x-request-id it carried.
func TestRecordsRequestsAsReceived(t *testing.T) {
	s, ts, c := start(t, fakellm.Options{})
	body := `{"model":"m","messages":[{"role":"user","content":"x"}]}`
	resp, _, err := post(t, c, ts.URL+"/v1/chat/completions", body,
		map[string]string{"Authorization": "Bearer sk-provider", "x-request-id": "req-42"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get(fakellm.HeaderRequestID) != "req-42" {
		t.Errorf("filed under %q, want req-42", resp.Header.Get(fakellm.HeaderRequestID))
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	r := reqs[0]
	if r.ID != "req-42" || r.Path != "/v1/chat/completions" || string(r.Body) != body ||
		r.Header.Get("Authorization") != "Bearer sk-provider" {
		t.Errorf("recorded %+v", r)
	}
	if _, ok := s.Reported("req-42"); !ok {
		t.Error("no ledger entry for req-42")
	}
}

// TestRejectsBadPlans answers 400 when a header asks for something unknown.
func TestRejectsBadPlans(t *testing.T) {
	_, ts, c := start(t, fakellm.Options{})
	for _, hdr := range []map[string]string{
		{"x-fakellm-fault": "explode"},
		{"x-fakellm-chunks": "-1"},
		{"x-fakellm-usage": "input=x"},
		{"x-fakellm-cassette": "no-such-cassette"},
	} {
		resp, body, err := post(t, c, ts.URL+"/v1/chat/completions", `{"model":"m"}`, hdr)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode/100 != 4 {
			t.Errorf("%v: status %d %s", hdr, resp.StatusCode, body)
		}
	}
}
