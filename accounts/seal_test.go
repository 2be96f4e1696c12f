package accounts

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/redistest"
)

func TestParseKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name, in, wantErr string
	}{
		{"hex", hex.EncodeToString(key), ""},
		{"base64", base64.StdEncoding.EncodeToString(key), ""},
		{"base64 unpadded", base64.RawStdEncoding.EncodeToString(key), ""},
		{"base64 url", base64.URLEncoding.EncodeToString(key), ""},
		{"surrounding newline", base64.StdEncoding.EncodeToString(key) + "\n", ""},
		{"16 bytes", base64.StdEncoding.EncodeToString(key[:16]), "holds 16"},
		{"64 bytes", base64.StdEncoding.EncodeToString(append(key, key...)), "holds 64"},
		{"passphrase", "correct horse battery staple", "64 hex digits or base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != string(key) {
				t.Fatalf("parseKey = %q, %v", got, err)
			}
		})
	}
}

func TestSealBindsTheValueToItsProviderAndKey(t *testing.T) {
	s, err := newSealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newSealer([]byte("fedcba9876543210fedcba9876543210"))
	const plain = "sk-proj-the-provider-key"
	a, err := s.seal("openai", "pk_1", plain)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.seal("openai", "pk_1", plain)
	if a == b {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	if strings.Contains(a, plain) || !strings.HasPrefix(a, sealPrefix) {
		t.Errorf("sealed value %q", a)
	}
	if got, err := s.open("openai", "pk_1", a); err != nil || got != plain {
		t.Fatalf("open = %q, %v", got, err)
	}
	tampered := []byte(a)
	tampered[len(tampered)-3] ^= 1
	for _, tt := range []struct {
		name, provider, id, sealed string
		s                          *sealer
	}{
		{"other provider", "anthropic", "pk_1", a, s},
		{"other key id", "openai", "pk_2", a, s},
		{"altered", "openai", "pk_1", string(tampered), s},
		{"truncated", "openai", "pk_1", a[:10], s},
		{"not sealed", "openai", "pk_1", plain, s},
		{"other encryption key", "openai", "pk_1", a, other},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.s.open(tt.provider, tt.id, tt.sealed); err == nil {
				t.Errorf("open = %q, want an error", got)
			}
		})
	}
}

// dumpRedis returns every key and value in Redis as text.
func dumpRedis(t *testing.T, addr string) string {
	t.Helper()
	c := newRedisClient(t, addr)
	ctx := t.Context()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString(k + "\n")
		switch typ := c.Type(ctx, k).Val(); typ {
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				sb.WriteString(f + "=" + v + "\n")
			}
		case "string":
			sb.WriteString(c.Get(ctx, k).Val() + "\n")
		default:
			t.Fatalf("unexpected %s key %s", typ, k)
		}
	}
	return sb.String()
}

