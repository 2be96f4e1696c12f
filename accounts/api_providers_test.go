package accounts

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Provider keys of the tests, as a provider would issue them.
var providerKeys = []string{
	"sk-ant-api03-FIRSTsecretFIRSTsecretFIRST-aaaa",
	"sk-ant-api03-SECONDsecretSECONDsecret-bbbb",
	"sk-ant-api03-THIRDsecretTHIRDsecretTHI-cccc",
	"sk-ant-api03-FOURTHsecretFOURTHsecret-dddd",
}

func TestAPIProviders(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			logs := &logBuffer{}
			s := kind.open(t, logs)
			restUntil := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
			var health any = []map[string]any{{"name": "openai", "requests": 3}}
			c := newAPIClient(t, APIOptions{Store: s, Base: testBase, Logger: logs.logger(),
				ProviderHealth: func() any { return health },
				ProviderResting: func(p, id string) time.Time {
					if p == "openai" {
						return restUntil
					}
					return time.Time{}
				}})

			var list struct{ Providers []ProviderInfo }
			c.want(http.StatusOK, "GET", "/v1/providers", nil, &list)
			if len(list.Providers) != 1 {
				t.Fatalf("providers = %+v, want the config provider", list.Providers)
			}
			openai := list.Providers[0]
			if openai.Name != "openai" || openai.Source != SourceConfig || openai.Header != "authorization" || openai.RestSeconds != 60 ||
				len(openai.Keys) != 1 || openai.Keys[0].ID != "env:OPENAI_KEY" || openai.Keys[0].Prefix != "sk-…0000" ||
				openai.Keys[0].RestingUntil == nil || !openai.Keys[0].RestingUntil.Equal(restUntil) {
				t.Errorf("config provider = %+v", openai)
			}

			body := map[string]any{"name": "anthropic", "path_prefix": "/anthropic/", "host": "", "header": "x-api-key", "rest_seconds": 30, "keys": providerKeys[:2]}
			code, data := c.do("POST", "/v1/providers", body)
			if code != http.StatusCreated {
				t.Fatalf("POST /v1/providers: %d %s", code, data)
			}
			if got, want := fields(t, data), []string{"header", "host", "keys", "name", "path_prefix", "rest_seconds", "source"}; !slices.Equal(got, want) {
				t.Errorf("provider fields = %v, want %v", got, want)
			}
			var p ProviderInfo
			c.want(http.StatusOK, "GET", "/v1/providers/anthropic", nil, &p)
			if p.Source != SourceRuntime || p.Header != "x-api-key" || p.RestSeconds != 30 || len(p.Keys) != 2 ||
				p.Keys[0].Prefix != "sk-…aaaa" || p.Keys[1].Prefix != "sk-…bbbb" || p.Keys[0].RestingUntil != nil {
				t.Errorf("GET /v1/providers/anthropic = %+v", p)
			}
			_, data = c.do("GET", "/v1/providers/anthropic", nil)
			var raw struct{ Keys []map[string]any }
			c.want(http.StatusOK, "GET", "/v1/providers/anthropic", nil, &raw)
			if got, want := keysOfObject(raw.Keys[0]), []string{"created_at", "id", "prefix", "resting_until"}; !slices.Equal(got, want) {
				t.Errorf("provider key fields = %v, want %v (%s)", got, want, data)
			}

			c.wantError(http.StatusConflict, "POST", "/v1/providers", body, "already exists")
			c.wantError(http.StatusConflict, "POST", "/v1/providers", `{"name":"openai","path_prefix":"/x/"}`, "already exists")
			c.wantError(http.StatusConflict, "POST", "/v1/providers", `{"name":"other","path_prefix":"/v1/"}`, `provider "openai" already serves`)
			for _, bad := range []struct{ body, msg string }{
				{`{"name":"x","path_prefix":"/x/","header":"cookie"}`, "header"},
				{`{"name":"x","path_prefix":"x/"}`, "path_prefix: must start with /"},
				{`{"name":"health","path_prefix":"/h/"}`, "reserved"},
				{`{"name":"x","path_prefix":"/x/","rest_seconds":-5}`, "rest_seconds"},
				{`{"name":"x","path_prefix":"/x/","keys":["k-1234567890","k-1234567890"]}`, "same key as keys[0]"},
				{`{"name":"x","path_prefix":"/x/","keys":["has space"]}`, "printable ASCII"},
				{`{"name":"x","path_prefix":"/x/","keys":["line\r\nX-Evil: 1"]}`, "printable ASCII"},
				{`{"name":"x","path_prefix":"/x/","keys":[""]}`, "must not be empty"},
				{`{"name":"x","path_prefix":"/x/","keys":"k"}`, "keys: must be an array"},
			} {
				c.wantError(http.StatusBadRequest, "POST", "/v1/providers", bad.body, bad.msg)
			}
			c.wantError(http.StatusNotFound, "GET", "/v1/providers/nope", nil, "no provider")

			// PUT without keys keeps them; with keys, a key already stored
			// keeps its id.
			body["rest_seconds"] = 0
			delete(body, "keys")
			var kept ProviderInfo
			c.want(http.StatusOK, "PUT", "/v1/providers/anthropic", body, &kept)
			if len(kept.Keys) != 2 || kept.Keys[0].ID != p.Keys[0].ID || kept.RestSeconds != 60 {
				t.Errorf("PUT without keys = %+v", kept)
			}
			body["keys"] = []string{providerKeys[1], providerKeys[2]}
			var replaced ProviderInfo
			c.want(http.StatusOK, "PUT", "/v1/providers/anthropic", body, &replaced)
			if len(replaced.Keys) != 2 || replaced.Keys[0].ID != p.Keys[1].ID || replaced.Keys[1].Prefix != "sk-…cccc" {
				t.Errorf("PUT with keys = %+v, want the second key kept and the third added", replaced)
			}
			c.wantError(http.StatusConflict, "PUT", "/v1/providers/openai", `{"path_prefix":"/v1/"}`, "declared in the config file")
			c.wantError(http.StatusNotFound, "PUT", "/v1/providers/nope", `{"path_prefix":"/n/"}`, "no provider")
			c.wantError(http.StatusBadRequest, "PUT", "/v1/providers/anthropic", `{"name":"b","path_prefix":"/n/"}`, "cannot be renamed")
			c.wantError(http.StatusConflict, "PUT", "/v1/providers/anthropic", `{"path_prefix":"/v1/"}`, "already serves")

			code, data = c.do("POST", "/v1/providers/anthropic/keys", map[string]string{"key": providerKeys[3]})
			if code != http.StatusCreated {
				t.Fatalf("add key: %d %s", code, data)
			}
			if got, want := fields(t, data), []string{"id", "prefix"}; !slices.Equal(got, want) || !strings.Contains(string(data), "sk-…dddd") {
				t.Errorf("added key answer = %s, want only id and prefix", data)
			}
			c.wantError(http.StatusConflict, "POST", "/v1/providers/anthropic/keys", map[string]string{"key": providerKeys[3]}, "already has this key")
			c.wantError(http.StatusConflict, "POST", "/v1/providers/openai/keys", map[string]string{"key": "sk-more-keys-1234"}, "declared in the config file")
			c.wantError(http.StatusNotFound, "POST", "/v1/providers/nope/keys", map[string]string{"key": "sk-more-keys-1234"}, "no provider")
			c.wantError(http.StatusBadRequest, "POST", "/v1/providers/anthropic/keys", `{}`, `{"key": "..."}`)
			c.wantError(http.StatusBadRequest, "POST", "/v1/providers/anthropic/keys", `{"key":"a b"}`, "printable ASCII")

			waitFor(t, "the snapshot holds the provider's three keys", func() bool {
				_, ps, _ := Merge(testBase(), s.Snapshot())
				return len(ps) == 2 && len(ps[1].Keys) == 3
			})
			_, ps, _ := Merge(testBase(), s.Snapshot())
			if got := ps[1]; got.Name != "anthropic" || got.Header != "x-api-key" || got.Rest != time.Minute ||
				got.Keys[0].Secret.Reveal() != providerKeys[1] || got.Keys[1].Secret.Reveal() != providerKeys[2] || got.Keys[2].Secret.Reveal() != providerKeys[3] {
				t.Errorf("merged provider = %v, want keys 2, 3, 4 in turn", got)
			}
			if ps[0].Keys[0].Secret.Reveal() != configProviderKey {
				t.Error("the config provider's key is not the environment's")
			}
			if printed := fmt.Sprintf("%v %+v %#v %s", ps, ps, ps, ps[1].Keys[0].Secret); strings.Contains(printed, "secret") {
				t.Errorf("printing providers reveals a key: %s", printed)
			}

			c.wantError(http.StatusNotFound, "DELETE", "/v1/providers/anthropic/keys/pk_nope", nil, "no key")
			c.want(http.StatusNoContent, "DELETE", "/v1/providers/anthropic/keys/"+replaced.Keys[0].ID, nil, nil)
			c.wantError(http.StatusConflict, "DELETE", "/v1/providers/openai/keys/env:OPENAI_KEY", nil, "declared in the config file")

			var h struct{ Providers []map[string]any }
			c.want(http.StatusOK, "GET", "/v1/providers/health", nil, &h)
			if len(h.Providers) != 1 || h.Providers[0]["name"] != "openai" {
				t.Errorf("health = %+v, want what ProviderHealth returns", h)
			}
			health = nil
			code, data = c.do("GET", "/v1/providers/health", nil)
			if code != http.StatusOK || strings.Join(strings.Fields(string(data)), "") != `{"providers":[]}` {
				t.Errorf("health without stats = %d %s", code, data)
			}

			c.wantError(http.StatusConflict, "DELETE", "/v1/providers/openai", nil, "declared in the config file")
			c.wantError(http.StatusNotFound, "DELETE", "/v1/providers/nope", nil, "no provider")
			c.want(http.StatusNoContent, "DELETE", "/v1/providers/anthropic", nil, nil)
			c.wantError(http.StatusNotFound, "GET", "/v1/providers/anthropic", nil, "no provider")
			// Re-created under the same name, it starts without keys.
			var again ProviderInfo
			c.want(http.StatusCreated, "POST", "/v1/providers", `{"name":"anthropic","path_prefix":"/anthropic/"}`, &again)
			if len(again.Keys) != 0 {
				t.Errorf("re-created provider has keys %+v", again.Keys)
			}

			secrets := append(slices.Clone(providerKeys), configProviderKey, configConsumerKey)
			for _, answer := range c.answers {
				for _, secret := range secrets {
					if strings.Contains(answer, secret) {
						t.Errorf("an API answer holds a secret: %s", answer)
					}
				}
			}
			for _, secret := range secrets {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the logs hold a secret:\n%s", logs)
				}
			}
			if !strings.Contains(logs.String(), "provider key added") {
				t.Errorf("changes are not logged:\n%s", logs)
			}
		})
	}
}
