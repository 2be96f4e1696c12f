package accounts

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

var fuzzSeeds = []string{
	`{"name":"pro","models":["gpt-4o*"],"limits":{"token_per_minute":5,"token_type":"output"},"quota":{"tokens":9,"period":"month","timezone":"UTC","per_model":true}}`,
	`{"name":"acme","tier":"pro","disabled":true,"source":"runtime","keys":2}`,
	`{"tier":null,"models":null,"limits":{},"quota":null,"disabled":false}`,
	`{"label":"laptop","expires_in_seconds":3600}`,
	`{"expires_at":"2099-01-02T03:04:05Z"}`,
	`{"grace_seconds":60,"label":"x"}`,
	`{"name":"a","path_prefix":"/a/","host":"h:1","header":"x-api-key","rest_seconds":3,"keys":["sk-1234567890abcdef"]}`,
	`{"key":"sk-1234567890abcdef"}`,
	`{"name":"\u0000"}`, `[]`, `null`, `{}`, `{"a":1} x`, ``, `{"quota":{"tokens":1e400}}`,
}

// FuzzDecodeBodies feeds every API body decoder the same input: none may
// panic, and what one accepts re-encodes to itself and validates without
// panicking.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip := func(v any, decode func([]byte) (any, error)) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("cannot re-encode %#v: %v", v, err)
			}
			again, err := decode(b)
			if err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", b, err)
			}
			if !reflect.DeepEqual(again, v) {
				t.Fatalf("round trip changed %#v into %#v", v, again)
			}
		}
		if tier, err := decodeTier(data); err == nil {
			_ = validateTier(&tier)
			roundTrip(tier, func(b []byte) (any, error) { return decodeTier(b) })
		}
		if c, err := decodeConsumer(data); err == nil {
			_ = validateConsumer(&c, map[string]int{"pro": 0})
			roundTrip(c, func(b []byte) (any, error) { return decodeConsumer(b) })
		}
		if p, err := decodeConsumerPatch(data, "acme"); err == nil {
			_ = p.onlyDisabled()
		}
		if r, err := decodeKeyRequest(data); err == nil {
			_ = validateLabel(r.Label)
		}
		_, _ = decodeRotateRequest(data)
		if p, err := decodeProvider(data); err == nil {
			_ = validateProvider(&p)
			roundTrip(p, func(b []byte) (any, error) { return decodeProvider(b) })
		}
		if k, err := decodeProviderKey(data); err == nil {
			_ = validateProviderKey(k)
		}
	})
}

// FuzzAPICreate posts the input to every creating endpoint of a fresh
// memory store: the API answers 201, 400 or 409, never a server error.
func FuzzAPICreate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	quiet := (&logBuffer{}).logger()
	f.Fuzz(func(t *testing.T, body string) {
		s, err := open(t.Context(), Config{}, Options{Logger: quiet, Getenv: env(testEnv)}, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c := &apiClient{t: t, h: NewAPI(APIOptions{Store: s, Base: testBase, Logger: quiet})}
		for _, path := range []string{"/v1/tiers", "/v1/consumers", "/v1/consumers/ci/keys", "/v1/providers", "/v1/providers/openai/keys"} {
			code, data := c.do("POST", path, body)
			switch code {
			case http.StatusCreated, http.StatusBadRequest, http.StatusConflict:
			default:
				t.Fatalf("POST %s %q: %d %s", path, body, code, data)
			}
		}
		code, data := c.do("PATCH", "/v1/consumers/ci", body)
		if code != http.StatusOK && code != http.StatusBadRequest && code != http.StatusConflict {
			t.Fatalf("PATCH %q: %d %s", body, code, data)
		}
	})
}
