package cli

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// TestVerifyVectors checks Alipay's real notifications: the valid ones
// verify with the expected signed string and rule, the forged ones do not.
func TestVerifyVectors(t *testing.T) {
	for _, v := range tk.LoadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			res := run(t, "", "verify", "--key", v.Key.AlipayPublicKey, tk.WriteFile(t, "body", v.Body))
			if !v.Expect.Verified {
				res.mustFail(t, "the notification does not verify as it is")
				if !strings.Contains(res.stdout, "NOT VERIFIED: signature does not verify with any configured key (the plugin answers 403 fail)") {
					t.Errorf("no verdict:\n%s", res.stdout)
				}
				if strings.Contains(v.Name, "html-escaped") {
					if !strings.Contains(res.stdout, "likely cause:  HTML-escaped values: fund_bill_list") {
						t.Errorf("HTML escaping not diagnosed:\n%s", res.stdout)
					}
					want := tk.LoadVector(t, "trade-rsa2-production.json").Expect.StringToSign
					if got := tk.SignedString(t, res.stdout, "signed string that verifies"); got != want {
						t.Errorf("repaired string\n got %s\nwant %s", got, want)
					}
				}
				return
			}
			res.mustSucceed(t)
			if got := tk.SignedString(t, res.stdout, "signed string"); got != v.Expect.StringToSign {
				t.Errorf("signed string\n got %s\nwant %s", got, v.Expect.StringToSign)
			}
			if want := "rule " + strings.ToUpper(v.Expect.ContentRule); !strings.Contains(res.stdout, "VERIFIED: "+want) {
				t.Errorf("output lacks %q:\n%s", want, res.stdout)
			}
		})
	}
}

// TestVerifyReport checks the whole report of a genuine notification and
// of one whose cause is found.
func TestVerifyReport(t *testing.T) {
	vec := tk.LoadVector(t, "trade-rsa2-production.json")
	res := run(t, vec.Body+"\n", "verify", "--key", vec.Key.AlipayPublicKey).mustSucceed(t)
	want := `capture:       raw body, 25 parameters
notify_id:     2019081500222155624068450559358070
app_id:        2019073166072302
out_trade_no:  20190815155618536-564-57
trade_status:  TRADE_SUCCESS
charset:       utf-8
sign_type:     RSA2: hash SHA256 (SHA256withRSA)
verdict:       VERIFIED: rule V1 (sign_type not signed), hash SHA256, key --key #1
signed string (rule V1):
` + vec.Expect.StringToSign + "\n"
	if res.stdout != want {
		t.Errorf("report\n got %s\nwant %s", res.stdout, want)
	}

	escaped := tk.LoadVector(t, "trade-rsa2-production-html-escaped.json")
	key := tk.WriteFile(t, "alipay_public_key.txt", vec.Key.AlipayPublicKey)
	res = run(t, escaped.Body, "verify", "--key", key).mustFail(t, "does not verify")
	for _, want := range []string{
		"verdict:       NOT VERIFIED: signature does not verify with any configured key (the plugin answers 403 fail)\nsigned string (rule V1, as checked; V2 with sign_type was tried too):\n",
		"likely cause:  HTML-escaped values: fund_bill_list hold &quot; (or &amp;, &lt;,\n               ...) where Alipay signed \", &, <\n               Alipay signs JSON-valued fields",
		"repaired:      it verifies: rule V1 (sign_type not signed), hash SHA256, key --key #1 (alipay_public_key.txt)\nsigned string that verifies:\n" + vec.Expect.StringToSign + "\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, res.stdout)
		}
	}
	for _, line := range strings.Split(res.stdout, "\n") {
		if strings.HasPrefix(line, " ") && len([]rune(line)) > 80 && !strings.Contains(line, "=") {
			t.Errorf("explanation line longer than 80 columns: %q", line)
		}
	}
}

