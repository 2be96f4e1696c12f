package accounts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/internal/redistest"
	"github.com/tollgate-ai/tollgate/limiter"
)

func runtimeKey(id, owner, uid, key string) KeyRecord {
	return KeyRecord{ID: id, Consumer: owner, ConsumerUID: uid, Hash: consumer.HashKey(key), Prefix: key[:10], CreatedAt: time.Unix(1, 0)}
}

func TestMergePrecedence(t *testing.T) {
	snap := &Snapshot{
		Tiers: []TierRecord{
			{Name: "free", Limits: limiter.Limits{TokenPerMinute: ptr(int64(999999))}}, // the config declares free
			{Name: "pro", Limits: limiter.Limits{QueryPerMinute: ptr(int64(5))}},
		},
		Consumers: []ConsumerRecord{
			{Name: "ci", UID: "u-old-ci", Tier: "pro"}, // the config declares ci
			{Name: "acme", UID: "u-acme", Tier: "pro"},
			{Name: "lost", UID: "u-lost", Tier: "gold"}, // no such tier
		},
		States: map[string]StateRecord{"ci": {Disabled: true}},
		Keys: []KeyRecord{
			runtimeKey("key_acme", "acme", "u-acme", "sk-tg-acme-key-000000"),
			runtimeKey("key_ci", "ci", "", "sk-tg-ci-runtime-key-0"),
			runtimeKey("key_oldci", "ci", "u-old-ci", "sk-tg-old-ci-key-00000"),   // issued to the shadowed runtime ci
			runtimeKey("key_prev", "acme", "u-previous", "sk-tg-previous-acme-0"), // issued to an earlier acme
			runtimeKey("key_gone", "gone", "u-gone", "sk-tg-gone-key-000000"),     // its consumer was deleted
			runtimeKey("key_steal", "acme", "u-acme", configConsumerKey),          // ci's config key
		},
		Providers: []ProviderRecord{
			{Name: "openai", PathPrefix: "/x/", Header: "authorization"},  // the config declares openai
			{Name: "shadow", PathPrefix: "/v1/", Header: "authorization"}, // openai's route
			{Name: "anthropic", PathPrefix: "/anthropic/", Header: "x-api-key", RestSeconds: 7,
				Keys: []ProviderKeyRecord{{ID: "pk_1", Hint: "sk-…aaaa", Secret: Secret(providerKeys[0])}}},
		},
	}
	opts, providers, warnings := Merge(testBase(), snap)
	for _, want := range []string{
		`runtime tier "free" ignored: the config file declares it`,
		`runtime consumer "ci" ignored: the config file declares it`,
		`runtime consumer "lost" ignored`,
		`runtime provider "openai" ignored: the config file declares it`,
		`runtime provider "shadow" ignored: provider "openai" already serves path_prefix "/v1/"`,
		`key key_steal of consumer "acme" ignored: "ci" holds the same key`,
	} {
		if !strings.Contains(strings.Join(warnings, "\n"), want) {
			t.Errorf("warnings %q lack %q", warnings, want)
		}
	}
	r, err := consumer.NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	if tier, _ := r.Tier("free"); *tier.Limits.TokenPerMinute != 1000 {
		t.Error("the runtime tier free replaced the config's")
	}
	if _, ok := r.Lookup("lost"); ok {
		t.Error("a consumer of a missing tier was kept")
	}
	if ci, _ := r.Lookup("ci"); ci.Tier != "free" {
		t.Errorf("ci's tier = %q, want the config's free", ci.Tier)
	}
	now := time.Now()
	for key, want := range map[string]string{
		"sk-tg-acme-key-000000":  "acme",
		"sk-tg-ci-runtime-key-0": "", // ci is disabled through the API
		configConsumerKey:        "",
		"sk-tg-old-ci-key-00000": "",
		"sk-tg-previous-acme-0":  "",
		"sk-tg-gone-key-000000":  "",
	} {
		c, ok := r.Authenticate(key, now)
		if got := map[bool]string{true: "?", false: ""}[ok]; ok {
			got = c.Name
			if got != want {
				t.Errorf("%s authenticates %q, want %q", key, got, want)
			}
		} else if want != "" {
			t.Errorf("%s is refused, want %q", key, want)
		}
	}
	snap.States = nil
	opts, _, _ = Merge(testBase(), snap)
	r, _ = consumer.NewRegistry(opts)
	for _, key := range []string{"sk-tg-ci-runtime-key-0", configConsumerKey} {
		if c, ok := r.Authenticate(key, now); !ok || c.Name != "ci" {
			t.Errorf("enabled ci: %s… = %v, %v", key[:10], c, ok)
		}
	}

	if len(providers) != 2 || providers[0].Name != "openai" || providers[1].Name != "anthropic" {
		t.Fatalf("providers = %v", providers)
	}
	if a := providers[1]; a.Rest != 7*time.Second || a.Header != "x-api-key" || a.Source != SourceRuntime || a.Keys[0].Secret.Reveal() != providerKeys[0] {
		t.Errorf("anthropic = %+v", a)
	}
	if o := providers[0]; o.Rest != DefaultRest || o.Source != SourceConfig || o.Keys[0].ID != "env:OPENAI_KEY" {
		t.Errorf("openai = %+v", o)
	}
}

