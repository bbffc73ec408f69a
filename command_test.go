package alipaynotify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// These tests run caddy alipay-notify's tools in the built binary, as users
// run them. The notifications they check are signed by helpers_test.go's
// independent signer, or by Alipay (the vectors).

// toolResult is what one run of the binary printed.
type toolResult struct {
	stdout, stderr string
	code           int
}

// runTool runs caddy alipay-notify <args...> with stdin.
func runTool(t *testing.T, stdin string, args ...string) toolResult {
	t.Helper()
	cmd := exec.Command(caddyBinary(t), append([]string{"alipay-notify"}, args...)...)
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return toolResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func (r toolResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// mustSucceed fails the test unless the run exited 0.
func (r toolResult) mustSucceed(t *testing.T) toolResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("want exit 0, got %s", r)
	}
	return r
}

// mustFail fails the test unless the run exited non-zero with want on stderr.
func (r toolResult) mustFail(t *testing.T, want string) toolResult {
	t.Helper()
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("want a failure mentioning %q, got %s", want, r)
	}
	return r
}

// signedString returns the line after the first line starting with label.
func signedString(t *testing.T, out, label string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, label) && i+1 < len(lines) {
			return lines[i+1]
		}
	}
	t.Fatalf("no %q in:\n%s", label, out)
	return ""
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCmdHelp(t *testing.T) {
	res := runTool(t, "", "--help").mustSucceed(t)
	for _, sub := range []string{"demo", "keygen", "webhook-secret", "sign", "send", "verify"} {
		if !strings.Contains(res.stdout, "caddy alipay-notify "+sub) {
			t.Errorf("alipay-notify --help does not list %s:\n%s", sub, res.stdout)
		}
		if sub == "demo" {
			continue
		}
		help := runTool(t, "", sub, "--help").mustSucceed(t)
		for _, want := range []string{"Usage:", "Examples:", "caddy alipay-notify " + sub} {
			if !strings.Contains(help.stdout, want) {
				t.Errorf("%s --help lacks %q:\n%s", sub, want, help.stdout)
			}
		}
	}
}

