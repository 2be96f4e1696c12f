package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	adminpkg "github.com/tollgate-ai/tollgate/admin"
	"github.com/tollgate-ai/tollgate/quota"
)

// consoleScreenshot is where the browser test leaves the picture of the
// consumer view that the README shows.
const consoleScreenshot = "../docs/console.png"

// chromiumPath finds the headless browser, failing the test with how to
// install it: the console's test never skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console test needs Chromium: run `make deps` (installs the Debian package chromium as root) " +
		"or `sudo apt-get install -y chromium`")
	return ""
}

// browser is one headless Chromium tab with a fresh profile.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	log := newLog(t, "chromium")
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(func(f string, a ...any) { fmt.Fprintf(log, f+"\n", a...) }))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("cannot start Chromium: %v", err)
	}
	// Any script error in the console fails the test, even one the steps
	// below would not notice.
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	var mu sync.Mutex
	var thrown []string
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			mu.Lock()
			thrown = append(thrown, exceptionText(ev))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range thrown {
			t.Errorf("the console threw: %s", e)
		}
	})
	// Accept the confirm() of destructive actions, as the operator would.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return &browser{t: t, ctx: ctx}
}

func exceptionText(ev runtime.EventExceptionThrown) string {
	d := ev.ExceptionDetails
	if d == nil {
		return "unknown exception"
	}
	msg := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		msg += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d:%d)", msg, d.URL, d.LineNumber, d.ColumnNumber)
}

// fail ends the test with what was being done and the page's text.
func (b *browser) fail(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	b.t.Fatalf("%s: %v\nthe page shows:\n%s", what, err, page)
}

// do runs browser actions, failing the test with what was being done.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

