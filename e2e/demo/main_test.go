package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDemo runs the demo and makes the calls the README shows, checking
// that each answers as the README says.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type addrs struct{ envoy, admin string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-envoy-config", "../../envoy/envoy.yaml"},
			options{Stdout: &out, Stderr: io.Discard, Ready: func(e, a string) { ready <- addrs{e, a} }})
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("the demo did not start: %v", err)
	}
	base := "http://" + a.envoy
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}`
	call := func(method, path, key, body string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		if body != "" && !strings.HasPrefix(body, "{") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	if code, _, body := call("POST", "/v1/chat/completions", "sk-team-a-demo", chat); code != 200 || !strings.Contains(body, `"content":"hello `) {
		t.Errorf("completion: %d %s", code, body)
	}
	if code, _, body := call("POST", "/v1/chat/completions", "sk-wrong", chat); code != 401 {
		t.Errorf("unknown key: %d %s", code, body)
	}
	var codes []int
	var last http.Header
	for range 4 {
		code, h, _ := call("POST", "/v1/chat/completions", "sk-team-b-demo", chat)
		codes = append(codes, code)
		last = h
	}
	if codes[2] != 200 || codes[3] != 429 || last.Get("retry-after") == "" {
		t.Errorf("team-b's calls answered %v (the last with retry-after %q), want the 4th refused with retry-after", codes, last.Get("retry-after"))
	}
	if code, _, body := call("POST", "/v1/chat/completions", "sk-team-q-demo", chat); code != 403 {
		t.Errorf("empty quota: %d %s", code, body)
	}
	form := url.Values{"consumer": {"team-q"}, "value": {"1000"}}.Encode()
	if code, _, body := call("POST", "/v1/chat/completions/quota/delta", "sk-admin-demo", form); code != 200 || body != "delta quota successful" {
		t.Errorf("top-up: %d %s", code, body)
	}
	if code, _, body := call("GET", "/v1/chat/completions/quota?consumer=team-q", "sk-admin-demo", ""); code != 200 || body != `{"consumer":"team-q","quota":1000}` {
		t.Errorf("quota query: %d %s", code, body)
	}
	if code, _, body := call("POST", "/v1/chat/completions", "sk-team-q-demo", chat); code != 200 {
		t.Errorf("after the top-up: %d %s", code, body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("the demo did not stop cleanly: %v", err)
	}
	if !strings.Contains(out.String(), "/v1/chat/completions/quota/delta") {
		t.Errorf("the demo did not print the curl commands:\n%s", out.String())
	}
}