// TestCmdKeygenSignVerify is the round trip of the README: a key pair, a
// notification signed with it in every variant, verified with its public key.
func TestCmdKeygenSignVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	res := runTool(t, "", "keygen", "--dir", dir).mustSucceed(t)
	keyFile, pubTxt, pubPEM := filepath.Join(dir, "alipay-test.key.pem"), filepath.Join(dir, "alipay-test.pub.txt"), filepath.Join(dir, "alipay-test.pub.pem")
	if !strings.Contains(res.stdout, "alipay_public_key "+pubTxt) {
		t.Errorf("keygen does not show the alipay_public_key line:\n%s", res.stdout)
	}

	// The three files hold one key pair, in the announced forms.
	private, err := loadPrivateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if private.N.BitLen() != 2048 {
		t.Errorf("key size %d, want 2048", private.N.BitLen())
	}
	keyPEM, _ := os.ReadFile(keyFile)
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("private key is not PKCS#8 PEM:\n%s", keyPEM)
	}
	if st, _ := os.Stat(keyFile); st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	line, _ := os.ReadFile(pubTxt)
	if n := strings.Count(strings.TrimSpace(string(line)), "\n"); n != 0 || strings.HasPrefix(string(line), "-----") {
		t.Errorf("pub.txt is not one line of base64:\n%s", line)
	}
	for _, path := range []string{pubTxt, pubPEM} {
		pub, err := parsePublicKey(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !private.PublicKey.Equal(pub) {
			t.Errorf("%s is not the private key's public key", path)
		}
	}

	// No overwriting without --force.
	before, _ := os.ReadFile(keyFile)
	runTool(t, "", "keygen", "--dir", dir).mustFail(t, "already exists").mustFail(t, "--force")
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
		t.Fatal("keygen without --force changed the private key")
	}
	runTool(t, "", "keygen", "--dir", dir, "--force").mustSucceed(t)
	if after, _ := os.ReadFile(keyFile); bytes.Equal(before, after) {
		t.Fatal("keygen --force did not write a new key")
	}
	private, err = loadPrivateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	keys, err := NewKeys(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
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
			args := append([]string{"sign", "--key", keyFile, "--app-id", testAppID}, tc.flags...)
			args = append(args, "out_trade_no=order 1", "total_amount=0.01", "subject=测试商品 +1", "body=", "passback_params=a%3Db")
			body := runTool(t, "", args...).mustSucceed(t).stdout
			if strings.HasSuffix(body, "\n") {
				t.Error("sign printed a newline after the body on a pipe")
			}
			if err := keys.Verify([]byte(body)); err != nil {
				t.Fatalf("the verifier refuses the signed body: %v\n%s", err, body)
			}
			raw, err := parseForm([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"notify_id", "notify_time", "app_id", "charset", "version", "sign_type", "notify_type", "trade_status"} {
				if !raw.has(want) {
					t.Errorf("no default %s in %s", want, body)
				}
			}
			if raw.has("body") {
				t.Error("an empty value was sent")
			}
			if got := raw.get("passback_params"); got != "a%3Db" {
				t.Errorf("passback_params %q, want it as given, a%%3Db", got)
			}
			if !strings.Contains(body, "out_trade_no=order+1") {
				t.Errorf("space not encoded as '+': %s", body)
			}
			if tc.name == "GBK" {
				if !strings.Contains(body, "charset=gbk") || !strings.Contains(body, "subject=%B2%E2%CA%D4") {
					t.Errorf("GBK body lacks charset=gbk or GBK bytes: %s", body)
				}
			}

			res := runTool(t, body, "verify", "--key", pubTxt).mustSucceed(t)
			for _, want := range []string{"VERIFIED", tc.rule, tc.hash, "--key #1 (alipay-test.pub.txt)"} {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("verify output lacks %q:\n%s", want, res.stdout)
				}
			}
			// The signed string verify prints is the one the independent
			// test signer builds from the same parameters.
			var params []kv
			for _, f := range raw {
				value := f.value
				if tc.name == "GBK" {
					value, _ = simplifiedchinese.GBK.NewDecoder().String(value)
				}
				params = append(params, kv{f.key, value})
			}
			want := alipayString(params, tc.rule == "rule V2")
			if got := signedString(t, res.stdout, "signed string"); got != want {
				t.Errorf("signed string\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestSignerRules checks sign.go's signed string against Alipay's real
// vectors and against helpers_test.go's independent signer.
func TestSignerRules(t *testing.T) {
	key := testKey(t, "alipay")
	keys, err := NewKeys(testPublicKeyLine(t, "alipay"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range loadVectors(t) {
		if !v.Expect.Verified {
			continue
		}
		raw, err := parseForm([]byte(v.Body))
		if err != nil {
			t.Fatal(err)
		}
		var params []field
		for _, f := range raw {
			if f.key != "sign" {
				params = append(params, f)
			}
		}
		n := alipayNotification{params: params, signType: raw.get("sign_type"), charset: raw.get("charset"), v2: v.Expect.ContentRule == "v2"}
		signed, err := n.sign(key)
		if err != nil {
			t.Fatal(err)
		}
		if string(signed.content) != v.Expect.StringToSign {
			t.Errorf("%s: signed string\n got %s\nwant %s", v.Name, signed.content, v.Expect.StringToSign)
		}
		if err := keys.Verify([]byte(signed.body())); err != nil {
			t.Errorf("%s re-signed with the test key: %v", v.Name, err)
		}
	}

	// Blank values left out, other values untrimmed, sign_type only in V2,
	// keys in byte order (Java's TreeMap: "a" before "a0", unlike a sort of
	// the joined "k=v" strings), values in GBK bytes.
	params := []field{
		{"b", "2"}, {"a", " 1 "}, {"B", "upper"}, {"empty", ""}, {"blank", " \t\u3000"}, {"sign_type", "RSA"},
		{"charset", "gbk"}, {"subject", "中文 标题"}, {"a_b", "x"}, {"a0", "y"},
	}
	subject, _ := simplifiedchinese.GBK.NewEncoder().String("中文 标题")
	for v2, want := range map[bool]string{
		false: "B=upper&a= 1 &a0=y&a_b=x&b=2&charset=gbk&subject=" + subject,
		true:  "B=upper&a= 1 &a0=y&a_b=x&b=2&charset=gbk&sign_type=RSA&subject=" + subject,
	} {
		n := alipayNotification{params: params, signType: "RSA", charset: "gbk", v2: v2}
		signed, err := n.sign(key)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(signed.content); got != want {
			t.Errorf("v2=%v: signed string\n got %q\nwant %q", v2, got, want)
		}
		if err := keys.Verify([]byte(signed.body())); err != nil {
			t.Errorf("v2=%v: %v", v2, err)
		}
	}
}

func TestCmdSignErrors(t *testing.T) {
	caddyBinary(t)
	key := absTestdata(t, "keys", "alipay.key.pem")
	numbers := writeFile(t, "numbers.json", `{"out_trade_no":"o1","total_amount":0.01}`)
	base := []string{"sign", "--key", key, "--app-id", testAppID}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"sign", "--app-id", testAppID}, "--key is required"},
		{"missing key file", []string{"sign", "--key", "/nonexistent/key.pem", "--app-id", testAppID}, "--key: open /nonexistent/key.pem"},
		{"public key", []string{"sign", "--key", absTestdata(t, "keys", "alipay.pub.pem"), "--app-id", testAppID}, "holds a public key"},
		{"no app_id", []string{"sign", "--key", key}, "--app-id is required"},
		{"sign type", append(base, "--sign-type", "MD5"), `sign type "MD5"`},
		{"charset", append(base, "--charset", "latin1"), `charset "latin1": want utf-8 or gbk`},
		{"not key=value", append(base, "total_amount"), `argument "total_amount": want key=value`},
		{"twice", append(base, "a=1", "a=2"), "argument a given twice"},
		{"sign given", append(base, "sign=abc"), "sign is computed"},
		{"json number", append(base, "--json", numbers), `--json ` + numbers + `: JSON value of "total_amount" is the number 0.01, not a string`},
		{"missing json", append(base, "--json", "/nonexistent.json"), "--json: open /nonexistent.json"},
		{"flag and param disagree", append(base, "--sign-type", "RSA", "sign_type=RSA2"), "--sign-type RSA and sign_type=RSA2 disagree"},
		{"not GBK", append(base, "--charset", "gbk", "subject=😀"), "parameter subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runTool(t, "", tc.args...).mustFail(t, tc.want)
		})
	}

	// A JSON file of strings, overridden by arguments, and defaults it
	// does not replace.
	params := writeFile(t, "params.json", `{"out_trade_no":"o1","total_amount":"1.00","sign_type":"RSA","trade_status":"TRADE_FINISHED"}`)
	body := runTool(t, "", "sign", "--key", key, "--app-id", testAppID, "--json", params, "total_amount=2.00", "notify_type=").mustSucceed(t).stdout
	raw, err := parseForm([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"out_trade_no": "o1", "total_amount": "2.00", "sign_type": "RSA", "trade_status": "TRADE_FINISHED", "notify_type": ""} {
		if got := raw.get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestCmdSend sends to a running Caddy in front of test upstreams.
func TestCmdSend(t *testing.T) {
	caddyBinary(t)
	accepting := newTestUpstream(t, testSecret, http.StatusNoContent, 0)
	failing := newTestUpstream(t, testSecret, http.StatusInternalServerError, 0)
	vec := loadVector(t, filepath.Join("testdata", "vectors", "trade-rsa2-production.json"))
	listen := freePort(t)
	config := fmt.Sprintf(`{
	admin off
	auto_https off
	default_bind 127.0.0.1
}
http://%s {
	alipay_notify /alipay/notify {
		app_id %s
		alipay_public_key %s
		forward %s/hooks/alipay
		webhook_secret %s
	}
	alipay_notify /failing/notify {
		app_id %s
		alipay_public_key %s
		forward %s/hooks/alipay
		webhook_secret %s
	}
	alipay_notify /vector/notify {
		app_id %s
		alipay_public_key %s
		forward %s/hooks/alipay
		webhook_secret %s
		max_age off
	}
}
`, listen,
		testAppID, absTestdata(t, "keys", "alipay.pub.txt"), accepting.URL, testSecret,
		testAppID, absTestdata(t, "keys", "alipay.pub.txt"), failing.URL, testSecret,
		vec.AppID, vec.Key.AlipayPublicKey, accepting.URL, testSecret)
	caddy := runCaddy(t, config, listen)
	base := "http://" + listen
	key := absTestdata(t, "keys", "alipay.key.pem")

	// Signed and sent: forwarded, answered success.
	res := runTool(t, "", "send", "--key", key, "--app-id", testAppID, base+"/alipay/notify", "notify_id=send-1", "out_trade_no=order-1", "total_amount=0.01").mustSucceed(t)
	if res.stdout != "200 success\n" {
		t.Errorf("stdout %q, want \"200 success\\n\"", res.stdout)
	}
	got := accepting.take()
	if len(got) != 1 || got[0].verifyErr != nil || got[0].event.Data["out_trade_no"] != "order-1" || got[0].header.Get("webhook-id") != "send-1" {
		t.Fatalf("upstream got %+v", got)
	}

	// A real notification signed by Alipay, sent as it is.
	res = runTool(t, "", "send", "--body", writeFile(t, "vector.body", vec.Body), base+"/vector/notify").mustSucceed(t)
	if res.stdout != "200 success\n" {
		t.Errorf("vector: stdout %q", res.stdout)
	}
	if got := accepting.take(); len(got) != 1 || got[0].header.Get("webhook-id") != "2019081500222155624068450559358070" {
		t.Fatalf("vector: upstream got %+v", got)
	}
	// The same body from stdin, with the amount forged: refused.
	forged := strings.Replace(vec.Body, "total_amount=0.10", "total_amount=100.10", 1)
	res = runTool(t, forged, "send", "--body", "-", base+"/vector/notify").mustFail(t, "notification refused")
	if res.stdout != "403 fail\n" {
		t.Errorf("forged: stdout %q", res.stdout)
	}

	// Signed with the app's key instead of Alipay's: refused, non-zero.
	res = runTool(t, "", "send", "--key", absTestdata(t, "keys", "app.key.pem"), "--app-id", testAppID, base+"/alipay/notify").mustFail(t, "notification refused")
	if res.stdout != "403 fail\n" {
		t.Errorf("wrong key: stdout %q", res.stdout)
	}
	caddy.waitFor(t, "signature does not verify with any configured key", 5*time.Second)

	// The upstream answers 500: 502 fail, non-zero.
	res = runTool(t, "", "send", "--key", key, "--app-id", testAppID, base+"/failing/notify").mustFail(t, "upstream")
	if res.stdout != "502 fail\n" {
		t.Errorf("failing upstream: stdout %q", res.stdout)
	}
	if len(accepting.take()) != 0 {
		t.Error("a refused notification reached the upstream")
	}

	// Nothing there, and usage errors.
	runTool(t, "", "send", "--key", key, "--app-id", testAppID, "http://"+freePort(t)+"/alipay/notify").mustFail(t, "connection refused")
	runTool(t, "", "send", "--key", key, "--app-id", testAppID).mustFail(t, "the notify URL is required")
	runTool(t, "", "send", "--body", "-", "--key", key, base+"/alipay/notify").mustFail(t, "--key does not apply")
	runTool(t, "", "send", "--body", "/nonexistent.body", base+"/alipay/notify").mustFail(t, "--body: open /nonexistent.body")
	runTool(t, "", "send", "--body", "-", base+"/nowhere").mustFail(t, "empty answer")
}

// TestCmdSendAsAlipay checks what send puts on the wire.
func TestCmdSendAsAlipay(t *testing.T) {
	caddyBinary(t)
	var mu sync.Mutex
	var contentType, body string
	answer := "success"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		contentType, body = r.Header.Get("Content-Type"), string(data)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	runTool(t, "", "send", "--key", absTestdata(t, "keys", "alipay.key.pem"), "--app-id", testAppID, srv.URL+"/notify", "subject=a b").mustSucceed(t)
	mu.Lock()
	defer mu.Unlock()
	if contentType != "application/x-www-form-urlencoded; text/html; charset=UTF-8" {
		t.Errorf("Content-Type %q, want Alipay's", contentType)
	}
	keys, _ := NewKeys(absTestdata(t, "keys", "alipay.pub.txt"))
	if err := keys.Verify([]byte(body)); err != nil || !strings.Contains(body, "subject=a+b") {
		t.Errorf("body %q: %v", body, err)
	}
	// An answer with a newline is not Alipay's "success".
	answer = "success\n"
	mu.Unlock()
	res := runTool(t, "", "send", "--body", "-", srv.URL).mustFail(t, "exactly")
	if res.stdout != "200 \"success\\n\"\n" {
		t.Errorf("stdout %q", res.stdout)
	}
	mu.Lock()
}

// TestCmdVerifyVectors checks Alipay's real notifications: the valid ones
// verify with the expected signed string and rule, the forged ones do not.
func TestCmdVerifyVectors(t *testing.T) {
	caddyBinary(t)
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			res := runTool(t, "", "verify", "--key", v.Key.AlipayPublicKey, writeFile(t, "body", v.Body))
			if !v.Expect.Verified {
				res.mustFail(t, "does not verify")
				if !strings.Contains(res.stdout, "NOT VERIFIED: signature does not verify with any configured key (the plugin answers 403 fail)") {
					t.Errorf("no verdict:\n%s", res.stdout)
				}
				if strings.Contains(v.Name, "html-escaped") {
					if !strings.Contains(res.stdout, "likely cause:  HTML-escaped values: fund_bill_list") {
						t.Errorf("HTML escaping not diagnosed:\n%s", res.stdout)
					}
					want := loadVector(t, filepath.Join("testdata", "vectors", "trade-rsa2-production.json")).Expect.StringToSign
					if got := signedString(t, res.stdout, "signed string that verifies"); got != want {
						t.Errorf("repaired string\n got %s\nwant %s", got, want)
					}
				}
				return
			}
			res.mustSucceed(t)
			if got := signedString(t, res.stdout, "signed string"); got != v.Expect.StringToSign {
				t.Errorf("signed string\n got %s\nwant %s", got, v.Expect.StringToSign)
			}
			if want := "rule " + strings.ToUpper(v.Expect.ContentRule); !strings.Contains(res.stdout, "VERIFIED: "+want) {
				t.Errorf("output lacks %q:\n%s", want, res.stdout)
			}
		})
	}
}

// damagedCapture is a notification damaged the way a cause damages it.
type damagedCapture struct {
	name  string
	input string
	args  []string
	cause string
}

// TestCmdVerifyDiagnoses damages notifications signed by the test signer
// in each known way and checks that verify names the cause.
func TestCmdVerifyDiagnoses(t *testing.T) {
	caddyBinary(t)
	alipayKey := testKey(t, "alipay")
	pub := absTestdata(t, "keys", "alipay.pub.txt")
	appPub := absTestdata(t, "keys", "app.pub.txt")
	now := time.Now()

	// A notification whose sign holds a '+', and a passback_params with one.
	var params []kv
	for i := 0; ; i++ {
		params = signed(t, alipayKey, set(set(tradeParams(testAppID, now), "notify_id", fmt.Sprint("diag-", i)), "passback_params", "a+b=c"), false)
		if strings.Contains(params[len(params)-1].v, "+") {
			break
		}
	}
	body := encodeForm(params)

	// Signed with SHA1 while it says RSA2.
	sha1Params := append([]kv(nil), tradeParams(testAppID, now)...)
	sha1Params = append(sha1Params, kv{"sign", rsaSign(t, alipayKey, "RSA", alipayString(sha1Params, false))})

	// Signed over GBK bytes, then re-encoded as UTF-8 by a proxy.
	gbkText := set(set(tradeParams(testAppID, now), "charset", "gbk"), "subject", "测试商品")
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("测试商品")
	gbkSigned := signed(t, alipayKey, set(gbkText, "subject", gbkSubject), false)
	reencoded := encodeForm(set(gbkSigned, "subject", "测试商品"))

	// Signed over UTF-8 bytes, then converted to GBK with charset=gbk.
	utf8Signed := signed(t, alipayKey, set(tradeParams(testAppID, now), "charset", "gbk"), false)
	subjectUTF8 := ""
	for _, p := range utf8Signed {
		if p.k == "subject" {
			subjectUTF8 = p.v
		}
	}
	subjectGBK, _ := simplifiedchinese.GBK.NewEncoder().String(subjectUTF8)
	toGBK := encodeForm(set(utf8Signed, "subject", subjectGBK))

	for _, tc := range []damagedCapture{
		{name: "as sent", input: body},
		{"plus turned into space", strings.ReplaceAll(body, "%2B", "+"), nil, "'+' turned into a space in sign, passback_params"},
		{"HTML-escaped", strings.ReplaceAll(body, "%22", "%26quot%3B"), nil, "HTML-escaped values: fund_bill_list"},
		{"query mixed in", body + "&shop_id=12&from=gateway", nil, "parameters mixed in: it verifies without from, shop_id"},
		{"one known parameter added", body + "&body=added", nil, "parameters mixed in: it verifies without body"},
		{"RSA vs RSA2", encodeForm(sha1Params), nil, "RSA vs RSA2: signed with SHA1withRSA (sign_type RSA), but it says sign_type=RSA2"},
		{"GBK re-encoded as UTF-8", reencoded, nil, "wrong charset: Alipay signed the GBK bytes of these values, but they are UTF-8 here (charset gbk)"},
		{"UTF-8 converted to GBK", toGBK, nil, "wrong charset: Alipay signed the UTF-8 bytes of these values, but they are GBK here (charset gbk)"},
		{"app key", body, []string{"--key", appPub}, "no repair makes it verify"},
		{"app key recognised", body, []string{"--key", appPub, "--app-key", appPub}, "--key #1 (app.pub.txt) is your app's public key (应用公钥), not Alipay's public key (支付宝公钥)"},
		{"signed with the app key", encodeForm(signed(t, testKey(t, "app"), tradeParams(testAppID, now), false)), []string{"--key", pub, "--app-key", absTestdata(t, "keys", "app.key.pem")}, "signed with your app's private key"},
		{"forged", strings.Replace(body, "total_amount=0.10", "total_amount=99.00", 1), nil, "no repair makes it verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = []string{"--key", pub}
			}
			res := runTool(t, tc.input, append([]string{"verify"}, args...)...)
			if tc.cause == "" {
				res.mustSucceed(t)
				return
			}
			res.mustFail(t, "does not verify as it is")
			if !strings.Contains(res.stdout, "NOT VERIFIED") {
				t.Errorf("no NOT VERIFIED verdict:\n%s", res.stdout)
			}
			cause := regexp.MustCompile(`\s+`).ReplaceAllString(res.stdout, " ") // unwrapped
			if !strings.Contains(cause, "likely cause: "+tc.cause) {
				t.Errorf("want cause %q:\n%s", tc.cause, res.stdout)
			}
			if strings.Contains(tc.cause, "no repair") && !strings.Contains(cause, "not your app's public key (应用公钥)") {
				t.Errorf("no wrong-key hint:\n%s", res.stdout)
			}
		})
	}
}

