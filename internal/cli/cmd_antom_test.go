package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/antom"
	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// The test pair "alipay" plays Antom's key; "app" the merchant's own.

var (
	antomKeyFile = tk.Testdata("keys", "alipay.key.pem")
	antomPubFile = tk.Testdata("keys", "alipay.pub.txt")
)

// verifyIndependently checks a signed request with testkit's signer, which
// is written from the protocol document, not from antom.Sign.
func verifyIndependently(t *testing.T, uri, clientID, requestTime, signature string, body []byte) {
	t.Helper()
	if want := tk.AntomSign(t, tk.Key(t, "alipay"), uri, clientID, requestTime, body); signature != want {
		t.Errorf("Signature\n got %s\nwant %s", signature, want)
	}
}

// parseRequestOutput splits sign --antom's request form.
func parseRequestOutput(t *testing.T, out string) (line string, header http.Header, body string) {
	t.Helper()
	head, body, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("no blank line in:\n%s", out)
	}
	lines := strings.Split(head, "\n")
	header = http.Header{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ": ")
		header.Add(k, v)
	}
	return lines[0], header, body
}

func TestSignAntom(t *testing.T) {
	before := time.Now().Add(-time.Second)
	res := run(t, "", "sign", "--antom", "--key", antomKeyFile, "--client-id", tk.AntomClient).mustSucceed(t)
	line, h, body := parseRequestOutput(t, res.stdout)
	if line != "POST /antom/notify HTTP/1.1" || h.Get("Content-Type") != "application/json; charset=UTF-8" || h.Get("Client-Id") != tk.AntomClient || h.Get("Content-Length") != fmt.Sprint(len(body)) {
		t.Errorf("request form:\n%s", res.stdout)
	}
	at, err := time.Parse(time.RFC3339, h.Get("Request-Time"))
	if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) || !strings.HasSuffix(h.Get("Request-Time"), "Z") {
		t.Errorf("Request-Time %q: %v", h.Get("Request-Time"), err)
	}
	verifyIndependently(t, "/antom/notify", tk.AntomClient, h.Get("Request-Time"), h.Get("Signature"), []byte(body))
	n, err := antom.ParseNotification([]byte(body))
	if err != nil || n.NotifyType != "PAYMENT_RESULT" {
		t.Fatalf("default body %s: %v", body, err)
	}
	if !regexp.MustCompile(`^\{"notifyType":"PAYMENT_RESULT","result":\{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"\},"paymentRequestId":"PAY_\d{22}","paymentId":"\d{28}","paymentAmount":\{"currency":"USD","value":"100"\},"paymentCreateTime":"[^"]+","paymentTime":"[^"]+"\}$`).MatchString(body) {
		t.Errorf("default body %s", body)
	}
	// Each default body is new: its webhook-id (from the body) too.
	_, _, other := parseRequestOutput(t, run(t, "", "sign", "--antom", "--key", antomKeyFile, "--client-id", tk.AntomClient).mustSucceed(t).stdout)
	if other == body {
		t.Error("two default bodies are the same")
	}

	// The request form is what verify reads back.
	res = run(t, res.stdout, "verify", "--key", antomPubFile).mustSucceed(t)
	if !strings.Contains(res.stdout, "verdict:       VERIFIED: key --key #1 (alipay.pub.txt)") {
		t.Errorf("sign | verify:\n%s", res.stdout)
	}

	// Given values, a body from stdin, epoch milliseconds, JSON out.
	const given = `{"notifyType":"REFUND_RESULT","refundRequestId":"R-1","amount":{"value":"5"}}` + "\n"
	res = run(t, given, "sign", "--antom", "--key", antomKeyFile, "--client-id", "C1", "--uri", "/pay/antom?x=1", "--request-time", "1747619552000", "--body", "-", "--format", "json").mustSucceed(t)
	var out struct {
		Method, URI string
		Headers     map[string]string
		Body        string
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Method != "POST" || out.URI != "/pay/antom?x=1" || out.Body != given || out.Headers["Client-Id"] != "C1" || out.Headers["Request-Time"] != "1747619552000" || out.Headers["Content-Type"] != antomContentType {
		t.Errorf("json form: %+v", out)
	}
	verifyIndependently(t, "/pay/antom?x=1", "C1", "1747619552000", out.Headers["Signature"], []byte(given))
	if !strings.Contains(res.stdout, `"body": "{\"notifyType\":\"REFUND_RESULT\"`) || strings.Contains(res.stdout, `\u003c`) {
		t.Errorf("json form:\n%s", res.stdout)
	}

	// --verbose shows the signed content; an RFC 3339 time with an offset.
	res = run(t, "", "sign", "--antom", "--key", antomKeyFile, "--client-id", "C1", "--request-time", "2019-04-04T12:08:56.253+05:30", "--body", tk.WriteFile(t, "b.json", `{"a":1}`), "--verbose").mustSucceed(t)
	if res.stderr != "signed content:\nPOST /antom/notify\nC1.2019-04-04T12:08:56.253+05:30.{\"a\":1}\n" {
		t.Errorf("--verbose: %q", res.stderr)
	}
	// A body alipay_notify would refuse is signed, with a warning.
	res = run(t, `{"a":1,"a":2}`, "sign", "--antom", "--key", antomKeyFile, "--client-id", "C1", "--body", "-").mustSucceed(t)
	if !strings.Contains(res.stderr, "warning: --body -: antom: duplicate key in body") {
		t.Errorf("no warning: %q", res.stderr)
	}
}

func TestSignAntomErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--client-id", "C1"}, "--key is required"},
		{[]string{"--key", antomKeyFile}, "--client-id is required with --antom"},
		{[]string{"--key", antomKeyFile, "--client-id", "a.b"}, `--client-id "a.b": Antom's client IDs have no '.'`},
		{[]string{"--key", antomKeyFile, "--client-id", "C1", "--uri", "antom/notify"}, `--uri "antom/notify": want the path and query`},
		{[]string{"--key", antomKeyFile, "--client-id", "C1", "--request-time", "yesterday"}, `--request-time "yesterday": want RFC 3339`},
		{[]string{"--key", "/nonexistent.pem", "--client-id", "C1"}, "--key: "},
		{[]string{"--key", antomKeyFile, "--client-id", "C1", "--body", "/nonexistent.json"}, "--body: open /nonexistent.json"},
		{[]string{"--key", antomKeyFile, "--client-id", "C1", "--format", "curl"}, `--format "curl": want request or json`},
		{[]string{"--key", antomKeyFile, "--client-id", "C1", "--app-id", tk.AppID}, "--antom signs an Antom notification: --app-id applies to domestic ones only"},
		{[]string{"--key", antomKeyFile, "--client-id", "C1", "out_trade_no=1"}, "--antom takes the body from --body"},
	} {
		run(t, "", append([]string{"sign", "--antom"}, tc.args...)...).mustFail(t, tc.want)
	}
	for _, flag := range []string{"client-id", "uri", "request-time", "body", "format"} {
		run(t, "", "sign", "--key", antomKeyFile, "--app-id", tk.AppID, "--"+flag, "x").mustFail(t, "--"+flag+" applies to Antom notifications: add --antom")
	}
	run(t, "", "send", "--body", "-", "--client-id", "x", "http://127.0.0.1:1/").mustFail(t, "--client-id applies to Antom notifications")
}