// TestVerifyDiagnoses damages notifications signed by testkit's signer in
// each known way and checks that verify names the cause.
func TestVerifyDiagnoses(t *testing.T) {
	alipayKey := tk.Key(t, "alipay")
	pub := tk.Testdata("keys", "alipay.pub.txt")
	appPub := tk.Testdata("keys", "app.pub.txt")
	now := time.Now()

	// A notification whose sign holds a '+', and a passback_params with one.
	var params []tk.KV
	for i := 0; ; i++ {
		params = tk.Signed(t, alipayKey, tk.Set(tk.Set(tk.TradeParams(tk.AppID, now), "notify_id", fmt.Sprint("diag-", i)), "passback_params", "a+b=c"), false)
		if strings.Contains(params[len(params)-1].V, "+") {
			break
		}
	}
	body := tk.EncodeForm(params)

	// Signed with SHA1 while it says RSA2.
	sha1Params := append([]tk.KV(nil), tk.TradeParams(tk.AppID, now)...)
	sha1Params = append(sha1Params, tk.KV{K: "sign", V: tk.RSASign(t, alipayKey, "RSA", tk.AlipayString(sha1Params, false))})

	// Signed over GBK bytes, then re-encoded as UTF-8 by a proxy.
	gbkText := tk.Set(tk.Set(tk.TradeParams(tk.AppID, now), "charset", "gbk"), "subject", "测试商品")
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("测试商品")
	gbkSigned := tk.Signed(t, alipayKey, tk.Set(gbkText, "subject", gbkSubject), false)
	reencoded := tk.EncodeForm(tk.Set(gbkSigned, "subject", "测试商品"))

	// Signed over UTF-8 bytes, then converted to GBK with charset=gbk.
	utf8Signed := tk.Signed(t, alipayKey, tk.Set(tk.TradeParams(tk.AppID, now), "charset", "gbk"), false)
	subjectGBK, _ := simplifiedchinese.GBK.NewEncoder().String(tk.Get(utf8Signed, "subject"))
	toGBK := tk.EncodeForm(tk.Set(utf8Signed, "subject", subjectGBK))

	for _, tc := range []struct {
		name  string
		input string
		args  []string
		cause string
	}{
		{name: "as sent", input: body},
		{"plus turned into space", strings.ReplaceAll(body, "%2B", "+"), nil, "'+' turned into a space in sign, passback_params"},
		{"HTML-escaped", strings.ReplaceAll(body, "%22", "%26quot%3B"), nil, "HTML-escaped values: fund_bill_list"},
		{"query mixed in", body + "&shop_id=12&from=gateway", nil, "parameters mixed in: it verifies without from, shop_id"},
		{"one known parameter added", body + "&body=added", nil, "parameters mixed in: it verifies without body"},
		{"RSA vs RSA2", tk.EncodeForm(sha1Params), nil, "RSA vs RSA2: signed with SHA1withRSA (sign_type RSA), but it says sign_type=RSA2"},
		{"GBK re-encoded as UTF-8", reencoded, nil, "wrong charset: Alipay signed the GBK bytes of these values, but they are UTF-8 here (charset gbk)"},
		{"UTF-8 converted to GBK", toGBK, nil, "wrong charset: Alipay signed the UTF-8 bytes of these values, but they are GBK here (charset gbk)"},
		{"app key", body, []string{"--key", appPub}, "no repair makes it verify"},
		{"app key recognised", body, []string{"--key", appPub, "--app-key", appPub}, "--key #1 (app.pub.txt) is your app's public key (应用公钥), not Alipay's public key (支付宝公钥)"},
		{"app key recognised inline", body, []string{"--key", tk.PublicKeyLine(t, "app"), "--app-key", tk.Testdata("keys", "app.pub.pem")}, "--key #1 is your app's public key (应用公钥)"},
		{"signed with the app key", tk.EncodeForm(tk.Signed(t, tk.Key(t, "app"), tk.TradeParams(tk.AppID, now), false)), []string{"--key", pub, "--app-key", tk.Testdata("keys", "app.key.pem")}, "signed with your app's private key (--app-key #1 (app.key.pem)), not by Alipay"},
		{"forged", strings.Replace(body, "total_amount=0.10", "total_amount=99.00", 1), nil, "no repair makes it verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = []string{"--key", pub}
			}
			res := run(t, tc.input, append([]string{"verify"}, args...)...)
			if tc.cause == "" {
				res.mustSucceed(t)
				return
			}
			res.mustFail(t, "the notification does not verify as it is")
			if !strings.Contains(res.stdout, "NOT VERIFIED") {
				t.Errorf("no NOT VERIFIED verdict:\n%s", res.stdout)
			}
			cause := unwrapped(res.stdout)
			if !strings.Contains(cause, "likely cause: "+tc.cause) {
				t.Errorf("want cause %q:\n%s", tc.cause, res.stdout)
			}
			if strings.Contains(tc.cause, "no repair") && !strings.Contains(cause, "not your app's public key (应用公钥)") {
				t.Errorf("no wrong-key hint:\n%s", res.stdout)
			}
		})
	}
}