// TestCmdVerifyCaptureFormats verifies one notification captured as a log
// line, a JSON object, PHP dumps, an HTTP request and a URL.
func TestCmdVerifyCaptureFormats(t *testing.T) {
	caddyBinary(t)
	pub := absTestdata(t, "keys", "alipay.pub.txt")
	params := signed(t, testKey(t, "alipay"), set(tradeParams(testAppID, time.Now()), "body", `say "hi" \ 中文`), false)
	body := encodeForm(params)

	var rails, jsonObj, printR, varExport []string
	for _, p := range params {
		rails = append(rails, strconv.Quote(p.k)+"=>"+strconv.Quote(p.v))
		k, _ := json.Marshal(p.k)
		v, _ := json.Marshal(p.v)
		jsonObj = append(jsonObj, string(k)+":"+string(v))
		printR = append(printR, "    ["+p.k+"] => "+p.v)
		varExport = append(varExport, "  '"+p.k+"' => '"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(p.v)+"',")
	}
	// A GBK notification, as Rails logs it: values decoded to UTF-8.
	gbkText := set(set(tradeParams(testAppID, time.Now()), "charset", "gbk"), "subject", "测试商品 GBK")
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("测试商品 GBK")
	gbkSigned := signed(t, testKey(t, "alipay"), set(gbkText, "subject", gbkSubject), false)
	var gbkRails []string
	for _, p := range gbkSigned {
		v := p.v
		if p.k == "subject" {
			v = "测试商品 GBK"
		}
		gbkRails = append(gbkRails, strconv.Quote(p.k)+" => "+strconv.Quote(v))
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
			res := runTool(t, tc.input, "verify", "--key", pub).mustSucceed(t)
			if !strings.Contains(res.stdout, "capture:       "+tc.format) || !strings.Contains(res.stdout, "VERIFIED: rule V1") {
				t.Errorf("want capture %q, verified:\n%s", tc.format, res.stdout)
			}
			if strings.Contains(tc.name, "query") && !strings.Contains(res.stdout, "(shop_id) are not signed") {
				t.Errorf("no note about the query:\n%s", res.stdout)
			}
		})
	}

	// The query of a logged request, merged into the parameters: diagnosed.
	merged := append([]string{`"shop_id"=>"12"`}, rails...)
	res := runTool(t, "Parameters: {"+strings.Join(merged, ", ")+"}", "verify", "--key", pub).mustFail(t, "does not verify")
	if !strings.Contains(res.stdout, "likely cause:  parameters mixed in: it verifies without shop_id") {
		t.Errorf("merged query not diagnosed:\n%s", res.stdout)
	}

	// The legacy MD5 notification of a Rails log (seed 000): read, and the
	// signature type explained.
	seed := `I, [2015-07-01T22:31:17.162614 #1407]  INFO -- :   Parameters: {"discount"=>"0.00", "payment_type"=>"1", "subject"=>"白色杯子", "trade_no"=>"2015070200001000110058805905", "buyer_email"=>"happypeter1983@gmail.com", "gmt_create"=>"2015-07-02 10:31:11", "notify_type"=>"trade_status_sync", "quantity"=>"1", "out_trade_no"=>"1435804253", "seller_id"=>"2088012362182973", "notify_time"=>"2015-07-02 10:31:11", "trade_status"=>"WAIT_BUYER_PAY", "is_total_fee_adjust"=>"Y", "total_fee"=>"4.50", "seller_email"=>"happycasts@gmail.com", "price"=>"4.50", "buyer_id"=>"2088402465245110", "notify_id"=>"a69c092adb596cffa53830839c705a182m", "use_coupon"=>"N", "sign_type"=>"MD5", "sign"=>"93cd627b390497faece84b35c06daf8c"}`
	res = runTool(t, seed, "verify", "--key", pub).mustFail(t, "does not verify")
	for _, want := range []string{"capture:       Rails log line", "21 parameters", "subject=白色杯子", `unsupported sign_type "MD5"`, "likely cause:  a legacy MD5 signature"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("seed 000 line: output lacks %q:\n%s", want, res.stdout)
		}
	}
	// No sign at all.
	res = runTool(t, "app_id=1&charset=utf-8", "verify", "--key", pub).mustFail(t, "does not verify")
	if !strings.Contains(res.stdout, "NOT VERIFIED: no sign parameter (the plugin answers 400 fail)") || !strings.Contains(res.stdout, "likely cause:  there is no sign parameter") {
		t.Errorf("no sign:\n%s", res.stdout)
	}

	// Input errors name what is wrong.
	runTool(t, body, "verify").mustFail(t, "--key is required")
	runTool(t, body, "verify", "--key", "/nonexistent.pub").mustFail(t, "--key #1: neither one line of base64, a PEM block, nor a readable file")
	runTool(t, body, "verify", "--key", absTestdata(t, "keys", "alipay.key.pem")).mustFail(t, "this is a private key")
	runTool(t, "", "verify", "--key", pub, "/nonexistent.body").mustFail(t, "open /nonexistent.body")
	runTool(t, "", "verify", "--key", pub).mustFail(t, "the capture is empty")
	runTool(t, `Parameters: {"sign"=>"[FILTERED]", "a"=>"b"}`, "verify", "--key", pub).mustFail(t, `sign is "[FILTERED]"`)
	runTool(t, body, "verify", "--key", pub, "--format", "xml").mustFail(t, `--format "xml"`)
	runTool(t, `{"total_amount": 0.01}`, "verify", "--key", pub).mustFail(t, `JSON value of "total_amount" is the number 0.01`)
}