// TestSendAntom checks what send --antom puts on the wire.
func TestSendAntom(t *testing.T) {
	srv := newNotifyServer(t)
	const success = `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}`
	srv.answerWith(http.StatusOK, success)
	res := run(t, "", "send", "--antom", "--key", antomKeyFile, "--client-id", tk.AntomClient, srv.URL+"/antom/notify?from=test").mustSucceed(t)
	if res.stdout != "200 "+success+"\n" {
		t.Errorf("stdout %q", res.stdout)
	}
	req, body := srv.last(t)
	if !strings.HasPrefix(res.stderr, "POST "+srv.URL+"/antom/notify?from=test (Antom PAYMENT_RESULT, Client-Id "+tk.AntomClient+", Request-Time ") || !strings.HasSuffix(res.stderr, fmt.Sprintf(", %d bytes)\n", len(body))) {
		t.Errorf("stderr %q", res.stderr)
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != antomContentType || req.Header.Get("Client-Id") != tk.AntomClient || req.Header.Get("User-Agent") != "caddy alipay-notify send --antom" {
		t.Errorf("%s %v", req.Method, req.Header)
	}
	// Signed over the URL's path and query.
	verifyIndependently(t, "/antom/notify?from=test", tk.AntomClient, req.Header.Get("Request-Time"), req.Header.Get("Signature"), []byte(body))

	// --uri signs another URI (what a proxy forwards); --body is signed as it is.
	run(t, `{"notifyType":"X"}`, "send", "--antom", "--key", antomKeyFile, "--client-id", "C2", "--uri", "/inner", "--body", "-", srv.URL+"/outer").mustSucceed(t)
	req, body = srv.last(t)
	if body != `{"notifyType":"X"}` {
		t.Errorf("body %q", body)
	}
	verifyIndependently(t, "/inner", "C2", req.Header.Get("Request-Time"), req.Header.Get("Signature"), []byte(body))
	res = run(t, `{}`, "send", "--antom", "--key", antomKeyFile, "--client-id", "C2", "--body", "-", srv.URL).mustSucceed(t)
	if req, _ := srv.last(t); !strings.Contains(res.stderr, "(Antom no notifyType, ") || req.URL.Path != "/" {
		t.Errorf("stderr %q, path %q", res.stderr, req.URL.Path)
	}
	run(t, "", "send", "--antom", "--client-id", "C2", srv.URL).mustFail(t, "--key is required")
	run(t, "", "send", "--antom", "--key", antomKeyFile, "--client-id", "C2", "--sign-type", "RSA", srv.URL).mustFail(t, "--sign-type applies to domestic ones only")
	run(t, "", "send", "--antom", "--key", antomKeyFile, "--client-id", "C2", "http://"+tk.FreePort(t)+"/antom").mustFail(t, "connection refused (is Caddy running and listening there?)")
}

// TestSendAntomAnswers checks what send --antom says about each answer.
func TestSendAntomAnswers(t *testing.T) {
	srv := newNotifyServer(t)
	const (
		retry = "Antom would retry: only 200 with resultStatus \"S\" stops it. "
		fail  = `{"result":{"resultCode":"FAIL","resultStatus":"F","resultMessage":"fail"}}`
	)
	for _, tc := range []struct {
		name     string
		status   int
		answer   string
		location string
		want     string
	}{
		{"success", 200, `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}`, "", ""},
		{"refused", 403, fail, "", "alipay_notify refused the notification: Caddy's log line \"notification refused\" gives the reason (is --client-id one of the antom blocks?"},
		{"malformed", 400, fail, "", "alipay_notify found the notification malformed"},
		{"too large", 413, fail, "", "the body is larger than max_body"},
		{"upstream", 502, fail, "", "the upstream did not accept the webhook"},
		{"upstream timeout", 504, fail, "", "the upstream did not accept the webhook"},
		{"redirect", 301, "", "https://elsewhere.example/", "the URL redirects (to https://elsewhere.example/), and Antom does not follow redirects"},
		{"empty 200", 200, "", "", "an empty answer: nothing handled the request"},
		{"404", 404, "not found", "", "nothing handles this path"},
		{"domestic answer", 400, "fail", "", `the answer is a domestic one ("fail"): this alipay_notify does not know Antom notifications`},
		{"other", 500, strings.Repeat("é", 200), "", "this answer did not come from alipay_notify (it answers Antom in JSON, resultStatus S or F)"},
		{"F with 200", 200, fail, "", "this answer did not come from alipay_notify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.answerWith(tc.status, tc.answer)
			srv.mu.Lock()
			srv.location = tc.location
			srv.mu.Unlock()
			res := run(t, "", "send", "--antom", "--key", antomKeyFile, "--client-id", "C1", srv.URL)
			if !strings.HasPrefix(res.stdout, fmt.Sprint(tc.status)) {
				t.Errorf("stdout %q", res.stdout)
			}
			if tc.want == "" {
				res.mustSucceed(t)
				return
			}
			res.mustFail(t, tc.want)
			if !strings.HasPrefix(res.err.Error(), retry) {
				t.Errorf("error %q", res.err)
			}
		})
	}
}

