package limiter

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHigressAITokenRateLimitExample(t *testing.T) {
	c := decodeYAML(t, readExample(t, "higress-ai-token-ratelimit.yaml"))
	if err := c.Validate(""); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if it := c.TokenRules[2].RuleItems[0]; it.LimitByConsumer == nil || *it.LimitByConsumer != "" {
		t.Errorf("limit_by_consumer written without a value must count as set, got %v", it.LimitByConsumer)
	}
	if got := c.TokenRules[1].RuleItems[0].LimitKeys[0].Key; got != "4711" {
		t.Errorf("a bare number key decodes as %q", got)
	}
	rules, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	runMatchCases(t, readExample(t, "higress-ai-token-ratelimit.yaml"), []matchCase{
		{"known apikey shares one counter", req{attrs: map[string]string{"q:apikey": "3f2c8a10-51d4-4e0b-9a7e-1c2d3e4f5a6b"}}, []string{
			"by_apikey_param: tokens per minute <= 20",
			"site_wide: tokens per minute <= 400000",
		}},
		{"other apikeys fall to the per-value item", req{attrs: map[string]string{"q:apikey": "c0ffee"}}, []string{
			"by_apikey_param: tokens per second <= 5",
			"site_wide: tokens per minute <= 400000",
		}},
		{"limit_type request counts requests", req{attrs: map[string]string{"h:x-tenant": "4711"}}, []string{
			"by_header_requests: requests per minute <= 30",
			"site_wide: tokens per minute <= 400000",
		}},
		{"partner consumer", req{consumer: "partner-one"}, []string{
			"by_consumer: tokens per minute <= 50000",
			"site_wide: tokens per minute <= 400000",
		}},
		{"other consumer", req{consumer: "someone"}, []string{
			"by_consumer: tokens per day <= 1000000",
			"site_wide: tokens per minute <= 400000",
		}},
		{"ip tiers, most specific written first", req{attrs: map[string]string{"h:x-forwarded-for": "198.51.100.10, 10.0.0.1"}}, []string{
			"by_ip: tokens per day <= 100",
			"site_wide: tokens per minute <= 400000",
		}},
		{"ip in the /24", req{attrs: map[string]string{"h:x-forwarded-for": "198.51.100.99"}}, []string{
			"by_ip: tokens per day <= 1000",
			"site_wide: tokens per minute <= 400000",
		}},
	})
	ws := rules.Match(req{consumer: "someone"}.build(), nil)
	if rej := rules.Rejection(&ws[0]); rej.Code != 200 || !rej.Custom || rej.Message != `{"code":-1,"msg":"token budget exhausted"}` {
		t.Errorf("Rejection = %+v", rej)
	}
}

func TestHigressClusterKeyRateLimitExample(t *testing.T) {
	runMatchCases(t, readExample(t, "higress-cluster-key-rate-limit.yaml"), []matchCase{
		{"global only", req{}, []string{"route_total: requests per second <= 200"}},
		{"trial plan", req{attrs: map[string]string{"c:plan": "trial", "c:uid": "u1"}}, []string{
			"route_total: requests per second <= 200",
			"by_cookie: requests per minute <= 10",
		}},
		{"service uid", req{attrs: map[string]string{"c:uid": "svc-batch"}}, []string{
			"route_total: requests per second <= 200",
			"by_cookie: requests per second <= 50",
		}},
		{"v6 peer", req{ip: "2001:db8:aa::9"}, []string{
			"route_total: requests per second <= 200",
			"by_peer: requests per minute <= 600",
		}},
		{"v4 peer matches no v6 key", req{ip: "192.0.2.1"}, []string{"route_total: requests per second <= 200"}},
	})
}

func TestTollgateExample(t *testing.T) {
	runMatchCases(t, readExample(t, "tollgate.yaml"), []matchCase{
		{"chat call", req{consumer: "team-a", model: "gpt-4o", path: "/v1/chat/completions", attrs: map[string]string{"h:x-api-key": "k"}}, []string{
			"default_rule: tokens per minute <= 100000",
			"gpt4_output: output tokens per minute <= 20000",
			"gpt4_output: output tokens per day <= 2000000",
			"per_model: tokens per minute <= 1000000",
			"global: tokens per hour <= 5000000",
			"rpm: requests per minute <= 600",
		}},
		{"other model, other path", req{consumer: "team-b", model: "o3", path: "/v2/x"}, []string{
			"per_model: tokens per minute <= 1000000",
			"global: tokens per hour <= 5000000",
		}},
	})
}

// TestConfigRoundTrip checks that a compiled configuration written back as
// YAML (as an admin endpoint or a config dump would) reads the same.
func TestConfigRoundTrip(t *testing.T) {
	for _, name := range []string{"higress-ai-token-ratelimit.yaml", "higress-cluster-key-rate-limit.yaml", "tollgate.yaml"} {
		t.Run(name, func(t *testing.T) {
			doc := readExample(t, name)
			c := decodeYAML(t, doc)
			out, err := yaml.Marshal(&c)
			if err != nil {
				t.Fatal(err)
			}
			a, b := compileYAML(t, doc), compileYAML(t, string(out))
			for _, r := range []req{
				{consumer: "team-a", model: "gpt-4o", path: "/v1/x", ip: "198.51.100.10",
					attrs: map[string]string{"h:x-api-key": "k", "q:apikey": "c1", "c:uid": "svc-1", "h:x-forwarded-for": "198.51.100.10"}},
				{consumer: "partner-one", attrs: map[string]string{"h:x-tenant": "4711", "c:plan": "trial"}},
			} {
				ka, kb := keys(a.Match(r.build(), nil)), keys(b.Match(r.build(), nil))
				if !slices.Equal(ka, kb) {
					t.Errorf("round trip changed matching:\n%q\n%q\n%s", ka, kb, out)
				}
			}
			if strings.Contains(string(out), "unknown") {
				t.Errorf("internal state leaked into YAML:\n%s", out)
			}
		})
	}
}

func TestMergeKeysAreNotUnknownFields(t *testing.T) {
	runMatchCases(t, `
token_ratelimit:
  - rule_name: r
    rule_items:
      - limit_by_per_consumer: ""
        limit_keys:
          - &tier {key: "regexp:^vip-", token_per_minute: 500, token_type: output}
          - {<<: *tier, key: "*", token_per_minute: 100}
`, []matchCase{
		{"merged fields apply", req{consumer: "bob"}, []string{"r: output tokens per minute <= 100"}},
	})
}