// TestVerifyCaptureFormats verifies one notification captured as a log
// line, a JSON object, PHP dumps, an HTTP request and a URL.
func TestVerifyCaptureFormats(t *testing.T) {
	pub := tk.Testdata("keys", "alipay.pub.txt")
	params := tk.Signed(t, tk.Key(t, "alipay"), tk.Set(tk.TradeParams(tk.AppID, time.Now()), "body", `say "hi" \ 中文`), false)
	body := tk.EncodeForm(params)

	var rails, jsonObj, printR, varExport []string
	for _, p := range params {
		rails = append(rails, strconv.Quote(p.K)+"=>"+strconv.Quote(p.V))
		k, _ := json.Marshal(p.K)
		v, _ := json.Marshal(p.V)
		jsonObj = append(jsonObj, string(k)+":"+string(v))
		printR = append(printR, "    ["+p.K+"] => "+p.V)
		varExport = append(varExport, "  '"+p.K+"' => '"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(p.V)+"',")
	}
	// A GBK notification, as Rails logs it: values decoded to UTF-8.
	gbkText := tk.Set(tk.Set(tk.TradeParams(tk.AppID, time.Now()), "charset", "gbk"), "subject", "测试商品 GBK")
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("测试商品 GBK")
	gbkSigned := tk.Signed(t, tk.Key(t, "alipay"), tk.Set(gbkText, "subject", gbkSubject), false)
	var gbkRails []string
	for _, p := range gbkSigned {
		v := p.V
		if p.K == "subject" {
			v = "测试商品 GBK"
		}
		gbkRails = append(gbkRails, strconv.Quote(p.K)+" => "+strconv.Quote(v))
	}

	for _, tc := range []struct{ name, input, format string }{
		{"raw body with a final newline", body + "\n", "raw body"},
		{"Rails log line", `I, [2015-07-01T22:31:17.162614 #1407]  INFO -- :   Parameters: {` + strings.Join(rails, ", ") + "}", "Rails log line"},
		{"Ruby 3.4 hash, GBK", "{" + strings.Join(gbkRails, ", ") + "}", "Rails log line"},
		{"JSON object", "{" + strings.Join(jsonObj, ",") + "}", "JSON object"},
		{"print_r", "Array\n(\n" + strings.Join(printR, "\n") + "\n)\n", "PHP print_r"},
		{"var_export", "array (\n" + strings.Join(varExport, "\n") + "\n)", "PHP var_export"},
		{"HTTP request with a query", "POST /alipay/notify?shop_id=12 HTTP/1.1\r\nHost: shop.example.com\r\nContent-Type: application/x-www-form-urlencoded; text/html; charset=UTF-8\r\n\r\n" + body, "HTTP request (POST)"},
		{"URL", "https://shop.example.com/alipay/return?" + body, "URL query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.input, "verify", "--key", pub).mustSucceed(t)
			if !strings.Contains(res.stdout, "capture:       "+tc.format) || !strings.Contains(res.stdout, "VERIFIED: rule V1") {
				t.Errorf("want capture %q, verified:\n%s", tc.format, res.stdout)
			}
			if strings.Contains(tc.name, "query") && !strings.Contains(res.stdout, "note:          the URL's query parameters (shop_id) are not signed") {
				t.Errorf("no note about the query:\n%s", res.stdout)
			}
			if strings.Contains(tc.name, "GBK") && !strings.Contains(res.stdout, "signed string (rule V1), GBK bytes shown as UTF-8:\n") {
				t.Errorf("GBK bytes not shown as UTF-8:\n%s", res.stdout)
			}
		})
	}
	// --format forces a format.
	res := run(t, body, "verify", "--key", pub, "--format", "body").mustSucceed(t)
	if !strings.Contains(res.stdout, "capture:       raw body, ") {
		t.Errorf("--format body:\n%s", res.stdout)
	}

	// The query of a logged request, merged into the parameters: diagnosed.
	merged := append([]string{`"shop_id"=>"12"`}, rails...)
	res = run(t, "Parameters: {"+strings.Join(merged, ", ")+"}", "verify", "--key", pub).mustFail(t, "does not verify")
	if !strings.Contains(res.stdout, "likely cause:  parameters mixed in: it verifies without shop_id") {
		t.Errorf("merged query not diagnosed:\n%s", res.stdout)
	}

	// The legacy MD5 notification of a Rails log (seed 000): read, and the
	// signature type explained.
	seed := `I, [2015-07-01T22:31:17.162614 #1407]  INFO -- :   Parameters: {"discount"=>"0.00", "payment_type"=>"1", "subject"=>"白色杯子", "trade_no"=>"2015070200001000110058805905", "buyer_email"=>"happypeter1983@gmail.com", "gmt_create"=>"2015-07-02 10:31:11", "notify_type"=>"trade_status_sync", "quantity"=>"1", "out_trade_no"=>"1435804253", "seller_id"=>"2088012362182973", "notify_time"=>"2015-07-02 10:31:11", "trade_status"=>"WAIT_BUYER_PAY", "is_total_fee_adjust"=>"Y", "total_fee"=>"4.50", "seller_email"=>"happycasts@gmail.com", "price"=>"4.50", "buyer_id"=>"2088402465245110", "notify_id"=>"a69c092adb596cffa53830839c705a182m", "use_coupon"=>"N", "sign_type"=>"MD5", "sign"=>"93cd627b390497faece84b35c06daf8c"}`
	res = run(t, seed, "verify", "--key", pub).mustFail(t, "does not verify")
	for _, want := range []string{"capture:       Rails log line", "21 parameters", "subject=白色杯子", "sign_type:     MD5: md5_hex(signed string + the partner's MD5 key)", `unsupported sign_type "MD5"`, "(the plugin answers 400 fail)", "likely cause:  a legacy MD5 signature"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("seed 000 line: output lacks %q:\n%s", want, res.stdout)
		}
	}
	// No sign at all.
	res = run(t, "app_id=1&charset=utf-8", "verify", "--key", pub).mustFail(t, "does not verify")
	if !strings.Contains(res.stdout, "NOT VERIFIED: no sign parameter (the plugin answers 400 fail)") || !strings.Contains(res.stdout, "likely cause:  there is no sign parameter") {
		t.Errorf("no sign:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "sign_type:     no sign_type\n") {
		t.Errorf("no sign_type line:\n%s", res.stdout)
	}
	// Unparseable: the verdict only.
	res = run(t, "a=%zz", "verify", "--key", pub).mustFail(t, "does not verify")
	if want := "capture:       raw body\nverdict:       NOT VERIFIED: malformed notification: parameter \"a\": malformed percent-escape \"%zz\" (the plugin answers 400 fail)\n"; res.stdout != want {
		t.Errorf("unparseable:\n got %q\nwant %q", res.stdout, want)
	}
	// Malformed but parsed: the V1 string and a diagnosis.
	res = run(t, "charset=latin1&sign=x", "verify", "--key", pub).mustFail(t, "does not verify")
	if !strings.Contains(res.stdout, "malformed notification: unsupported charset \"latin1\" (Alipay sends utf-8 or gbk) (the plugin answers 400 fail)\nsigned string (rule V1, as checked):\ncharset=latin1\nlikely cause:") {
		t.Errorf("malformed:\n%s", res.stdout)
	}
}