func TestMergeWithoutSnapshotIsTheConfig(t *testing.T) {
	opts, providers, warnings := Merge(testBase(), nil)
	if len(opts.Consumers) != 1 || len(opts.Tiers) != 1 || len(opts.Keys) != 0 || len(providers) != 1 || len(warnings) != 0 {
		t.Errorf("Merge(base, nil) = %+v, %v, %v", opts, providers, warnings)
	}
	base := testBase()
	base.Getenv = env(map[string]string{"CI_KEY": configConsumerKey})
	_, providers, warnings = Merge(base, nil)
	if len(providers[0].Keys) != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "OPENAI_KEY is empty or unset") {
		t.Errorf("a provider whose key is unset: %v, %v", providers, warnings)
	}
}

func TestChangeThatWouldDropARecordIsRefused(t *testing.T) {
	before := &Snapshot{
		Tiers:     []TierRecord{{Name: "pro"}},
		Consumers: []ConsumerRecord{{Name: "acme", UID: "u", Tier: "pro"}},
	}
	after := &Snapshot{Consumers: before.Consumers}
	err := checkChange(testBase(), merge(testBase(), before), after)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `runtime consumer "acme" ignored`) {
		t.Fatalf("checkChange = %v", err)
	}
	if err := checkChange(testBase(), merge(testBase(), after), after); err != nil {
		t.Errorf("a record that was already unusable blocks other changes: %v", err)
	}
}

func TestUnreadableRecordsAreReportedAndSkipped(t *testing.T) {
	srv := redistest.Start(t)
	rc := newRedisClient(t, srv.Addr())
	ctx := t.Context()
	rc.HSet(ctx, "tollgate:{accounts}:consumers", "broken", "{not json", "named", `{"name":"other","uid":"u"}`, "fine", `{"name":"fine","uid":"u"}`)
	rc.Set(ctx, "tollgate:{accounts}:version", "3", 0)
	logs := &logBuffer{}
	s := openStore(t, Config{EncryptionKeyEnv: testKeyEnv}, Options{Client: rc, Logger: logs.logger()}, true)
	snap := s.Snapshot()
	if snap.Version != 3 || len(snap.Consumers) != 1 || snap.Consumers[0].Name != "fine" || len(snap.Warnings) != 2 {
		t.Errorf("snapshot = %+v", snap)
	}
	if !strings.Contains(logs.String(), `consumers record \"broken\" ignored`) || !strings.Contains(logs.String(), `it names \"other\"`) {
		t.Errorf("logs:\n%s", logs)
	}
}
