package accounts

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestAPITiers(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			c := newAPIClient(t, APIOptions{Store: kind.open(t, &logBuffer{}), Base: testBase})

			var list struct{ Tiers []TierInfo }
			c.want(http.StatusOK, "GET", "/v1/tiers", nil, &list)
			if len(list.Tiers) != 1 || list.Tiers[0].Name != "free" || list.Tiers[0].Source != SourceConfig {
				t.Fatalf("tiers = %+v, want the config tier free", list.Tiers)
			}

			pro := `{"name":"pro","models":["gpt-4o*"],"limits":{"token_per_minute":50000,"query_per_minute":100},"quota":{"tokens":1000000,"period":"month","timezone":"Europe/Paris","per_model":true}}`
			code, data := c.do("POST", "/v1/tiers", pro)
			if code != http.StatusCreated {
				t.Fatalf("POST /v1/tiers: %d %s", code, data)
			}
			if got, want := fields(t, data), []string{"limits", "models", "name", "quota", "source"}; !slices.Equal(got, want) {
				t.Errorf("tier fields = %v, want %v", got, want)
			}
			var got TierInfo
			c.want(http.StatusOK, "GET", "/v1/tiers/pro", nil, &got)
			if got.Source != SourceRuntime || *got.Limits.TokenPerMinute != 50000 || *got.Limits.QueryPerMinute != 100 ||
				got.Quota == nil || got.Quota.Tokens != 1000000 || got.Quota.Period != "month" || got.Quota.Timezone != "Europe/Paris" || !got.Quota.PerModel ||
				!slices.Equal(got.Models, []string{"gpt-4o*"}) {
				t.Errorf("GET /v1/tiers/pro = %+v", got)
			}

			c.wantError(http.StatusConflict, "POST", "/v1/tiers", pro, "already exists")
			c.wantError(http.StatusConflict, "POST", "/v1/tiers", `{"name":"free"}`, "already exists")
			for _, bad := range []struct{ name, body, msg string }{
				{"no name", `{"models":[]}`, "name: must be set"},
				{"slash in name", `{"name":"a/b"}`, "must not contain braces, slashes"},
				{"brace in name", `{"name":"a{b"}`, "must not contain braces, slashes"},
				{"bad glob", `{"name":"x","models":["[a"]}`, "models[0]: bad glob"},
				{"zero limit", `{"name":"x","limits":{"token_per_minute":0}}`, "token_per_minute must be > 0"},
				{"bad period", `{"name":"x","quota":{"tokens":5,"period":"year"}}`, "quota.period"},
				{"bad zone", `{"name":"x","quota":{"tokens":5,"timezone":"Mars/Base"}}`, "quota.timezone"},
				{"negative quota", `{"name":"x","quota":{"tokens":-1}}`, "quota.tokens"},
				{"unknown field", `{"name":"x","weight":3}`, `unknown field "weight"`},
				{"unknown limit", `{"name":"x","limits":{"tokens_per_minute":3}}`, `unknown field "tokens_per_minute"`},
				{"wrong type", `{"name":"x","models":"gpt-4o"}`, "models: must be an array"},
				{"malformed", `{"name":`, "bad JSON body"},
				{"two values", `{"name":"x"} {}`, "more than one JSON value"},
				{"empty", ``, "must be a JSON object"},
			} {
				t.Run(bad.name, func(t *testing.T) { c.wantError(http.StatusBadRequest, "POST", "/v1/tiers", bad.body, bad.msg) })
			}

			c.wantError(http.StatusNotFound, "GET", "/v1/tiers/nope", nil, `no tier named "nope"`)
			var replaced TierInfo
			c.want(http.StatusOK, "PUT", "/v1/tiers/pro", `{"limits":{"token_per_day":9}}`, &replaced)
			if replaced.Limits.TokenPerMinute != nil || *replaced.Limits.TokenPerDay != 9 || replaced.Quota != nil || len(replaced.Models) != 0 {
				t.Errorf("PUT replaces the whole tier; got %+v", replaced)
			}
			c.wantError(http.StatusConflict, "PUT", "/v1/tiers/free", `{"name":"free"}`, "declared in the config file")
			c.wantError(http.StatusNotFound, "PUT", "/v1/tiers/nope", `{"name":"nope"}`, "no tier")
			c.wantError(http.StatusBadRequest, "PUT", "/v1/tiers/pro", `{"name":"other"}`, "cannot be renamed")
			c.wantError(http.StatusBadRequest, "PUT", "/v1/tiers/pro", `{"limits":{"token_per_day":-1}}`, "token_per_day")

			c.want(http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme","tier":"pro"}`, nil)
			c.wantError(http.StatusConflict, "DELETE", "/v1/tiers/pro", nil, "acme")
			c.wantError(http.StatusConflict, "DELETE", "/v1/tiers/free", nil, "declared in the config file")
			c.wantError(http.StatusNotFound, "DELETE", "/v1/tiers/nope", nil, "no tier")
			c.want(http.StatusNoContent, "DELETE", "/v1/consumers/acme", nil, nil)
			c.want(http.StatusNoContent, "DELETE", "/v1/tiers/pro", nil, nil)
			c.wantError(http.StatusNotFound, "GET", "/v1/tiers/pro", nil, "no tier")
		})
	}
}