// antomRequest is a whole HTTP request signed by key over uri.
func antomRequest(t *testing.T, key, uri, clientID string, body []byte) string {
	t.Helper()
	at := tk.AntomMillis(time.Now())
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\nClient-Id: %s\r\nRequest-Time: %s\r\nSignature: %s\r\n\r\n%s",
		uri, clientID, at, tk.AntomSign(t, tk.Key(t, key), uri, clientID, at, body), body)
}

func TestVerifyAntom(t *testing.T) {
	body := tk.AntomPayment("PAY_CLI_1", time.Now())
	good := antomRequest(t, "alipay", "/antom/notify", tk.AntomClient, body)
	res := run(t, good, "verify", "--key", antomPubFile).mustSucceed(t)
	for _, want := range []string{
		"capture:       HTTP request (POST /antom/notify), an Antom notification (Signature header), " + fmt.Sprint(len(body)) + "-byte body\n",
		"client_id:     " + tk.AntomClient + "\n",
		"notifyType:    PAYMENT_RESULT (webhook type antom.PAYMENT_RESULT)\n",
		"request id:    PAY_CLI_1 (paymentRequestId)\n",
		"signature:     RSA256 (SHA256withRSA), keyVersion 1\n",
		"verdict:       VERIFIED: key --key #1 (alipay.pub.txt)\n",
		"signed content:\nPOST /antom/notify\n" + tk.AntomClient + ".",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, res.stdout)
		}
	}
	if !regexp.MustCompile(`request_time:  \d{13} \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, \d+s ago\)`).MatchString(res.stdout) {
		t.Errorf("request_time line:\n%s", res.stdout)
	}
	// The second key of a rotation, the key inline.
	run(t, good, "verify", "--key", tk.PublicKeyLine(t, "alipay2"), "--key", tk.PublicKeyLine(t, "alipay")).mustSucceed(t)

	// The real vector, as a whole request.
	vec := tk.LoadAntomVector(t, "sandbox-response-rsa256.json")
	real := fmt.Sprintf("POST %s HTTP/1.1\nClient-Id: %s\nRequest-Time: %s\nSignature: %s\nContent-Length: %d\n\n%s\n", vec.URI, vec.ClientID, vec.RequestTime, vec.SignatureHeader, len(vec.Body), vec.Body)
	res = run(t, real, "verify", "--key", vec.AntomPublicKey).mustSucceed(t)
	if !strings.Contains(res.stdout, "note:          sent more than the default max_age (72h) ago") || !strings.Contains(res.stdout, "request id:    PAY_20250519095221009 (paymentRequestId)") {
		t.Errorf("real vector:\n%s", res.stdout)
	}

	// A pretty-printed copy of it: the diagnosis, the repaired content.
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, []byte(vec.Body), "", "    ")
	res = run(t, fmt.Sprintf("POST %s HTTP/1.1\nClient-Id: %s\nRequest-Time: %s\nSignature: %s\n\n%s\n", vec.URI, vec.ClientID, vec.RequestTime, vec.SignatureHeader, pretty.String()), "verify", "--key", vec.AntomPublicKey).mustFail(t, "does not verify as it is")
	for _, want := range []string{
		"verdict:       NOT VERIFIED: antom: signature does not verify",
		"(the plugin answers 403 with the FAIL JSON)",
		"likely cause:  the body is pretty-printed: compacting it verifies\n",
		"repaired:      it verifies: key --key #1\n",
		"signed content that verifies:\nPOST " + vec.URI + "\n" + vec.ClientID + "." + vec.RequestTime + "." + vec.Body + "\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("pretty-printed report lacks %q:\n%s", want, res.stdout)
		}
	}
}