func TestProviderKeysAtRest(t *testing.T) {
	srv := redistest.Start(t)
	logs := &logBuffer{}
	s := openStore(t, Config{EncryptionKeyEnv: testKeyEnv}, Options{Client: newRedisClient(t, srv.Addr()), Logger: logs.logger()}, true)
	c := newAPIClient(t, APIOptions{Store: s, Base: testBase, Logger: logs.logger()})
	c.want(http.StatusCreated, "POST", "/v1/providers", map[string]any{"name": "anthropic", "path_prefix": "/anthropic/", "keys": providerKeys[:3]}, nil)

	dump := dumpRedis(t, srv.Addr())
	if !strings.Contains(dump, "tollgate:{accounts}:provider_keys") || strings.Count(dump, `"sealed":"v1.`) != 3 {
		t.Fatalf("Redis does not hold three sealed keys:\n%s", dump)
	}
	for _, k := range providerKeys[:3] {
		for _, form := range []string{k, base64.StdEncoding.EncodeToString([]byte(k)), hex.EncodeToString([]byte(k))} {
			if strings.Contains(dump, form) {
				t.Errorf("Redis holds a provider key in the clear (%s…):\n%s", k[:8], dump)
			}
		}
	}

	t.Run("wrong encryption key", func(t *testing.T) {
		wrong := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
		_, err := open(context.Background(), Config{EncryptionKeyEnv: "K"}, Options{Client: newRedisClient(t, srv.Addr()), KeyPrefix: "tollgate:", Getenv: env(map[string]string{"K": wrong})}, true)
		if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "the encryption key is not the one it was sealed with") {
			t.Fatalf("opening with another key: %v", err)
		}
	})
	t.Run("no encryption key", func(t *testing.T) {
		_, err := open(context.Background(), Config{}, Options{Client: newRedisClient(t, srv.Addr()), KeyPrefix: "tollgate:"}, true)
		if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "set accounts.encryption_key_env") {
			t.Fatalf("opening without a key: %v", err)
		}
	})
	t.Run("altered value", func(t *testing.T) {
		// Another replica reads a value someone altered in Redis: that key
		// is left out, loudly; the provider keeps the others.
		blogs := &logBuffer{}
		b := openStore(t, Config{EncryptionKeyEnv: testKeyEnv}, Options{Client: newRedisClient(t, srv.Addr()), Logger: blogs.logger()}, true)
		rc := newRedisClient(t, srv.Addr())
		fields := rc.HGetAll(t.Context(), "tollgate:{accounts}:provider_keys").Val()
		for f, v := range fields {
			altered := strings.Replace(v, `"sealed":"v1.`, `"sealed":"v1.AAAA`, 1)
			if err := rc.HSet(t.Context(), "tollgate:{accounts}:provider_keys", f, altered).Err(); err != nil {
				t.Fatal(err)
			}
			break
		}
		c.want(http.StatusCreated, "POST", "/v1/consumers", `{"name":"bump"}`, nil)
		waitFor(t, "B reloads", func() bool { return len(b.Snapshot().Consumers) == 1 })
		if ks := b.Snapshot().Providers[0].Keys; len(ks) != 2 {
			t.Errorf("B holds %d provider keys, want the 2 that open", len(ks))
		}
		if !strings.Contains(blogs.String(), "cannot decrypt provider") {
			t.Errorf("the altered key is not reported:\n%s", blogs)
		}
		for _, k := range providerKeys {
			if strings.Contains(blogs.String(), k) {
				t.Errorf("B's logs hold a provider key:\n%s", blogs)
			}
		}
	})
	for _, k := range providerKeys {
		if strings.Contains(logs.String(), k) {
			t.Errorf("the logs hold a provider key:\n%s", logs)
		}
	}
}

func TestRedisRefusesProviderKeysWithoutAnEncryptionKey(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, Config{}, Options{Client: newRedisClient(t, srv.Addr())}, true)
	c := newAPIClient(t, APIOptions{Store: s, Base: testBase, Logger: (&logBuffer{}).logger()})
	c.wantError(http.StatusBadRequest, "POST", "/v1/providers", map[string]any{"name": "a", "path_prefix": "/a/", "keys": providerKeys[:1]}, "set accounts.encryption_key_env")
	c.want(http.StatusCreated, "POST", "/v1/providers", `{"name":"a","path_prefix":"/a/"}`, nil)
	c.wantError(http.StatusBadRequest, "POST", "/v1/providers/a/keys", map[string]string{"key": providerKeys[0]}, "set accounts.encryption_key_env")
	if dump := dumpRedis(t, srv.Addr()); strings.Contains(dump, providerKeys[0]) {
		t.Errorf("Redis holds the refused key:\n%s", dump)
	}
}

func TestConfigValidate(t *testing.T) {
	getenv := env(map[string]string{"GOOD": testKey, "SHORT": base64.StdEncoding.EncodeToString([]byte("short"))})
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{"empty is fine", Config{}, nil},
		{"good key", Config{EncryptionKeyEnv: "GOOD", PollInterval: 250 * 1e6, Channel: "tg:accounts"}, nil},
		{"every problem at once", Config{EncryptionKeyEnv: "MISSING", PollInterval: -1, Channel: "a b"},
			[]string{"accounts.encryption_key_env: environment variable MISSING is empty or unset", "accounts.poll_interval: must be >= 0", "accounts.channel: must not contain spaces"}},
		{"short key", Config{EncryptionKeyEnv: "SHORT"}, []string{"accounts.encryption_key_env: environment variable SHORT: must hold 32 bytes"}},
		{"tiny poll interval", Config{PollInterval: 1000}, []string{"accounts.poll_interval: must be at least 10ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate("accounts", getenv)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate = %v, want it to mention %q", err, want)
				}
			}
		})
	}
}