// TestVerifyInputErrors checks that errors name what is wrong.
func TestVerifyInputErrors(t *testing.T) {
	pub := tk.Testdata("keys", "alipay.pub.txt")
	body := tk.Genuine(t, "input-1")
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no key", body, []string{"verify"}, "--key is required: Alipay's public key (支付宝公钥), as for alipay_public_key (or --cert for alipay_cert)"},
		{"missing key file", body, []string{"verify", "--key", "/nonexistent.pub"}, "--key #1: neither one line of base64, a PEM block, nor a readable file"},
		{"private key", body, []string{"verify", "--key", tk.Testdata("keys", "alipay.key.pem")}, "--key #1 (alipay.key.pem): this is a private key"},
		{"second key", body, []string{"verify", "--key", pub, "--key", "MIIdamaged!"}, "--key #2: "},
		{"missing cert", body, []string{"verify", "--cert", "/nonexistent.crt"}, "--cert #1: open /nonexistent.crt"},
		{"not a cert", body, []string{"verify", "--cert", pub}, "--cert #1 (alipay.pub.txt): no PEM CERTIFICATE block in it"},
		{"missing app key", body, []string{"verify", "--key", pub, "--app-key", "/nonexistent.pub"}, "--app-key #1: neither one line of base64"},
		{"app key not a key", body, []string{"verify", "--key", pub, "--app-key", tk.WriteFile(t, "junk", "not a key!")}, "--app-key #1 (junk): file "},
		{"missing capture", "", []string{"verify", "--key", pub, "/nonexistent.body"}, "open /nonexistent.body"},
		{"two captures", "", []string{"verify", "--key", pub, "a", "b"}, "accepts at most 1 arg(s), received 2"},
		{"empty capture", "", []string{"verify", "--key", pub}, "stdin: the capture is empty"},
		{"empty capture from -", "", []string{"verify", "--key", pub, "-"}, "stdin: the capture is empty"},
		{"empty file", "", []string{"verify", "--key", pub, tk.WriteFile(t, "empty.body", "\n")}, "empty.body: the capture is empty"},
		{"filtered sign", `Parameters: {"sign"=>"[FILTERED]", "a"=>"b"}`, []string{"verify", "--key", pub}, `stdin: sign is "[FILTERED]"`},
		{"unknown format", body, []string{"verify", "--key", pub, "--format", "xml"}, `stdin: --format "xml": want one of auto, body, request, url, json, rails, print_r, var_export`},
		{"JSON number", `{"total_amount": 0.01}`, []string{"verify", "--key", pub}, `JSON value of "total_amount" is the number 0.01`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(t, tc.stdin, tc.args...).mustFail(t, tc.want)
		})
	}

	// Nothing piped in: stdin is a terminal.
	devNull, err := os.Open(os.DevNull) // a character device, as a terminal is
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	runWith(t, devNull, "verify", "--key", pub).mustFail(t, "no capture: give a file (caddy alipay-notify verify --key <key> body.txt) or pipe it on stdin")
}

