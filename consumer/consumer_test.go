package consumer

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/quota"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseSecret(t *testing.T) {
	plain := HashKey("sk-plain")
	tests := []struct {
		name, in string
		want     Hash
		wantErr  string
	}{
		{"plain key is hashed", "sk-plain", plain, ""},
		{"hash form is decoded", plain.String(), plain, ""},
		{"env reference is read and hashed", "env:KEY", plain, ""},
		{"unset env is an error", "env:MISSING", Hash{}, "MISSING is empty or unset"},
		{"short hash is an error", "sha256:abcd", Hash{}, "64 hex digits"},
		{"non-hex hash is an error", "sha256:" + strings.Repeat("zz", 32), Hash{}, "64 hex digits"},
		{"empty is an error", "", Hash{}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.in, env(map[string]string{"KEY": "sk-plain"}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestRegistryAuthenticates(t *testing.T) {
	r, err := NewRegistry(Options{Consumers: []Config{
		{Name: "team-a", Keys: []string{"sk-a1", HashKey("sk-a2").String()}},
		{Name: "team-b", Keys: []string{"env:B_KEY"}, Models: []string{"gpt-4o*"}},
	}, Getenv: env(map[string]string{"B_KEY": "sk-b"})})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"sk-a1": "team-a", "sk-a2": "team-a", "sk-b": "team-b"} {
		c, ok := r.Authenticate(key, time.Now())
		if !ok || c.Name != want {
			t.Errorf("Authenticate(%q) = %v, %v; want %s", key, c, ok, want)
		}
	}
	for _, key := range []string{"", "sk-a", "sk-a1 ", "SK-A1", HashKey("sk-a1").String()} {
		if c, ok := r.Authenticate(key, time.Now()); ok {
			t.Errorf("Authenticate(%q) = %s, want refusal", key, c.Name)
		}
	}
	if got := r.Names(); strings.Join(got, ",") != "team-a,team-b" {
		t.Errorf("Names() = %v", got)
	}
}

func TestAllowsModel(t *testing.T) {
	c := &Consumer{Name: "x", models: []string{"gpt-4o*", "claude-3-?-sonnet"}}
	for model, want := range map[string]bool{
		"gpt-4o": true, "gpt-4o-mini": true, "gpt-4": false, "claude-3-5-sonnet": true,
		"claude-3-opus": false, "": true, "GPT-4O": false,
	} {
		if got := c.AllowsModel(model); got != want {
			t.Errorf("AllowsModel(%q) = %v, want %v", model, got, want)
		}
	}
	if !(&Consumer{}).AllowsModel("anything") {
		t.Error("a consumer without an allow-list must allow every model")
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Validate("consumers", []Config{
		{Name: "", Keys: []string{"k1"}},
		{Name: "a", Keys: nil},
		{Name: "a", Keys: []string{"k1", "env:NOPE"}, Models: []string{"[bad"}, Tier: "gold"},
		{Name: "b{x}", Keys: []string{"k2"}},
	}, []TierConfig{{Name: "free"}, {Name: "free"}}, env(nil))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"consumers[0].name: must be set",
		"consumers[2].name: \"a\" is used twice",
		"consumers[2].keys[0]: the same key is already given to",
		"consumers[2].keys[1]: environment variable NOPE",
		"consumers[2].models[0]: bad glob",
		"consumers[2].tier: no tier named \"gold\"",
		"consumers[3].name: \"b{x}\" must not contain braces",
		"tiers[1].name: \"free\" is used twice",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors miss %q:\n%v", want, err)
		}
	}
}

func TestHashString(t *testing.T) {
	// The well-known SHA-256 of "test".
	const want = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	if got := HashKey("test").String(); got != want {
		t.Fatalf("HashKey(test) = %s, want %s", got, want)
	}
}

func i64(v int64) *int64 { return &v }

// TestTierResolution: what a consumer leaves unset comes from its tier.
func TestTierResolution(t *testing.T) {
	r, err := NewRegistry(Options{
		Tiers: []TierConfig{{
			Name: "free", Models: []string{"gpt-4o-mini"},
			Limits: limiter.Limits{TokenPerMinute: i64(1000), QueryPerMinute: i64(10)},
			Quota:  &quota.Allotment{Tokens: 100000, Period: quota.Month},
		}},
		Consumers: []Config{
			{Name: "plain", Keys: []string{"k1"}, Tier: "free"},
			{Name: "special", Keys: []string{"k2"}, Tier: "free", Models: []string{"gpt-4o*"},
				Limits: limiter.Limits{TokenPerMinute: i64(5000)}, Quota: &quota.Allotment{Tokens: 1}},
			{Name: "untiered", Keys: []string{"k3"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := r.Lookup("plain")
	special, _ := r.Lookup("special")
	untiered, _ := r.Lookup("untiered")
	if plain.AllowsModel("gpt-4o") || !plain.AllowsModel("gpt-4o-mini") || !special.AllowsModel("gpt-4o") {
		t.Error("models do not resolve consumer → tier")
	}
	for name, want := range map[string]int64{"plain": 100000, "special": 1} {
		own, tier := r.QuotaOf(name)
		got := tier
		if own != nil {
			got = own
		}
		if got == nil || got.Tokens != want {
			t.Errorf("%s quota = %v, want %d", name, got, want)
		}
	}
	if own, tier := r.QuotaOf("untiered"); own != nil || tier != nil {
		t.Error("untiered consumer has a quota")
	}
	limits := func(c *Consumer) map[string]int64 {
		m := map[string]int64{}
		for _, w := range c.Windows {
			m[limiter.WindowName(&w)] = w.Limit
		}
		return m
	}
	if got := limits(plain); got["tokens per minute"] != 1000 || got["requests per minute"] != 10 {
		t.Errorf("plain windows %v", got)
	}
	// The consumer's own token limit replaces the tier's; the tier's
	// request limit still applies.
	if got := limits(special); got["tokens per minute"] != 5000 || got["requests per minute"] != 10 {
		t.Errorf("special windows %v", got)
	}
	if len(untiered.Windows) != 0 {
		t.Errorf("untiered windows %v", untiered.Windows)
	}
}

// TestRuntimeKeys: issued keys authenticate until they expire or are
// revoked; a disabled consumer's keys do not authenticate at all.
func TestRuntimeKeys(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r, err := NewRegistry(Options{
		Consumers: []Config{{Name: "a", Keys: []string{"cfg-key"}}, {Name: "off", Keys: []string{"off-key"}, Disabled: true}},
		Keys: []Key{
			{ID: "k1", Consumer: "a", Hash: HashKey("sk-tg-live")},
			{ID: "k2", Consumer: "a", Hash: HashKey("sk-tg-expiring"), ExpiresAt: now.Add(time.Hour)},
			{ID: "k3", Consumer: "a", Hash: HashKey("sk-tg-revoked"), RevokedAt: now.Add(-time.Minute)},
			{ID: "k4", Consumer: "gone", Hash: HashKey("sk-tg-orphan")},
			{ID: "k5", Consumer: "off", Hash: HashKey("sk-tg-off")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		"cfg-key": true, "sk-tg-live": true, "sk-tg-expiring": true,
		"sk-tg-revoked": false, "sk-tg-orphan": false, "off-key": false, "sk-tg-off": false,
	} {
		if _, ok := r.Authenticate(key, now); ok != want {
			t.Errorf("Authenticate(%s) = %v, want %v", key, ok, want)
		}
	}
	if _, ok := r.Authenticate("sk-tg-expiring", now.Add(time.Hour)); ok {
		t.Error("an expired key still authenticates")
	}
}