func TestVerifyAntomDiagnoses(t *testing.T) {
	body := tk.AntomPayment("PAY_CLI_2", time.Now())
	for _, tc := range []struct {
		name    string
		capture string
		args    []string
		cause   string
	}{
		{"a query added", antomRequest(t, "alipay", "/antom/notify", tk.AntomClient, body), []string{"--format", "request"}, ""},
		{"behind a proxy that strips /antom", strings.Replace(antomRequest(t, "alipay", "/antom/notify", tk.AntomClient, body), "POST /antom/notify", "POST /notify", 1), []string{"--uri", "/antom"},
			"the path lost a prefix: Antom signed /antom/notify, the request line has /notify"},
		{"another client ID", strings.Replace(antomRequest(t, "alipay", "/n", "C1", body), "Client-Id: C1", "Client-Id: C9", 1), []string{"--client-id", "C1"},
			"the Client-Id differs: the signature verifies with Client-Id C1, not C9"},
		{"your own public key", antomRequest(t, "alipay2", "/n", "C1", body), []string{"--key", tk.Testdata("keys", "app.pub.pem"), "--app-key", tk.Testdata("keys", "app.key.pem")},
			"--key #2 (app.pub.pem) is your own public key, not Antom's"},
		{"signed with your own key", antomRequest(t, "app", "/n", "C1", body), []string{"--app-key", tk.PublicKeyLine(t, "app")},
			"signed with your own private key (--app-key #1), not by Antom"},
		{"the wrong key", antomRequest(t, "alipay2", "/n", "C1", body), nil, "no repair makes it verify"},
		{"a GET", strings.Replace(antomRequest(t, "alipay", "/n", "C1", body), "POST", "GET", 1), nil, "method GET: Antom POSTs its notifications (the plugin answers 405)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.capture, append([]string{"verify", "--key", antomPubFile}, tc.args...)...)
			if tc.cause == "" {
				res.mustSucceed(t)
				return
			}
			res.mustFail(t, "does not verify as it is")
			if !strings.Contains(unwrapped(res.stdout), "likely cause: "+tc.cause) {
				t.Errorf("cause %q not in:\n%s", tc.cause, res.stdout)
			}
		})
	}
}