// TestVerifyMD5AndSM2 checks verify on a legacy MD5 notification
// (--md5-key) and on the SM2 vector signed by OpenSSL.
func TestVerifyMD5AndSM2(t *testing.T) {
	legacy := tk.EncodeForm(tk.MD5Signed(tk.LegacyParams("md5-cli-1", "TRADE_SUCCESS", time.Now()), tk.MD5Key))
	body := tk.WriteFile(t, "legacy", legacy)
	res := run(t, "", "verify", "--md5-key", tk.MD5Key, body).mustSucceed(t)
	if !strings.Contains(res.stdout, "VERIFIED: rule V1 (sign_type not signed), MD5, key md5_key") {
		t.Errorf("MD5 verdict missing:\n%s", res.stdout)
	}
	res = run(t, "", "verify", "--md5-key", "another-key", body).mustFail(t, "does not verify")
	if !strings.Contains(res.stdout, "NOT VERIFIED: MD5 signature does not verify with md5_key (the plugin answers 403 fail)") || !strings.Contains(res.stdout, "likely cause:  a legacy MD5 signature") {
		t.Errorf("MD5, wrong key:\n%s", res.stdout)
	}
	// With an MD5 key and public keys, an RSA2 notification is checked
	// with the public keys.
	run(t, tk.Genuine(t, "md5-and-rsa"), "verify", "--md5-key", "x", "--key", tk.Testdata("keys", "alipay.pub.txt")).mustSucceed(t)
	res = run(t, tk.Genuine(t, "md5-only"), "verify", "--md5-key", "x").mustFail(t, "does not verify")
	if !strings.Contains(res.stdout, "NOT VERIFIED: signature does not verify with any configured key") {
		t.Errorf("RSA2 with only an MD5 key:\n%s", res.stdout)
	}

	vec := tk.LoadVector(t, "sm2-openssl.json")
	res = run(t, "", "verify", "--key", vec.Key.AlipayPublicKey, tk.WriteFile(t, "sm2", vec.Body)).mustSucceed(t)
	if !strings.Contains(res.stdout, "SM2: hash SM3 (SM3withSM2)") || !strings.Contains(res.stdout, "VERIFIED: rule V1 (sign_type not signed), hash SM3, key --key #1") || tk.SignedString(t, res.stdout, "signed string") != vec.Expect.StringToSign {
		t.Errorf("SM2 output:\n%s", res.stdout)
	}
}

