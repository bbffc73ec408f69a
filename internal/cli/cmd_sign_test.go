package cli

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/diagnose"
	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// verifyBody verifies a body as the handler does, with the test key.
func verifyBody(t *testing.T, body string) (*alipay.Notification, []alipay.Param) {
	t.Helper()
	ring, err := alipay.NewKeyRing(tk.PublicKeyLine(t, "alipay"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := alipay.ParseNotification([]byte(body))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if _, err := ring.Verify(n); err != nil {
		t.Fatalf("the verifier refuses the signed body: %v\n%s", err, body)
	}
	raw, err := alipay.ParseForm([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return n, raw
}

// TestKeygenSignVerify is the round trip of the README: a key pair, a
// notification signed with it in every variant, verified with its public key.
func TestKeygenSignVerify(t *testing.T) {
	dir := t.TempDir()
	run(t, "", "keygen", "--dir", dir).mustSucceed(t)
	keyFile, pubTxt := filepath.Join(dir, "alipay-test.key.pem"), filepath.Join(dir, "alipay-test.pub.txt")
	for _, tc := range []struct {
		name  string
		flags []string
		rule  string
		hash  string
	}{
		{"RSA2", nil, "rule V1", "hash SHA256"},
		{"RSA", []string{"--sign-type", "RSA"}, "rule V1", "hash SHA1"},
		{"V2", []string{"--v2"}, "rule V2", "hash SHA256"},
		{"RSA V2", []string{"--v2", "--sign-type", "RSA"}, "rule V2", "hash SHA1"},
		{"GBK", []string{"--charset", "gbk"}, "rule V1", "hash SHA256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"sign", "--key", keyFile, "--app-id", tk.AppID}, tc.flags...)
			args = append(args, "out_trade_no=order 1", "total_amount=0.01", "subject=测试商品 +1", "body=", "passback_params=a%3Db")
			res := run(t, "", args...).mustSucceed(t)
			body := res.stdout
			if strings.HasSuffix(body, "\n") {
				t.Error("sign printed a newline after the body when stdout is not a terminal")
			}
			if res.stderr != "" {
				t.Errorf("stderr %q without --verbose", res.stderr)
			}
			pub, err := alipay.LoadPublicKey(pubTxt)
			if err != nil {
				t.Fatal(err)
			}
			ring := new(alipay.KeyRing)
			if err := ring.Add("keygen's", pub); err != nil {
				t.Fatal(err)
			}
			n, err := alipay.ParseNotification([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ring.Verify(n); err != nil {
				t.Fatalf("the verifier refuses the signed body: %v\n%s", err, body)
			}
			if err := n.CheckNotification(); err != nil {
				t.Errorf("not a notification: %v", err)
			}
			raw, _ := alipay.ParseForm([]byte(body))
			for _, want := range []string{"notify_id", "notify_time", "app_id", "charset", "version", "sign_type", "notify_type", "trade_status"} {
				if !diagnose.Has(raw, want) {
					t.Errorf("no default %s in %s", want, body)
				}
			}
			if diagnose.Has(raw, "body") {
				t.Error("an empty value was sent")
			}
			if got := n.Get("passback_params"); got != "a%3Db" {
				t.Errorf("passback_params %q, want it as given, a%%3Db", got)
			}
			if !strings.Contains(body, "out_trade_no=order+1") {
				t.Errorf("space not encoded as '+': %s", body)
			}
			if tc.name == "GBK" && (!strings.Contains(body, "charset=gbk") || !strings.Contains(body, "subject=%B2%E2%CA%D4")) {
				t.Errorf("GBK body lacks charset=gbk or GBK bytes: %s", body)
			}

			res = run(t, body, "verify", "--key", pubTxt).mustSucceed(t)
			for _, want := range []string{"VERIFIED", tc.rule, tc.hash, "--key #1 (alipay-test.pub.txt)"} {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("verify output lacks %q:\n%s", want, res.stdout)
				}
			}
			// The signed string verify prints is the one the independent
			// test signer builds from the same parameters.
			var params []tk.KV
			for _, p := range raw {
				value := p.Value
				if tc.name == "GBK" {
					value, _ = simplifiedchinese.GBK.NewDecoder().String(value)
				}
				params = append(params, tk.KV{K: p.Key, V: value})
			}
			if got, want := tk.SignedString(t, res.stdout, "signed string"), tk.AlipayString(params, tc.rule == "rule V2"); got != want {
				t.Errorf("signed string\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestSignDefaults checks the defaults sign fills in.
func TestSignDefaults(t *testing.T) {
	key := tk.Testdata("keys", "alipay.key.pem")
	before := time.Now().Add(-time.Second)
	body := run(t, "", "sign", "--key", key, "--app-id", tk.AppID).mustSucceed(t).stdout
	n, _ := verifyBody(t, body)
	for k, want := range map[string]string{"app_id": tk.AppID, "charset": "utf-8", "version": "1.0", "sign_type": "RSA2", "notify_type": "trade_status_sync", "trade_status": "TRADE_SUCCESS"} {
		if got := n.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !regexp.MustCompile(`^\d{34}$`).MatchString(n.Get("notify_id")) || !strings.HasPrefix(n.Get("notify_id"), time.Now().In(alipay.Beijing).Format("20060102")) {
		t.Errorf("notify_id %q: want the date and 26 random digits", n.Get("notify_id"))
	}
	sent, ok, err := n.SentAt()
	if !ok || err != nil || sent.Before(before.Truncate(time.Second)) || sent.After(time.Now()) {
		t.Errorf("notify_time %q: want now, Beijing time", n.Get("notify_time"))
	}
	second := run(t, "", "sign", "--key", key, "--app-id", tk.AppID).mustSucceed(t).stdout
	if n2, _ := verifyBody(t, second); n2.Get("notify_id") == n.Get("notify_id") {
		t.Error("two notifications with one notify_id")
	}

	// Parameters given explicitly win over defaults; flags agree with them.
	body = run(t, "", "sign", "--key", key, "app_id=2021000000000009", "sign_type=RSA", "--charset", "GBK", "charset=gbk", "notify_id=n-1", "version=").mustSucceed(t).stdout
	n, raw := verifyBody(t, body)
	if n.Get("app_id") != "2021000000000009" || n.SignType() != "RSA" || n.Get("notify_id") != "n-1" || diagnose.Has(raw, "version") || n.Charset() != "gbk" {
		t.Errorf("explicit parameters lost: %s", body)
	}
}

// TestSignVerbose prints the signed string on stderr.
func TestSignVerbose(t *testing.T) {
	key := tk.Testdata("keys", "alipay.key.pem")
	fixed := []string{"notify_id=n-1", "notify_time=2024-01-01 00:00:00", "notify_type=", "trade_status=", "version="}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "signed string (V1, without sign_type, utf-8):\napp_id=" + tk.AppID + "&charset=utf-8&notify_id=n-1&notify_time=2024-01-01 00:00:00&subject=测试\n"},
		{[]string{"--v2", "--charset", "gbk"}, "signed string (V2, with sign_type, gbk):\napp_id=" + tk.AppID + "&charset=gbk&notify_id=n-1&notify_time=2024-01-01 00:00:00&sign_type=RSA2&subject=测试\n"},
	} {
		args := append(append([]string{"sign", "--verbose", "--key", key, "--app-id", tk.AppID, "subject=测试"}, fixed...), tc.flags...)
		if res := run(t, "", args...).mustSucceed(t); res.stderr != tc.want {
			t.Errorf("stderr\n got %q\nwant %q", res.stderr, tc.want)
		}
	}
}

// TestSignerRules checks the signed string of sign against Alipay's real
// vectors and against testkit's independent signer.
func TestSignerRules(t *testing.T) {
	key := tk.Testdata("keys", "alipay.key.pem")
	defaults := []string{"notify_id", "notify_time", "notify_type", "trade_status", "version"}
	for _, v := range tk.LoadVectors(t) {
		if !v.Expect.Verified {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			raw, err := alipay.ParseForm([]byte(v.Body))
			if err != nil {
				t.Fatal(err)
			}
			obj := map[string]string{}
			for _, p := range raw {
				if p.Key != "sign" {
					obj[p.Key] = p.Value
				}
			}
			data, _ := json.Marshal(obj)
			args := []string{"sign", "--verbose", "--key", key, "--json", "-", "--sign-type", obj["sign_type"]}
			if v.Expect.ContentRule == "v2" {
				args = append(args, "--v2")
			}
			for _, k := range defaults {
				if _, ok := obj[k]; !ok {
					args = append(args, k+"=") // not in the vector: no default either
				}
			}
			res := run(t, string(data), args...).mustSucceed(t)
			if got := tk.SignedString(t, res.stderr, "signed string"); got != v.Expect.StringToSign {
				t.Errorf("signed string\n got %s\nwant %s", got, v.Expect.StringToSign)
			}
			verifyBody(t, res.stdout)
		})
	}

	// Blank values left out, other values untrimmed, sign_type only in V2,
	// keys in byte order (Java's TreeMap: "a" before "a0", unlike a sort of
	// the joined "k=v" strings), values in GBK bytes.
	subject, _ := simplifiedchinese.GBK.NewEncoder().String("中文 标题")
	for v2, want := range map[bool]string{
		false: "B=upper&a= 1 &a0=y&a_b=x&app_id=1&b=2&charset=gbk&subject=" + subject,
		true:  "B=upper&a= 1 &a0=y&a_b=x&app_id=1&b=2&charset=gbk&sign_type=RSA&subject=" + subject,
	} {
		args := []string{"sign", "--verbose", "--key", key, "--app-id", "1", "--sign-type", "RSA", "--charset", "gbk",
			"b=2", "a= 1 ", "B=upper", "empty=", "blank= \t\u3000", "subject=中文 标题", "a_b=x", "a0=y",
			"notify_id=", "notify_time=", "notify_type=", "trade_status=", "version="}
		if v2 {
			args = append(args, "--v2")
		}
		res := run(t, "", args...).mustSucceed(t)
		gbkWant, _ := simplifiedchinese.GBK.NewDecoder().String(want)
		if got := tk.SignedString(t, res.stderr, "signed string"); got != gbkWant {
			t.Errorf("v2=%v: signed string\n got %q\nwant %q", v2, got, gbkWant)
		}
		n, _ := verifyBody(t, res.stdout)
		if got := string(n.SignedString(map[bool]alipay.Rule{false: alipay.RuleV1, true: alipay.RuleV2}[v2])); got != want {
			t.Errorf("v2=%v: the verifier's signed string\n got %q\nwant %q", v2, got, want)
		}
		if !strings.Contains(res.stdout, "blank=+%09%A1%A1") {
			t.Errorf("a blank value is sent, though not signed: %s", res.stdout)
		}
	}
}

func TestSignErrors(t *testing.T) {
	key := tk.Testdata("keys", "alipay.key.pem")
	numbers := tk.WriteFile(t, "numbers.json", `{"out_trade_no":"o1","total_amount":0.01}`)
	base := []string{"sign", "--key", key, "--app-id", tk.AppID}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no key", "", []string{"sign", "--app-id", tk.AppID}, "--key is required: the private key file that signs (caddy alipay-notify keygen writes one)"},
		{"missing key file", "", []string{"sign", "--key", "/nonexistent/key.pem", "--app-id", tk.AppID}, "--key: open /nonexistent/key.pem"},
		{"public key", "", []string{"sign", "--key", tk.Testdata("keys", "alipay.pub.pem"), "--app-id", tk.AppID}, "holds a public key"},
		{"no app_id", "", []string{"sign", "--key", key}, "--app-id is required"},
		{"sign type", "", append(base, "--sign-type", "MD5"), `sign type "MD5": want RSA2 (SHA256withRSA) or RSA (SHA1withRSA)`},
		{"sign type parameter", "", append(base, "sign_type=SM2"), `sign type "SM2"`},
		{"charset", "", append(base, "--charset", "latin1"), `charset "latin1": want utf-8 or gbk`},
		{"not key=value", "", append(base, "total_amount"), `argument "total_amount": want key=value, e.g. out_trade_no=order-1`},
		{"empty key", "", append(base, "=1"), `argument "=1": want key=value`},
		{"twice", "", append(base, "a=1", "a=2"), "argument a given twice: Alipay never sends a parameter twice"},
		{"sign given", "", append(base, "sign=abc"), "sign is computed from the other parameters: leave it out"},
		{"sign in JSON", `{"sign":"x"}`, append(base, "--json", "-"), "sign is computed"},
		{"json number", "", append(base, "--json", numbers), `--json ` + numbers + `: JSON value of "total_amount" is the number 0.01, not a string`},
		{"json from stdin", `{"a": true}`, append(base, "--json", "-"), `--json -: JSON value of "a" is a boolean`},
		{"not JSON", `a=1`, append(base, "--json", "-"), `--json -: not a JSON object`},
		{"missing json", "", append(base, "--json", "/nonexistent.json"), "--json: open /nonexistent.json"},
		{"flag and param disagree", "", append(base, "--sign-type", "RSA", "sign_type=RSA2"), "--sign-type RSA and sign_type=RSA2 disagree: give one of them"},
		{"app_id disagrees", "", append(base, "app_id=2"), "--app-id " + tk.AppID + " and app_id=2 disagree"},
		{"charset disagrees", "", append(base, "--charset", "gbk", "charset=utf-8"), "--charset gbk and charset=utf-8 disagree"},
		{"not GBK", "", append(base, "--charset", "gbk", "subject=😀"), "parameter subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(t, tc.stdin, tc.args...).mustFail(t, tc.want)
		})
	}

	// A JSON file of strings, overridden by arguments, and defaults it
	// does not replace.
	params := tk.WriteFile(t, "params.json", `{"out_trade_no":"o1","total_amount":"1.00","sign_type":"RSA","trade_status":"TRADE_FINISHED","buyer_id":null}`)
	body := run(t, "", "sign", "--key", key, "--app-id", tk.AppID, "--json", params, "total_amount=2.00", "notify_type=").mustSucceed(t).stdout
	_, raw := verifyBody(t, body)
	for k, want := range map[string]string{"out_trade_no": "o1", "total_amount": "2.00", "sign_type": "RSA", "trade_status": "TRADE_FINISHED", "notify_type": "", "buyer_id": ""} {
		if got := diagnose.Get(raw, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestRandomNotifyID(t *testing.T) {
	now := time.Date(2024, 2, 29, 23, 59, 59, 0, alipay.Beijing)
	seen := map[string]bool{}
	for i := range 100 {
		id, err := randomNotifyID(now)
		if err != nil || len(id) != 34 || !strings.HasPrefix(id, "20240229") || seen[id] {
			t.Fatalf("#%d: %q, %v", i, id, err)
		}
		seen[id] = true
	}
}
