package accounts

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/consumer"
)

var issuedKey = regexp.MustCompile(`^sk-tg-[0-9A-Za-z]{40}$`)

func TestAPIKeys(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s := kind.open(t, &logBuffer{})
			c := newAPIClient(t, APIOptions{Store: s, Base: testBase, Logger: (&logBuffer{}).logger()})
			c.want(http.StatusCreated, "POST", "/v1/consumers", `{"name":"acme"}`, nil)

			code, data := c.do("POST", "/v1/consumers/acme/keys", `{"label":"laptop","expires_in_seconds":3600}`)
			if code != http.StatusCreated {
				t.Fatalf("issue: %d %s", code, data)
			}
			if got, want := fields(t, data), []string{"consumer", "created_at", "expires_at", "id", "key", "label", "prefix", "revoked_at"}; !slices.Equal(got, want) {
				t.Errorf("issued key fields = %v, want %v", got, want)
			}
			var k1 struct {
				KeyInfo
				Key string `json:"key"`
			}
			c.want(http.StatusCreated, "POST", "/v1/consumers/acme/keys", `{"label":"laptop","expires_in_seconds":3600}`, &k1)
			if !issuedKey.MatchString(k1.Key) || k1.Prefix != k1.Key[:10] || k1.Consumer != "acme" || k1.Label != "laptop" || k1.RevokedAt != nil {
				t.Errorf("issued key = %+v", k1)
			}
			if k1.ExpiresAt == nil || k1.ExpiresAt.Sub(k1.CreatedAt) != time.Hour {
				t.Errorf("expires_at = %v, want created_at + 1h (%v)", k1.ExpiresAt, k1.CreatedAt)
			}

			// Keys of a config consumer are issued at run time too.
			var ciKey struct {
				KeyInfo
				Key string `json:"key"`
			}
			at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
			c.want(http.StatusCreated, "POST", "/v1/consumers/ci/keys", map[string]any{"expires_at": at}, &ciKey)
			if !ciKey.ExpiresAt.Equal(at) {
				t.Errorf("expires_at = %v, want %v", ciKey.ExpiresAt, at)
			}
			var ci ConsumerInfo
			c.want(http.StatusOK, "GET", "/v1/consumers/ci", nil, &ci)
			if ci.Keys != 2 {
				t.Errorf("ci counts %d usable keys, want its config key and the issued one", ci.Keys)
			}

			for _, bad := range []struct{ body, msg string }{
				{`{"expires_in_seconds":60,"expires_at":"2099-01-01T00:00:00Z"}`, "not both"},
				{`{"expires_in_seconds":0}`, "expires_in_seconds"},
				{`{"expires_in_seconds":99999999999999}`, "expires_in_seconds"},
				{`{"expires_at":"2001-01-01T00:00:00Z"}`, "in the future"},
				{`{"expires_at":"tomorrow"}`, "bad JSON body"},
				{`{"label":"a\u0007b"}`, "label"},
				{`{"key":"sk-mine"}`, `unknown field "key"`},
			} {
				c.wantError(http.StatusBadRequest, "POST", "/v1/consumers/acme/keys", bad.body, bad.msg)
			}
			c.wantError(http.StatusNotFound, "POST", "/v1/consumers/nope/keys", `{}`, "no consumer")

			var list struct{ Keys []json0 }
			code, data = c.do("GET", "/v1/consumers/acme/keys", nil)
			if code != http.StatusOK || strings.Contains(string(data), k1.Key) || strings.Contains(string(data), "sha256") {
				t.Fatalf("list keys: %d %s", code, data)
			}
			c.want(http.StatusOK, "GET", "/v1/consumers/acme/keys", nil, &list)
			if len(list.Keys) != 2 {
				t.Fatalf("acme has %d keys listed, want 2", len(list.Keys))
			}
			if got, want := keysOfObject(list.Keys[0]), []string{"consumer", "created_at", "expires_at", "id", "label", "prefix", "revoked_at"}; !slices.Equal(got, want) {
				t.Errorf("listed key fields = %v, want %v", got, want)
			}

			// Rotate: a new key, the old one expires after the grace.
			var k2 struct {
				KeyInfo
				Key string `json:"key"`
			}
			before := time.Now()
			c.want(http.StatusCreated, "POST", "/v1/consumers/acme/keys/"+k1.ID+"/rotate", `{"grace_seconds":60}`, &k2)
			if !issuedKey.MatchString(k2.Key) || k2.Key == k1.Key || k2.ID == k1.ID || k2.Label != "laptop" {
				t.Errorf("rotated key = %+v", k2)
			}
			if k2.ExpiresAt == nil || k2.ExpiresAt.Sub(k2.CreatedAt) != time.Hour {
				t.Errorf("the rotated key keeps the old key's 1h lifetime; expires_at = %v", k2.ExpiresAt)
			}
			var old KeyInfo
			for _, k := range listKeys(c, "acme") {
				if k.ID == k1.ID {
					old = k
				}
			}
			if old.ExpiresAt == nil || old.ExpiresAt.Before(before.Add(59*time.Second)) || old.ExpiresAt.After(time.Now().Add(61*time.Second)) {
				t.Errorf("old key expires_at = %v, want about now + 60s", old.ExpiresAt)
			}
			c.wantError(http.StatusBadRequest, "POST", "/v1/consumers/acme/keys/"+k2.ID+"/rotate", `{"grace_seconds":-1}`, "grace_seconds")
			c.wantError(http.StatusNotFound, "POST", "/v1/consumers/acme/keys/key_nope/rotate", `{}`, "no key")
			c.wantError(http.StatusNotFound, "POST", "/v1/consumers/ci/keys/"+k2.ID+"/rotate", `{}`, "no key")

			// Revoke.
			c.want(http.StatusNoContent, "DELETE", "/v1/consumers/acme/keys/"+k2.ID, nil, nil)
			c.want(http.StatusNoContent, "DELETE", "/v1/consumers/acme/keys/"+k2.ID, nil, nil)
			for _, k := range listKeys(c, "acme") {
				if k.ID == k2.ID && k.RevokedAt == nil {
					t.Error("revoked key has no revoked_at")
				}
			}
			c.wantError(http.StatusConflict, "POST", "/v1/consumers/acme/keys/"+k2.ID+"/rotate", `{}`, "revoked or expired")
			c.wantError(http.StatusNotFound, "DELETE", "/v1/consumers/acme/keys/key_nope", nil, "no key")
			c.wantError(http.StatusNotFound, "DELETE", "/v1/consumers/nope/keys/"+k1.ID, nil, "no consumer")

			// What the request path sees.
			reg, err := consumer.NewRegistry(mergedOptions(t, s))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for key, want := range map[string]bool{k1.Key: true, k2.Key: false, ciKey.Key: true, configConsumerKey: true} {
				if _, ok := reg.Authenticate(key, now); ok != want {
					t.Errorf("Authenticate(%s…) = %v, want %v", key[:10], ok, want)
				}
			}
			if _, ok := reg.Authenticate(k1.Key, now.Add(61*time.Second)); ok {
				t.Error("the rotated key authenticates after its grace")
			}
		})
	}
}

type json0 = map[string]any

func keysOfObject(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func listKeys(c *apiClient, name string) []KeyInfo {
	var list struct{ Keys []KeyInfo }
	c.want(http.StatusOK, "GET", "/v1/consumers/"+name+"/keys", nil, &list)
	return list.Keys
}

// mergedOptions waits until the store's snapshot is the latest and merges
// it with testBase.
func mergedOptions(t *testing.T, s *Store) consumer.Options {
	t.Helper()
	waitFor(t, "the store follows its own changes", func() bool {
		v, _, err := s.b.version(t.Context())
		return err == nil && s.Snapshot().Version == v
	})
	opts, _, warnings := Merge(testBase(), s.Snapshot())
	if len(warnings) > 0 {
		t.Errorf("merge warnings: %v", warnings)
	}
	return opts
}