// TestCmdWebhookSecret checks the secret's form and that the plugin takes it.
func TestCmdWebhookSecret(t *testing.T) {
	first := runTool(t, "", "webhook-secret").mustSucceed(t).stdout
	second := runTool(t, "", "webhook-secret").mustSucceed(t).stdout
	if !regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=\n$`).MatchString(first) || first == second {
		t.Fatalf("secrets %q, %q", first, second)
	}
	secret := strings.TrimSpace(first)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) != 32 {
		t.Fatalf("%q decodes to %d bytes: %v", secret, len(key), err)
	}
	if _, err := parseWebhookSecret(secret); err != nil {
		t.Fatal(err)
	}
	config := writeFile(t, "Caddyfile", siteConfig(t, "127.0.0.1:1", "http://127.0.0.1:2/hooks/alipay", secret))
	out, err := exec.Command(caddyBinary(t), "validate", "--config", config).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Valid configuration") {
		t.Fatalf("caddy validate refused the secret: %v\n%s", err, out)
	}
}

// TestCmdVerifyMD5AndSM2 checks verify on a legacy MD5 notification
// (--md5-key) and on the SM2 vector signed by OpenSSL.
func TestCmdVerifyMD5AndSM2(t *testing.T) {
	caddyBinary(t)
	legacy := encodeForm(md5Signed(legacyParams("md5-cli-1", "TRADE_SUCCESS", time.Now()), testMD5Key))
	body := writeFile(t, "legacy", legacy)
	res := runTool(t, "", "verify", "--md5-key", testMD5Key, body).mustSucceed(t)
	if !strings.Contains(res.stdout, "VERIFIED: rule V1 (sign_type not signed), MD5, key md5_key") {
		t.Errorf("MD5 verdict missing:\n%s", res.stdout)
	}
	runTool(t, "", "verify", "--md5-key", "another-key", body).mustFail(t, "does not verify")

	vec := loadVector(t, filepath.Join("testdata", "vectors", "sm2-openssl.json"))
	res = runTool(t, "", "verify", "--key", vec.Key.AlipayPublicKey, writeFile(t, "sm2", vec.Body)).mustSucceed(t)
	if !strings.Contains(res.stdout, "SM2: hash SM3 (SM3withSM2)") || signedString(t, res.stdout, "signed string") != vec.Expect.StringToSign {
		t.Errorf("SM2 output:\n%s", res.stdout)
	}
}