// TestVerifyCert checks --cert, alone and beside --key: the certificate's
// key is named by its SN.
func TestVerifyCert(t *testing.T) {
	key := tk.Key(t, "alipay")
	template := &x509.Certificate{
		SerialNumber: big.NewInt(4242),
		Subject:      pkix.Name{CommonName: "Alipay test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tk.WriteFile(t, "alipayCertPublicKey_RSA2.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	body := tk.Genuine(t, "cert-1")
	res := run(t, body, "verify", "--cert", cert).mustSucceed(t)
	if !strings.Contains(res.stdout, "key --cert #1 (alipayCertPublicKey_RSA2.crt) (SN ") {
		t.Errorf("cert output:\n%s", res.stdout)
	}
	res = run(t, body, "verify", "--key", tk.Testdata("keys", "app.pub.txt"), "--cert", cert).mustSucceed(t)
	if !strings.Contains(res.stdout, "key --cert #1") {
		t.Errorf("key and cert:\n%s", res.stdout)
	}
	if got := keyLabel("--key", 1, " -----BEGIN PUBLIC KEY-----"); got != "--key #2" {
		t.Errorf("keyLabel of inline PEM: %q", got)
	}
	if filepath.Base(cert) == "" {
		t.Fatal()
	}
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		text   string
		indent int
		want   string
	}{
		{"short", 15, "short"},
		{"", 15, ""},
		{strings.Repeat("word ", 20), 15, strings.TrimSpace(strings.Repeat("word ", 13)) + "\n" + strings.Repeat(" ", 15) + strings.TrimSpace(strings.Repeat("word ", 7))},
		{strings.Repeat("x", 100), 0, strings.Repeat("x", 100)},
	} {
		if got := wrap(tc.text, tc.indent); got != tc.want {
			t.Errorf("wrap(%q, %d)\n got %q\nwant %q", tc.text, tc.indent, got, tc.want)
		}
	}
}

func TestDisplayValue(t *testing.T) {
	gbkText, _ := simplifiedchinese.GBK.NewEncoder().String("中文")
	for _, tc := range []struct {
		in   string
		gbk  bool
		want string
	}{
		{"abc", true, "abc"},
		{gbkText, true, "中文"},
		{"中文", false, "中文"},
		{"a\xffb", false, "a\uFFFDb"},
	} {
		if got := displayValue(tc.in, tc.gbk); got != tc.want {
			t.Errorf("displayValue(%q, %v) = %q, want %q", tc.in, tc.gbk, got, tc.want)
		}
	}
}
