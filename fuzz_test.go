package alipaynotify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// Fuzz targets of the Caddy layer; the protocol's are in alipay/. Plain
// `go test` runs only their seeds; scripts/fuzz.sh runs each for a while.

// FuzzCaddyfile: UnmarshalCaddyfile never panics on any token stream.
func FuzzCaddyfile(f *testing.F) {
	line := testkit.PublicKeyLine(f, "alipay")
	minimal := "alipay_notify {\napp_id 2021000000000001\nalipay_public_key " + line +
		"\nforward http://127.0.0.1:8080/hook\nwebhook_secret " + testkit.Secret + "\n}"
	f.Add(minimal)
	f.Add("alipay_notify")
	f.Add("alipay_notify /path {\n}")
	f.Add("alipay_notify {\nmax_age off\nmax_age 1h\n}")
	f.Add("alipay_notify {\nmax_body 0\ntimeout -1s\nheader_up A\nwebhook_secret\nforward_status\n}")
	f.Add("alipay_notify {\nalipay_public_key \"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\"\n}")
	f.Add("alipay_notify {\nforward {env.X}\nwebhook_secret {env.S} whsec_x\nunknown 1\n}")
	for _, name := range []string{"full.caddyfiletest", "minimal.caddyfiletest"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		caddyfileText, _, _ := strings.Cut(string(data), "----------")
		if i := strings.Index(caddyfileText, "alipay_notify"); i >= 0 {
			block := caddyfileText[i:]
			if end := strings.Index(block, "\n\t}"); end >= 0 {
				block = block[:end+3]
			}
			f.Add(block)
		}
	}
	f.Fuzz(func(t *testing.T, input string) {
		// NewTestDispenser exits the process on a tokenizer error and
		// substitutes {$ENV} variables: keep to inputs it can take.
		if strings.Contains(input, "{$") {
			return
		}
		if _, err := caddyfile.Tokenize([]byte(input), "Caddyfile"); err != nil {
			return
		}
		h := new(Handler)
		_ = h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	})
}