// get runs one browser action that returns a value.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// text returns the text of the first element matching sel, once visible.
func (b *browser) text(sel string) string {
	b.t.Helper()
	b.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	return strings.TrimSpace(get(b, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// waitAttr waits until the element sel has attribute attr equal to want,
// re-rendering the view by clicking refresh (when set) between looks.
func (b *browser) waitAttr(sel, attr, want, refresh string) {
	b.t.Helper()
	deadline := time.Now().Add(settleWait)
	for {
		b.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
		got := get(b, "read "+sel+"["+attr+"]", chromedp.AttributeValue(chromedp.CSS(sel), attr))
		if got.Value == want {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s[%s] is %q, want %q", sel, attr, got.Value, want)
		}
		if refresh != "" {
			b.do("refresh with "+refresh, chromedp.Click(chromedp.CSS(refresh)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConsole drives the web console in headless Chromium the way an
// operator would — log in, create a consumer, issue it a key, watch its
// usage, top it up, revoke the key — and checks each step against the admin
// API and the traffic through the emulated Envoy.
func TestConsole(t *testing.T) {
	t.Parallel()
	s := newStack(t, baseConfig(memoryStore, `tiers:
  - name: standard
    limits: {token_per_minute: 100000, query_per_minute: 60}
`))
	admin := "http://" + s.tollgate.adminAddr
	b := newBrowser(t)
	ctx := context.Background()
	const name = "acme"

	b.do("open the console", chromedp.Navigate(admin+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	b.do("log in with a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Click(chromedp.ID("login")))
	get(b, "wait for the refusal", chromedp.Poll[bool](`document.querySelector('.login-error').textContent.includes('not the admin token')`))
	b.do("log in",
		chromedp.Clear(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("nav")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-consumer="team-a"]`)))

	const upstreamKey = "sk-upstream-set-in-the-console"
	b.do("add a provider",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="providers"]`)),
		chromedp.WaitVisible(chromedp.ID("provider-name")),
		chromedp.SendKeys(chromedp.ID("provider-name"), "openai"),
		chromedp.SendKeys(chromedp.ID("provider-prefix"), "/v1/"),
		chromedp.SendKeys(chromedp.ID("provider-keys"), upstreamKey),
		chromedp.Click(chromedp.ID("create-provider")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-provider="openai"] .keychip`)))
	if shown := b.text(`tr[data-provider="openai"]`); strings.Contains(shown, upstreamKey) {
		t.Errorf("the providers view shows the provider's key: %s", shown)
	}

	b.do("open the consumers", chromedp.Click(chromedp.CSS(`#nav a[data-view="consumers"]`)), chromedp.WaitVisible(chromedp.ID("new-consumer-name")))
	b.do("create a consumer with a monthly quota",
		chromedp.SendKeys(chromedp.ID("new-consumer-name"), name),
		chromedp.SetValue(chromedp.ID("new-consumer-tier"), "standard"),
		chromedp.SendKeys(chromedp.ID("new-consumer-quota"), "20000"),
		chromedp.Click(chromedp.ID("create-consumer")),
		chromedp.WaitVisible(chromedp.ID("issue-key")))
	var c struct {
		Name   string `json:"name"`
		Tier   string `json:"tier"`
		Source string `json:"source"`
	}
	if err := adminGet(t, s.tollgate.adminAddr, "/v1/consumers/"+name, &c); err != nil || c.Source != "runtime" || c.Tier != "standard" {
		t.Fatalf("the admin API does not show the consumer the console created: %+v, %v", c, err)
	}

	b.do("issue a key", chromedp.SendKeys(chromedp.ID("key-label"), "ci"), chromedp.Click(chromedp.ID("issue-key")))
	key := b.text("#new-key")
	if !strings.HasPrefix(key, "sk-tg-") {
		t.Fatalf("the console shows the new key as %q, want sk-tg-…", key)
	}
	b.do("issue a second key, expiring",
		chromedp.SendKeys(chromedp.ID("key-label"), "notebook"),
		chromedp.SetValue(chromedp.ID("key-expires"), "2592000"),
		chromedp.Click(chromedp.ID("issue-key")),
		chromedp.WaitVisible(chromedp.CSS(`#keys tbody tr:nth-child(2)`)))

	oa := openaiClient(s.envoy.URL, key)
	for _, p := range []struct{ model, usage string }{
		{"gpt-4o", "input=1200,output=340"},
		{"gpt-4o-mini", "input=800,output=150"},
		{"gpt-4o", "input=420,output=95"},
	} {
		if _, err := oa.Chat.Completions.New(ctx, userChat(p.model, "Hello from the console test."), plan("usage", p.usage)...); err != nil {
			t.Fatalf("call with the key issued in the console: %v", err)
		}
	}
	s.checkAgainstUpstream(t, name)
	for _, r := range s.llm.Requests() {
		if got := r.Header.Get("Authorization"); got != "Bearer "+upstreamKey {
			t.Errorf("the provider got Authorization %q, want the key added in the console", got)
		}
	}
	// The breaker's window is short: look at the provider's health now.
	b.do("open the providers", chromedp.Click(chromedp.CSS(`#nav a[data-view="providers"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-health="openai"]`)))
	upstream := strconv.Itoa(len(s.llm.Requests()))
	if got := get(b, "read the provider's requests", chromedp.AttributeValue(chromedp.CSS(`tr[data-health="openai"]`), "data-requests")); got.Value != upstream {
		t.Errorf("the provider's health shows %q requests, want the %s the provider answered", got.Value, upstream)
	}
	if health := b.text(`tr[data-health="openai"]`); !strings.Contains(health, "closed") {
		t.Errorf("the provider's health row %q does not show its closed breaker", health)
	}
	b.do("back to the consumer", chromedp.Navigate(admin+"/console/#/consumers/"+name), chromedp.WaitVisible(chromedp.ID("usage-total")))
	want := s.llm.totals(name)
	b.waitAttr("#usage-total", "data-tokens", strconv.FormatInt(want.Input+want.Output, 10), "#refresh")
	perModel := b.text("#usage table")
	for _, m := range []string{"gpt-4o", "gpt-4o-mini"} {
		if !strings.Contains(perModel, m) {
			t.Errorf("the usage table lists no %s:\n%s", m, perModel)
		}
	}
	if n := get(b, "count the chart's bars", chromedp.Evaluate[int](`document.querySelectorAll('#usage svg.chart rect').length`)); n != 2 {
		t.Errorf("today's bar has %d segments, want one per model (2)", n)
	}

	var before quota.QuotaStatus
	if err := adminGet(t, s.tollgate.adminAddr, "/v1/quota/"+name, &before); err != nil {
		t.Fatal(err)
	}
	if spent := 20000 - before.Remaining; spent != want.Input+want.Output {
		t.Errorf("the quota went down by %d, want the %d tokens used", spent, want.Input+want.Output)
	}
	b.waitAttr("#quota-remaining", "data-value", strconv.FormatInt(before.Remaining, 10), "#refresh")
	b.do("top up 50000 tokens",
		chromedp.SendKeys(chromedp.ID("topup-amount"), "50000"),
		chromedp.Click(chromedp.ID("topup")))
	b.waitAttr("#quota-remaining", "data-value", strconv.FormatInt(before.Remaining+50000, 10), "")
	var after quota.QuotaStatus
	if err := adminGet(t, s.tollgate.adminAddr, "/v1/quota/"+name, &after); err != nil {
		t.Fatal(err)
	}
	if after.Remaining != before.Remaining+50000 {
		t.Errorf("after the top-up the admin API says %d tokens remain, want %d", after.Remaining, before.Remaining+50000)
	}

	b.do("reload the consumer view", chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#usage svg.chart")), chromedp.WaitVisible(chromedp.ID("quota-remaining")),
		chromedp.WaitVisible(chromedp.CSS(`#keys tbody tr:nth-child(2)`)))
	saveScreenshot(t, get(b, "take the screenshot", chromedp.FullScreenshot(100)))

	b.do("revoke the first key",
		chromedp.Click(chromedp.CSS(`#keys tr[data-label="ci"] button[data-revoke]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys tr[data-label="ci"] .badge.off`)))
	eventually(t, "the revoked key is refused", func() error {
		_, err := oa.Chat.Completions.New(ctx, userChat("gpt-4o", "Still there?"), plan("usage", "input=10,output=5")...)
		if err == nil {
			return fmt.Errorf("a request with the revoked key was let through")
		}
		if _, status := apiStatus(t, err); status != 401 {
			return fmt.Errorf("a request with the revoked key got %d, want 401", status)
		}
		return nil
	})

	b.do("log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("token")))
	if status := get(b, "call the API after logout", chromedp.Evaluate[int](`fetch('../v1/consumers').then((r) => r.status)`, chromedp.EvalAwaitPromise)); status != 401 {
		t.Errorf("after logout the browser's API call got %d, want 401", status)
	}
}

// saveScreenshot writes the picture of the console the README shows when
// TOLLGATE_UPDATE_SCREENSHOT=1 (make screenshot); otherwise into the test's
// own directory, so a test run leaves the tree as it was.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("the screenshot is not a PNG picture (%d bytes)", len(png))
	}
	path := consoleScreenshot
	if os.Getenv("TOLLGATE_UPDATE_SCREENSHOT") != "1" {
		path = filepath.Join(t.TempDir(), "console.png")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("cannot save the screenshot: %v", err)
	}
}

// TestConsoleWithoutAccounts checks that each view of a tollgate whose admin
// API lacks some endpoints (here: only quotas and usage) says so and keeps
// the rest working.
func TestConsoleWithoutAccounts(t *testing.T) {
	t.Parallel()
	api := http.NewServeMux()
	const teamA = `{"consumer":"team-a","period":"month","allotment":1000,"remaining":250,"period_usage_tokens":750}`
	api.HandleFunc("GET /v1/quota", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"quotas":[`+teamA+`]}`)
	})
	api.HandleFunc("GET /v1/quota/team-a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, teamA)
	})
	api.HandleFunc("GET /v1/usage", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"consumer":%q,"days":[],"total":{"total_tokens":0,"requests":0}}`, r.URL.Query().Get("consumer"))
	})
	h, err := adminpkg.New(adminpkg.Options{Config: adminpkg.Config{Token: adminToken}, API: api})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	b.do("log in",
		chromedp.Navigate(srv.URL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-consumer="team-a"]`)))
	for _, tc := range []struct{ view, want string }{
		{"consumers", "Consumer management is not available"},
		{"tiers", "Tier management is not available"},
		{"providers", "Provider health is not available"},
		{"providers", "Provider management is not available"},
	} {
		b.do("open "+tc.view, chromedp.Navigate(srv.URL+"/console/#/"+tc.view), chromedp.WaitVisible(chromedp.CSS("main .notice.warn")))
		if got := b.text("main"); !strings.Contains(got, tc.want) {
			t.Errorf("the %s view does not say %q:\n%s", tc.view, tc.want, got)
		}
	}
	b.do("open team-a", chromedp.Navigate(srv.URL+"/console/#/consumers/team-a"), chromedp.WaitVisible(chromedp.ID("quota-remaining")))
	if got := b.text("#keys"); !strings.Contains(got, "Key management is not available") {
		t.Errorf("the keys card does not say that keys cannot be managed:\n%s", got)
	}
	if got := b.text("#quota-remaining"); got != "250" {
		t.Errorf("the quota card shows %q tokens left, want 250", got)
	}
}
