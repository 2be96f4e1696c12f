package e2e

import (
	"context"
	"fmt"
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
	page, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
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
// operator would, checking each step against the admin API and the traffic
// through the emulated Envoy.
func TestConsole(t *testing.T) {
	t.Parallel()
	s := newStack(t, baseConfig(memoryStore, `quota:
  consumers:
    team-a: {tokens: 20000, period: month}
`))
	admin := "http://" + s.tollgate.adminAddr
	b := newBrowser(t)
	ctx := context.Background()

	b.do("open the console", chromedp.Navigate(admin+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	t.Run("a wrong token is refused", func(t *testing.T) {
		b.do("log in with a wrong token",
			chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
			chromedp.Click(chromedp.ID("login")))
		get(b, "wait for the refusal", chromedp.Poll[bool](`document.querySelector('.login-error').textContent.includes('not the admin token')`))
	})
	b.do("log in",
		chromedp.Clear(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("nav")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-consumer="team-a"]`)))

	// A consumer of the config file: usage, top-up.
	b.do("open team-a", chromedp.Click(chromedp.CSS(`tr[data-consumer="team-a"] a`)), chromedp.WaitVisible(chromedp.ID("quota-remaining")))
	oa := openaiClient(s.envoy.URL, keyTeamA)
	for _, p := range []struct{ model, usage string }{
		{"gpt-4o", "input=1200,output=340"},
		{"gpt-4o-mini", "input=800,output=150"},
		{"gpt-4o", "input=420,output=95"},
	} {
		if _, err := oa.Chat.Completions.New(ctx, userChat(p.model, "Hello from the console test."), plan("usage", p.usage)...); err != nil {
			t.Fatalf("call as team-a: %v", err)
		}
	}
	s.checkAgainstUpstream(t, "team-a")
	want := s.llm.totals("team-a")
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
	if err := adminGet(t, s.tollgate.adminAddr, "/v1/quota/team-a", &before); err != nil {
		t.Fatal(err)
	}
	b.waitAttr("#quota-remaining", "data-value", strconv.FormatInt(before.Remaining, 10), "#refresh")
	b.do("top up 50000 tokens",
		chromedp.SendKeys(chromedp.ID("topup-amount"), "50000"),
		chromedp.Click(chromedp.ID("topup")))
	b.waitAttr("#quota-remaining", "data-value", strconv.FormatInt(before.Remaining+50000, 10), "")
	var after quota.QuotaStatus
	if err := adminGet(t, s.tollgate.adminAddr, "/v1/quota/team-a", &after); err != nil {
		t.Fatal(err)
	}
	if after.Remaining != before.Remaining+50000 {
		t.Errorf("after the top-up the admin API says %d tokens remain, want %d", after.Remaining, before.Remaining+50000)
	}

	b.do("reload the consumer view", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#usage svg.chart")), chromedp.WaitVisible(chromedp.ID("quota-remaining")))
	png := get(b, "take the screenshot", chromedp.FullScreenshot(100))
	if err := os.MkdirAll(filepath.Dir(consoleScreenshot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(consoleScreenshot, png, 0o644); err != nil {
		t.Fatalf("cannot save the screenshot: %v", err)
	}
}