func TestAPIConsumers(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			c := newAPIClient(t, APIOptions{Store: kind.open(t, &logBuffer{}), Base: testBase})
			c.want(http.StatusCreated, "POST", "/v1/tiers", `{"name":"pro","limits":{"token_per_minute":100}}`, nil)

			var list struct{ Consumers []ConsumerInfo }
			c.want(http.StatusOK, "GET", "/v1/consumers", nil, &list)
			if len(list.Consumers) != 1 || list.Consumers[0].Name != "ci" || list.Consumers[0].Source != SourceConfig || list.Consumers[0].Keys != 1 {
				t.Fatalf("consumers = %+v, want the config consumer ci with its one key", list.Consumers)
			}

			code, data := c.do("POST", "/v1/consumers", `{"name":"acme","tier":"pro","models":["gpt-4o"],"limits":{"query_per_day":10},"quota":{"tokens":500,"period":"day"}}`)
			if code != http.StatusCreated {
				t.Fatalf("POST /v1/consumers: %d %s", code, data)
			}
			if got, want := fields(t, data), []string{"disabled", "keys", "limits", "models", "name", "quota", "source", "tier"}; !slices.Equal(got, want) {
				t.Errorf("consumer fields = %v, want %v", got, want)
			}
			var acme ConsumerInfo
			c.want(http.StatusOK, "GET", "/v1/consumers/acme", nil, &acme)
			if acme.Tier != "pro" || acme.Source != SourceRuntime || acme.Keys != 0 || acme.Disabled || *acme.Limits.QueryPerDay != 10 || acme.Quota.Tokens != 500 {
				t.Errorf("GET /v1/consumers/acme = %+v", acme)
			}

			c.wantError(http.StatusConflict, "POST", "/v1/consumers", `{"name":"acme"}`, "already exists")
			c.wantError(http.StatusConflict, "POST", "/v1/consumers", `{"name":"ci"}`, "already exists")
			c.wantError(http.StatusBadRequest, "POST", "/v1/consumers", `{"name":"x","tier":"gold"}`, `tier: no tier named "gold"`)
			c.wantError(http.StatusBadRequest, "POST", "/v1/consumers", `{"name":"x","keys":["sk-1"]}`, "keys: must be a number")
			c.wantError(http.StatusBadRequest, "POST", "/v1/consumers", `{"name":""}`, "name: must be set")
			c.wantError(http.StatusBadRequest, "POST", "/v1/consumers", `{"name":"x","limits":{"token_type":"input"}}`, "token_type is set")
			c.wantError(http.StatusNotFound, "GET", "/v1/consumers/nope", nil, `no consumer named "nope"`)

			var patched ConsumerInfo
			c.want(http.StatusOK, "PATCH", "/v1/consumers/acme", `{"tier":"free","quota":null,"disabled":true}`, &patched)
			if patched.Tier != "free" || patched.Quota != nil || !patched.Disabled || *patched.Limits.QueryPerDay != 10 || !slices.Equal(patched.Models, []string{"gpt-4o"}) {
				t.Errorf("PATCH changed the wrong fields: %+v", patched)
			}
			var cleared ConsumerInfo
			c.want(http.StatusOK, "PATCH", "/v1/consumers/acme", `{"models":null,"limits":{},"tier":""}`, &cleared)
			if cleared.Tier != "" || len(cleared.Models) != 0 || !cleared.Limits.IsZero() || !cleared.Disabled {
				t.Errorf("PATCH with nulls: %+v", cleared)
			}
			for _, bad := range []struct{ body, msg string }{
				{`{"tier":"gold"}`, `no tier named "gold"`},
				{`{"bogus":1}`, `unknown field "bogus"`},
				{`{"name":"other"}`, "cannot be renamed"},
				{`{"disabled":"yes"}`, "disabled"},
				{`{"quota":{"tokens":1,"period":"fortnight"}}`, "quota.period"},
				{`[]`, "bad JSON body"},
				{`null`, "must be a JSON object"},
			} {
				c.wantError(http.StatusBadRequest, "PATCH", "/v1/consumers/acme", bad.body, bad.msg)
			}
			c.wantError(http.StatusNotFound, "PATCH", "/v1/consumers/nope", `{"disabled":true}`, "no consumer")

			// A config consumer: disable and enable only.
			var ci ConsumerInfo
			c.want(http.StatusOK, "PATCH", "/v1/consumers/ci", `{"disabled":true}`, &ci)
			if !ci.Disabled || ci.Source != SourceConfig {
				t.Errorf("PATCH ci disabled = %+v", ci)
			}
			c.want(http.StatusOK, "GET", "/v1/consumers/ci", nil, &ci)
			if !ci.Disabled {
				t.Error("disabling a config consumer did not stick")
			}
			c.wantError(http.StatusConflict, "PATCH", "/v1/consumers/ci", `{"tier":"pro"}`, "only disabled can be changed")
			c.wantError(http.StatusConflict, "PATCH", "/v1/consumers/ci", `{"disabled":false,"models":[]}`, "only disabled can be changed")
			c.want(http.StatusOK, "PATCH", "/v1/consumers/ci", `{"disabled":false,"name":"ci","source":"config","keys":1}`, &ci)
			if ci.Disabled {
				t.Error("enabling a config consumer did not stick")
			}
			c.wantError(http.StatusConflict, "DELETE", "/v1/consumers/ci", nil, "declared in the config file")
			c.wantError(http.StatusNotFound, "DELETE", "/v1/consumers/nope", nil, "no consumer")

			c.want(http.StatusCreated, "POST", "/v1/consumers/acme/keys", `{}`, nil)
			c.want(http.StatusNoContent, "DELETE", "/v1/consumers/acme", nil, nil)
			c.wantError(http.StatusNotFound, "GET", "/v1/consumers/acme/keys", nil, "no consumer")
			// Re-created under the same name, it starts without keys.
			c.want(http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme"}`, &acme)
			var keys struct{ Keys []KeyInfo }
			c.want(http.StatusOK, "GET", "/v1/consumers/acme/keys", nil, &keys)
			if acme.Keys != 0 || len(keys.Keys) != 0 {
				t.Errorf("re-created consumer has keys: %d, %+v", acme.Keys, keys.Keys)
			}
		})
	}
}

func TestAPIRoutes(t *testing.T) {
	c := newAPIClient(t, APIOptions{Store: storeKinds[0].open(t, &logBuffer{}), Base: testBase})
	c.wantError(http.StatusNotFound, "GET", "/v1/nothing", nil, "no such endpoint")
	c.wantError(http.StatusMethodNotAllowed, "PATCH", "/v1/tiers", nil, "PATCH is not allowed")
	code, data := c.do("POST", "/v1/tiers", strings.Repeat(" ", maxBody+1))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over 1 MiB: %d %s", code, data)
	}
}
