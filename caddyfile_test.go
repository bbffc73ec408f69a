package alipaynotify

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	line := testkit.PublicKeyLine(t, "alipay")
	minimal := "app_id 2021000000000001\nalipay_public_key " + line + "\nforward http://127.0.0.1:8080/hook\nwebhook_secret " + testkit.Secret + "\n"
	tests := []struct {
		name    string
		input   string
		want    Handler
		wantErr string
	}{
		{
			name:  "minimal",
			input: "alipay_notify {\n" + minimal + "}",
			want: Handler{
				Verifier:       Verifier{AppIDs: []string{"2021000000000001"}, KeySource: KeySource{AlipayPublicKeys: []string{line}}},
				Forward:        "http://127.0.0.1:8080/hook",
				WebhookSecrets: []string{testkit.Secret},
			},
		},
		{
			name: "everything",
			input: `alipay_notify {
				app_id 2021000000000001 2021000000000002
				app_id 2021000000000003
				alipay_public_key {file./etc/alipay/key.txt}
				alipay_public_key /etc/alipay/old.txt
				alipay_cert /etc/alipay/alipayCertPublicKey_RSA2.crt
				alipay_root_cert {env.ROOT}
				seller_id 2088000000000001
				forward https://backend.internal/hooks/alipay
				webhook_secret {env.SECRET} ` + testkit.Secret + `
				timeout 3s
				header_up Authorization "Bearer {env.TOKEN}"
				header_up X-Extra one
				forward_status TRADE_SUCCESS
				forward_status TRADE_FINISHED
				max_age 25h
				max_body 16KiB
				default_charset gbk
			}`,
			want: Handler{
				Verifier: Verifier{
					AppIDs: []string{"2021000000000001", "2021000000000002", "2021000000000003"},
					KeySource: KeySource{
						AlipayPublicKeys: []string{"{file./etc/alipay/key.txt}", "/etc/alipay/old.txt"},
						AlipayCerts:      []string{"/etc/alipay/alipayCertPublicKey_RSA2.crt"},
						AlipayRootCert:   "{env.ROOT}",
					},
					SellerIDs:      []string{"2088000000000001"},
					MaxAge:         caddy.Duration(25 * time.Hour),
					MaxBody:        16 * 1024,
					DefaultCharset: "gbk",
				},
				Forward:        "https://backend.internal/hooks/alipay",
				WebhookSecrets: []string{"{env.SECRET}", testkit.Secret},
				Timeout:        caddy.Duration(3 * time.Second),
				HeaderUp:       http.Header{"Authorization": {"Bearer {env.TOKEN}"}, "X-Extra": {"one"}},
				ForwardStatus:  []string{"TRADE_SUCCESS", "TRADE_FINISHED"},
			},
		},
		{
			name:  "max_age off",
			input: "alipay_notify {\n" + minimal + "max_age off\n}",
			want: Handler{
				Verifier:       Verifier{AppIDs: []string{"2021000000000001"}, KeySource: KeySource{AlipayPublicKeys: []string{line}}, MaxAge: -1},
				Forward:        "http://127.0.0.1:8080/hook",
				WebhookSecrets: []string{testkit.Secret},
			},
		},
		{
			name:  "outbox",
			input: "alipay_notify {\n" + minimal + "outbox {\nretry 5s 30s 2m\ngive_up 2d\nkeep 720h\n}\n}",
			want: Handler{
				Verifier:       Verifier{AppIDs: []string{"2021000000000001"}, KeySource: KeySource{AlipayPublicKeys: []string{line}}},
				Forward:        "http://127.0.0.1:8080/hook",
				WebhookSecrets: []string{testkit.Secret},
				Outbox: &Outbox{
					Retry:  []caddy.Duration{caddy.Duration(5 * time.Second), caddy.Duration(30 * time.Second), caddy.Duration(2 * time.Minute)},
					GiveUp: caddy.Duration(48 * time.Hour),
					Keep:   caddy.Duration(720 * time.Hour),
				},
			},
		},
		{
			name:  "outbox with the defaults",
			input: "alipay_notify {\n" + minimal + "outbox\n}",
			want: Handler{
				Verifier:       Verifier{AppIDs: []string{"2021000000000001"}, KeySource: KeySource{AlipayPublicKeys: []string{line}}},
				Forward:        "http://127.0.0.1:8080/hook",
				WebhookSecrets: []string{testkit.Secret},
				Outbox:         &Outbox{},
			},
		},
		{
			name:  "outbox with an empty block",
			input: "alipay_notify {\n" + minimal + "outbox {\n}\n}",
			want: Handler{
				Verifier:       Verifier{AppIDs: []string{"2021000000000001"}, KeySource: KeySource{AlipayPublicKeys: []string{line}}},
				Forward:        "http://127.0.0.1:8080/hook",
				WebhookSecrets: []string{testkit.Secret},
				Outbox:         &Outbox{},
			},
		},
		{name: "outbox with an argument", input: "alipay_notify {\n" + minimal + "outbox on\n}", wantErr: "outbox takes a block, not arguments: outbox { retry 5s 30s 2m; give_up 7d; keep 30d }, at Testfile:6"},
		{name: "outbox twice", input: "alipay_notify {\n" + minimal + "outbox\noutbox {\nretry 1s\n}\n}", wantErr: "outbox: given twice; it may appear only once, at Testfile:7"},
		{name: "outbox unknown setting", input: "alipay_notify {\n" + minimal + "outbox {\nretries 5s\n}\n}", wantErr: `unknown outbox setting "retries" (retry, give_up, keep), at Testfile:7`},
		{name: "outbox retry twice", input: "alipay_notify {\n" + minimal + "outbox {\nretry 5s\nretry 10s\n}\n}", wantErr: "outbox: retry given twice; it may appear only once, at Testfile:8"},
		{name: "outbox retry without delays", input: "alipay_notify {\n" + minimal + "outbox {\nretry\n}\n}", wantErr: "retry needs at least one duration"},
		{name: "outbox retry not a duration", input: "alipay_notify {\n" + minimal + "outbox {\nretry 5s soon\n}\n}", wantErr: `"soon" is not a positive duration (e.g. 5s, 10m, 7d), at Testfile:7`},
		{name: "outbox retry zero", input: "alipay_notify {\n" + minimal + "outbox {\nretry 0s\n}\n}", wantErr: `"0s" is not a positive duration`},
		{name: "outbox retry negative", input: "alipay_notify {\n" + minimal + "outbox {\nretry 5s -1s\n}\n}", wantErr: `"-1s" is not a positive duration`},
		{name: "outbox give_up zero", input: "alipay_notify {\n" + minimal + "outbox {\ngive_up 0s\n}\n}", wantErr: `give_up must be positive, got 0s, at Testfile:7`},
		{name: "outbox keep negative", input: "alipay_notify {\n" + minimal + "outbox {\nkeep -1h\n}\n}", wantErr: `keep must be positive, got -1h`},
		{name: "outbox give_up not a duration", input: "alipay_notify {\n" + minimal + "outbox {\ngive_up forever\n}\n}", wantErr: `"forever" is not a duration`},
		{name: "outbox keep two values", input: "alipay_notify {\n" + minimal + "outbox {\nkeep 1d 2d\n}\n}", wantErr: "keep takes exactly one value, got 2"},
		{name: "unknown subdirective", input: "alipay_notify {\n" + minimal + "upstream x\n}", wantErr: `unknown subdirective "upstream" (alipay_notify takes: app_id, alipay_public_key, alipay_cert, alipay_root_cert, app, partner, md5_key, notify_verify, seller_id, max_age, max_body, default_charset, forward, webhook_secret, timeout, header_up, forward_status, trusted_ca, antom, outbox), at Testfile:6`},
		{name: "multi-line PEM pasted inline", input: "alipay_notify {\n" + strings.Replace(minimal, "alipay_public_key "+line, "alipay_public_key -----BEGIN PUBLIC KEY-----", 1) + "}", wantErr: "alipay_public_key: a PEM block spans several lines; give the path of a file that holds it, or wrap it in backticks"},
		{name: "a typo gets a did you mean", input: "alipay_notify {\n" + minimal + "webhook_secrets " + testkit.Secret + "\n}", wantErr: `unknown subdirective "webhook_secrets"; did you mean "webhook_secret"?, at Testfile:6`},
		{
			name: "antom blocks, no domestic key",
			input: "alipay_notify {\nantom SANDBOX_5Y00000000000001 {\nantom_public_key " + line + "\nantom_public_key {env.NEXT}\n}\n" +
				"antom 5Y00000000000002 {\nantom_public_key /etc/antom/key.pem\n}\nforward http://127.0.0.1:8080/hook\nwebhook_secret " + testkit.Secret + "\n}",
			want: Handler{
				Verifier: Verifier{otherKeys: true},
				Antom: []AntomClient{
					{ClientID: "SANDBOX_5Y00000000000001", AntomPublicKeys: []string{line, "{env.NEXT}"}},
					{ClientID: "5Y00000000000002", AntomPublicKeys: []string{"/etc/antom/key.pem"}},
				},
				Forward:        "http://127.0.0.1:8080/hook",
				WebhookSecrets: []string{testkit.Secret},
			},
		},
		{name: "antom client given twice", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001 {\nantom_public_key " + line + "\n}\nantom SANDBOX_5Y00000000000001 {\nantom_public_key /etc/antom/next.pem\n}\n}", wantErr: "antom SANDBOX_5Y00000000000001: given twice; give one block per client ID, with all its keys (rotation) in it, at Testfile:9"},
		{name: "antom without a client ID", input: "alipay_notify {\n" + minimal + "antom {\nantom_public_key " + line + "\n}\n}", wantErr: "antom needs the client ID, e.g. antom SANDBOX_5X00000000000000 { antom_public_key ... }, at Testfile:6"},
		{name: "antom with two client IDs", input: "alipay_notify {\n" + minimal + "antom A B {\nantom_public_key " + line + "\n}\n}", wantErr: "antom takes one client ID and a block of keys, at Testfile:6"},
		{name: "antom without a key", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001 {\n}\n}", wantErr: "antom SANDBOX_5Y00000000000001: no key; give antom_public_key in its block, at Testfile:7"},
		{name: "antom without a block", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001\n}", wantErr: "antom SANDBOX_5Y00000000000001: no key; give antom_public_key in its block, at Testfile:6"},
		{name: "antom block with another setting", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001 {\nantom_public_key " + line + "\nmax_age 1h\n}\n}", wantErr: `"max_age" in antom SANDBOX_5Y00000000000001: an antom block holds only antom_public_key; policy goes at the top level, at Testfile:8`},
		{name: "antom block with alipay_public_key", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001 {\nalipay_public_key " + line + "\n}\n}", wantErr: `"alipay_public_key" in antom SANDBOX_5Y00000000000001: an antom block holds only antom_public_key; policy goes at the top level, at Testfile:7`},
		{name: "antom_public_key outside an antom block", input: "alipay_notify {\n" + minimal + "antom_public_key " + line + "\n}", wantErr: `unknown subdirective "antom_public_key"`},
		{name: "antom_public_key with two values", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001 {\nantom_public_key a b\n}\n}", wantErr: "antom_public_key takes exactly one value, got 2, at Testfile:7"},
		{name: "antom malformed inline key, with its line", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001 {\nantom_public_key " + line + "\nantom_public_key " + line[:100] + "\n}\n}", wantErr: `antom_public_key: malformed inline key: not an X.509 public key: asn1: syntax error: data truncated (if "` + line[:100] + `" is a file path: no such file), at Testfile:8`},
		{name: "antom inline key damaged in copying", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001 {\nantom_public_key " + line + "\nantom_public_key " + line[:40] + "...broken" + line[60:] + "\n}\n}", wantErr: "antom_public_key: malformed inline key: not valid base64: the key was damaged when copied"},
		{name: "antom malformed inline PEM", input: "alipay_notify {\n" + minimal + "antom SANDBOX_5Y00000000000001 {\nantom_public_key `-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----`\n}\n}", wantErr: "antom_public_key: malformed inline key"},
		{name: "repeated forward", input: "alipay_notify {\n" + minimal + "forward http://x\n}", wantErr: "forward: given twice; it may appear only once, at Testfile:6"},
		{name: "repeated max_age", input: "alipay_notify {\n" + minimal + "max_age 1h\nmax_age 2h\n}", wantErr: "max_age: given twice"},
		{name: "inline argument", input: "alipay_notify http://x {\n" + minimal + "}", wantErr: "takes no arguments"},
		{name: "missing forward", input: "alipay_notify {\napp_id 1\nalipay_public_key " + line + "\nwebhook_secret " + testkit.Secret + "\n}", wantErr: "alipay_notify: forward is required: the URL of the upstream that receives verified notifications, at Testfile:1"},
		{name: "missing secret", input: "alipay_notify {\napp_id 1\nalipay_public_key " + line + "\nforward http://x\n}", wantErr: "webhook_secret is required"},
		{name: "missing key", input: "alipay_notify {\napp_id 1\nforward http://x\nwebhook_secret " + testkit.Secret + "\n}", wantErr: "a key is required"},
		{name: "missing app_id", input: "alipay_notify {\nalipay_public_key " + line + "\nforward http://x\nwebhook_secret " + testkit.Secret + "\n}", wantErr: "app_id is required"},
		{name: "app_id without value", input: "alipay_notify {\n" + minimal + "app_id\n}", wantErr: "app_id needs at least one value, at Testfile:6"},
		{name: "malformed secret", input: "alipay_notify {\n" + strings.Replace(minimal, testkit.Secret, "secret123", 1) + "}", wantErr: `webhook_secret #1: must start with "whsec_"`},
		{name: "short secret", input: "alipay_notify {\n" + strings.Replace(minimal, testkit.Secret, "whsec_c2hvcnQ=", 1) + "}", wantErr: "webhook_secret #1: decodes to 5 bytes"},
		{name: "three secrets", input: "alipay_notify {\n" + minimal + "}" + "", wantErr: ""},
		{name: "malformed inline key", input: "alipay_notify {\n" + strings.Replace(minimal, line, line[:100], 1) + "}", wantErr: "alipay_public_key: malformed inline key: not an X.509 public key"},
		{name: "app_id as a comma-separated list", input: "alipay_notify {\n" + strings.Replace(minimal, "app_id 2021000000000001", "app_id 2021000000000000,2021000000000001", 1) + "}", wantErr: `app_id "2021000000000000,2021000000000001": Alipay's IDs are all digits; give several as separate values (app_id 2021... 2021...), at Testfile:2`},
		{name: "seller_id not digits", input: "alipay_notify {\n" + minimal + "seller_id 2088abc\n}", wantErr: `seller_id "2088abc": Alipay's IDs are all digits, at Testfile:6`},
		{name: "partner not digits", input: "alipay_notify {\npartner PID2088\nmd5_key k\nforward http://127.0.0.1:1\nwebhook_secret " + testkit.Secret + "\n}", wantErr: `partner "PID2088": Alipay's IDs are all digits, at Testfile:2`},
		{name: "inline key damaged in copying", input: "alipay_notify {\n" + strings.Replace(minimal, line, line[:40]+"...broken"+line[60:], 1) + "}", wantErr: "alipay_public_key: malformed inline key: not valid base64: the key was damaged when copied"},
		{name: "inline key with a character outside base64", input: "alipay_notify {\n" + strings.Replace(minimal, line, line[:100]+"#"+line[100:], 1) + "}", wantErr: "or Antom Dashboard), at Testfile:3"},
		{name: "forward not a URL", input: "alipay_notify {\n" + strings.Replace(minimal, "http://127.0.0.1:8080/hook", "127.0.0.1:8080", 1) + "}", wantErr: `forward "127.0.0.1:8080": want an absolute http:// or https:// URL, at Testfile:4`},
		{name: "bad timeout", input: "alipay_notify {\n" + minimal + "timeout soon\n}", wantErr: `"soon" is not a duration`},
		{name: "zero timeout", input: "alipay_notify {\n" + minimal + "timeout 0s\n}", wantErr: "timeout must be positive"},
		{name: "bad max_age", input: "alipay_notify {\n" + minimal + "max_age never\n}", wantErr: `"never" is not a duration`},
		{name: "bad max_body", input: "alipay_notify {\n" + minimal + "max_body lots\n}", wantErr: `"lots" is not a size`},
		{name: "bad default_charset", input: "alipay_notify {\n" + minimal + "default_charset latin1\n}", wantErr: `default_charset: "latin1" is not a charset Alipay sends: give utf-8 or gbk, at Testfile:6`},
		{name: "header_up one arg", input: "alipay_notify {\n" + minimal + "header_up X-A\n}", wantErr: "header_up takes a field name and a value"},
		{name: "two forwards on a line", input: "alipay_notify {\n" + minimal + "alipay_cert a b\n}", wantErr: "alipay_cert takes exactly one value, got 2"},
	}
	for _, tc := range tests {
		if tc.name == "three secrets" {
			tc.input = strings.Replace(tc.input, "webhook_secret "+testkit.Secret, "webhook_secret "+testkit.Secret+" "+testkit.Secret+" "+testkit.Secret, 1)
			tc.wantErr = "webhook_secret takes one or two secrets"
		}
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", h, tc.want)
			}
		})
	}
}

