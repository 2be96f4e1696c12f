package breaker

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigFromYAML(t *testing.T) {
	const doc = `
breaker:
  error_rate: 0.5
  min_requests: 20
  window: 30s
  slow_call: 0
  cool_down: 30s
  half_open_probes: 1
  max_cool_down: 5m
  providers:
    openai: {error_rate: 0.3}
    anthropic: {slow_call: 20s, cool_down: 10m}
    local: {disabled: true}
`
	var file struct {
		Breaker Config `yaml:"breaker"`
	}
	if err := yaml.Unmarshal([]byte(doc), &file); err != nil {
		t.Fatal(err)
	}
	c := file.Breaker
	if err := c.Validate("breaker"); err != nil {
		t.Fatal(err)
	}
	cc := compile(c)
	for _, tc := range []struct {
		provider string
		want     settings
	}{
		{"openai", settings{errorRate: 0.3, minRequests: 20, window: 30 * time.Second, coolDown: 30 * time.Second, maxCoolDown: 5 * time.Minute, probes: 1}},
		// A cool-down over the section's max_cool_down raises it.
		{"anthropic", settings{errorRate: 0.5, minRequests: 20, window: 30 * time.Second, slowCall: 20 * time.Second, coolDown: 10 * time.Minute, maxCoolDown: 10 * time.Minute, probes: 1}},
		{"local", settings{disabled: true, errorRate: 0.5, minRequests: 20, window: 30 * time.Second, coolDown: 30 * time.Second, maxCoolDown: 5 * time.Minute, probes: 1}},
		{"other", settings{errorRate: 0.5, minRequests: 20, window: 30 * time.Second, coolDown: 30 * time.Second, maxCoolDown: 5 * time.Minute, probes: 1}},
	} {
		if got := *cc.forProvider(tc.provider); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.provider, got, tc.want)
		}
	}
}

func TestEmptyConfigIsTheDefault(t *testing.T) {
	var c Config
	if err := c.Validate("breaker"); err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if compile(c).base != compile(d).base {
		t.Fatalf("zero config %+v, default %+v", compile(c).base, compile(d).base)
	}
}

func TestValidate(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	i := func(v int) *int { return &v }
	d := func(v time.Duration) *Duration { x := Duration(v); return &x }
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // every message expected, nothing else
	}{
		{"valid", Config{ErrorRate: 0.2, MinRequests: 5, Window: Duration(time.Minute), SlowCall: Duration(10 * time.Second)}, nil},
		{"everything wrong", Config{ErrorRate: 1.5, MinRequests: -1, Window: Duration(500 * time.Millisecond), SlowCall: Duration(-time.Second),
			CoolDown: Duration(-time.Second), HalfOpenProbes: 65, MaxCoolDown: Duration(-time.Minute)}, []string{
			"breaker.error_rate: must be > 0 and <= 1, got 1.5",
			"breaker.min_requests: must be >= 1, got -1",
			"breaker.window: must be at least 1s, got 500ms",
			"breaker.slow_call: must be >= 0, got -1s",
			"breaker.cool_down: must be > 0, got -1s",
			"breaker.half_open_probes: must be between 1 and 64, got 65",
			"breaker.max_cool_down: must be >= cool_down (-1s), got -1m0s",
		}},
		{"negative error rate", Config{ErrorRate: -0.1}, []string{"breaker.error_rate: must be > 0 and <= 1, got -0.1"}},
		{"max below cool-down", Config{CoolDown: Duration(time.Minute), MaxCoolDown: Duration(30 * time.Second)},
			[]string{"breaker.max_cool_down: must be >= cool_down (1m0s), got 30s"}},
		{"overrides", Config{Providers: map[string]Override{
			"openai": {ErrorRate: f(0), MinRequests: i(0)},
			"azure":  {HalfOpenProbes: i(0), Window: d(0), MaxCoolDown: d(time.Second)},
			"ok":     {SlowCall: d(0), CoolDown: d(time.Hour)},
			"":       {},
		}}, []string{
			"breaker.providers: a provider name must not be empty",
			"breaker.providers.azure.window: must be at least 1s, got 0s",
			"breaker.providers.azure.half_open_probes: must be between 1 and 64, got 0",
			"breaker.providers.azure.max_cool_down: must be >= cool_down (30s), got 1s",
			"breaker.providers.openai.error_rate: must be > 0 and <= 1, got 0",
			"breaker.providers.openai.min_requests: must be >= 1, got 0",
		}},
		{"broken section, sound override", Config{ErrorRate: 2, Providers: map[string]Override{"openai": {MinRequests: i(3)}}},
			[]string{"breaker.error_rate: must be > 0 and <= 1, got 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("breaker")
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// A config that skipped Validate still gives a working Set.
func TestNewClampsInvalidSettings(t *testing.T) {
	clk := newFakeClock()
	s := New(Config{ErrorRate: 7, MinRequests: -3, HalfOpenProbes: 1000, CoolDown: -1, Window: 1}, Options{Clock: clk.Now})
	call(t, s, "p", 500, time.Second)
	wantState(t, s, "p", Open) // min_requests 1
	wantReject(t, s, "p", DefaultCoolDown)
}

func TestDurationYAML(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want time.Duration
		err  string
	}{
		{"d: 30s", 30 * time.Second, ""},
		{"d: 1m30s", 90 * time.Second, ""},
		{"d: 250ms", 250 * time.Millisecond, ""},
		{"d: 0", 0, ""},
		{"d: 0.0", 0, ""},
		{`d: "0"`, 0, ""},
		{"d: 30", 0, "line 1: duration 30 needs a unit, e.g. 30s or 30ms"},
		{"d: soon", 0, `line 1: time: invalid duration "soon"`},
		{"d: [1]", 0, "line 1: a duration must be a value like 30s"},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			var v struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte(tc.doc), &v)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || time.Duration(v.D) != tc.want {
				t.Fatalf("got %v, %v; want %v", v.D, err, tc.want)
			}
			out, err := yaml.Marshal(v)
			if err != nil || strings.TrimSpace(string(out)) != "d: "+tc.want.String() {
				t.Fatalf("marshal: %q, %v", out, err)
			}
		})
	}
}

// Whatever a config file says, reading a duration fails cleanly or gives a
// value that is written back and read again unchanged.
func FuzzDurationYAML(f *testing.F) {
	for _, s := range []string{"30s", "0", "0.0", "1h2m3.5s", "-5m", "30", "[1]", "{a: b}", `"0"`, "1e400", "!!int 7", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v struct {
			D Duration `yaml:"d"`
		}
		if err := yaml.Unmarshal([]byte("d: "+s), &v); err != nil {
			return
		}
		out, err := yaml.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %v: %v", v.D, err)
		}
		var back struct {
			D Duration `yaml:"d"`
		}
		if err := yaml.Unmarshal(out, &back); err != nil || back.D != v.D {
			t.Fatalf("%q read as %v, written %q, read back %v (%v)", s, v.D, out, back.D, err)
		}
	})
}