func TestVerifyAntomFlags(t *testing.T) {
	body := tk.AntomPayment("PAY_CLI_3", time.Now())
	at := tk.AntomMillis(time.Now())
	sig := tk.AntomSign(t, tk.Key(t, "alipay"), "/antom/notify", "C1", at, body)
	bodyFile := tk.WriteFile(t, "body.json", string(body)+"\n")
	full := []string{"verify", "--antom", "--key", antomPubFile, "--uri", "/antom/notify", "--client-id", "C1", "--request-time", at}

	// A body and the headers' values by flags: the Signature header, or only its signature.
	res := run(t, "", append(full, "--signature", sig, bodyFile)...).mustSucceed(t)
	if !strings.Contains(res.stdout, "capture:       Antom notification body (--antom), "+fmt.Sprint(len(body))+"-byte body") {
		t.Errorf("report:\n%s", res.stdout)
	}
	_, onlySig, _ := strings.Cut(sig, "signature=")
	run(t, string(body), append(full, "--signature", onlySig, "--format", "body")...).mustSucceed(t)
	// More --uri and --client-id values are tried by the diagnosis.
	res = run(t, string(body), "verify", "--antom", "--key", antomPubFile, "--uri", "/other", "--uri", "/antom/notify", "--client-id", "C1", "--request-time", at, "--signature", sig).mustFail(t, "does not verify")
	if !strings.Contains(unwrapped(res.stdout), "likely cause: the URI differs: Antom signed /antom/notify, the request line has /other") {
		t.Errorf("report:\n%s", res.stdout)
	}

	// A request without a Signature header: --antom and the value by flag.
	bare := fmt.Sprintf("POST /antom/notify HTTP/1.1\nClient-Id: C1\n\n%s", body)
	res = run(t, bare, "verify", "--antom", "--key", antomPubFile, "--request-time", at, "--signature", sig).mustSucceed(t)
	for _, want := range []string{"(--antom: no Signature header)", "note:          Request-Time from --request-time: the capture has none", "note:          Signature from --signature: the capture has none"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, res.stdout)
		}
	}
	noClient := fmt.Sprintf("POST /antom/notify HTTP/1.1\nRequest-Time: %s\nSignature: %s\n\n%s", at, sig, body)
	res = run(t, noClient, "verify", "--key", antomPubFile, "--client-id", "C1").mustSucceed(t)
	if !strings.Contains(res.stdout, "Client-Id from --client-id: the capture has none") {
		t.Errorf("report:\n%s", res.stdout)
	}
	res = run(t, noClient, "verify", "--key", antomPubFile).mustFail(t, "does not verify")
	if !strings.Contains(unwrapped(res.stdout), "likely cause: there is no Client-Id header") || !strings.Contains(res.stdout, "the plugin answers 400") {
		t.Errorf("report:\n%s", res.stdout)
	}

	signed := antomRequest(t, "alipay", "/antom/notify", "C1", body)
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{string(body), []string{"--antom", "--uri", "/n"}, "an Antom body alone needs what its request line and headers carried: give --client-id, --request-time, --signature"},
		{string(body), nil, "this looks like the body of an Antom notification: give the whole HTTP request"},
		{string(body), []string{"--antom", "--format", "json"}, "--antom reads a whole HTTP request or a body, not --format json"},
		{"POST /n HTTP/1.1\nbroken\n\n{}", []string{"--antom"}, "is not a header field"},
		{"{}", []string{"--antom", "--format", "request"}, "not an HTTP request"},
		{signed, []string{"--cert", "x.crt"}, "--cert applies to domestic notifications, and this capture is an Antom one"},
		{signed, []string{"--request-time", "1"}, "--request-time applies to a capture without a Request-Time header"},
		{signed, []string{"--signature", "x"}, "--signature applies to a capture without a Signature header"},
		{"a=1&sign=x", []string{"--uri", "/n"}, "--uri applies to Antom notifications, and this capture is not one (no Signature header): add --antom"},
		{signed, []string{"--key", tk.Testdata("keys", "nonexistent.pub")}, "--key #2"},
		{signed, []string{"--app-key", "not a key"}, "--app-key #1"},
		{strings.Replace(signed, "Request-Time:", "Request-Time: 1\r\nRequest-Time:", 1), nil,
			"alipay_notify answers this capture 400 FAIL: antom: header sent more than once: Request-Time, 2 times"},
	} {
		args := append([]string{"verify", "--key", antomPubFile}, tc.args...)
		run(t, tc.stdin, args...).mustFail(t, tc.want)
	}
	run(t, signed, "verify").mustFail(t, "--key is required: Antom's public key")
	// An SM2 key is not an Antom key.
	sm2 := tk.LoadVector(t, "sm2-openssl.json").Key.AlipayPublicKey
	run(t, signed, "verify", "--key", sm2).mustFail(t, "Antom signs with RSA keys")
	// A request with a Signature header, read as domestic with --format url: not Antom.
	run(t, "POST /n HTTP/1.1\nSignature: x\n\na=1", "verify", "--key", antomPubFile, "--format", "body").mustFail(t, "does not verify")
}

func TestSignatureHeader(t *testing.T) {
	for in, want := range map[string]string{
		"algorithm=RSA256,keyVersion=2,signature=abc": "algorithm=RSA256,keyVersion=2,signature=abc",
		" abc%3D%3D ":   "algorithm=RSA256,keyVersion=1,signature=abc%3D%3D",
		"abc==":         "algorithm=RSA256,keyVersion=1,signature=abc==",
		"signature=abc": "signature=abc",
	} {
		if got := signatureHeader(in); got != want {
			t.Errorf("signatureHeader(%q) = %q, want %q", in, got, want)
		}
	}
}