// TestCaddyfileAdapt checks testdata/*.caddyfiletest: a Caddyfile, a line of
// dashes, and the JSON it must adapt to.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.caddyfiletest"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			if !caddytest.CompareAdapt(t, file, input, "caddyfile", strings.TrimSpace(want)) {
				t.Fail()
			}
		})
	}
}
func TestAppBlockCaddyfile(t *testing.T) {
	line := testkit.PublicKeyLine(t, "alipay")
	tail := "forward http://x\nwebhook_secret " + testkit.Secret + "\n"
	tests := map[string]string{
		"policy in app block":  "app 1 {\nalipay_public_key " + line + "\nseller_id 2\n}\n",
		"app without id":       "app {\nalipay_public_key " + line + "\n}\n",
		"app without key":      "app 1 {\n}\n",
		"md5_key alone":        "md5_key abc\n",
		"partner alone":        "partner 2088\n",
		"nothing to verify":    "",
		"notify_verify no md5": "app_id 1\nalipay_public_key " + line + "\nnotify_verify http://x http://y\n",
	}
	wants := map[string]string{
		"policy in app block":  `"seller_id" in app 1: an app block holds only`,
		"app without id":       "app needs the app_id",
		"app without key":      "app 1: no key",
		"md5_key alone":        "partner and md5_key go together",
		"partner alone":        "partner and md5_key go together",
		"nothing to verify":    "app_id with a key",
		"notify_verify no md5": "notify_verify takes at most one gateway URL",
	}
	for name, block := range tests {
		t.Run(name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay_notify {\n" + block + tail + "}"))
			if err == nil || !strings.Contains(err.Error(), wants[name]) {
				t.Fatalf("want error containing %q, got %v", wants[name], err)
			}
		})
	}
	var g Gate
	err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay_verify {\napp_id 1\nalipay_public_key " + line + "\nforward http://x\n}"))
	if err == nil || !strings.Contains(err.Error(), `unknown subdirective "forward"`) {
		t.Fatalf("alipay_verify accepted forward: %v", err)
	}
}
