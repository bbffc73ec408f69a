package alipaynotify

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// The attacks of DESIGN.md §7, each tried through a real Caddy as an
// attacker would, with a captured genuine notification and no key: every
// re-shaped notification is refused with the status and reason of §3/§7,
// and nothing reaches the upstream or the gated backend.

// caddyLogFile follows the JSON log file of a test Caddy.
type caddyLogFile struct {
	path   string
	offset int64
}

// entries returns the log entries written since the last call.
func (l *caddyLogFile) entries(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(l.offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<22)
	for scanner.Scan() {
		l.offset += int64(len(scanner.Bytes())) + 1
		var entry map[string]any
		if json.Unmarshal(scanner.Bytes(), &entry) == nil {
			out = append(out, entry)
		}
	}
	return out
}

// refusalReason returns the reason of the one refusal logged since the last
// call, or "" when none was.
func (l *caddyLogFile) refusalReason(t *testing.T) string {
	t.Helper()
	var reasons []string
	for _, e := range l.entries(t) {
		if msg, _ := e["msg"].(string); msg == "notification refused" || msg == "request refused" {
			reason, _ := e["reason"].(string)
			reasons = append(reasons, reason)
		}
	}
	if len(reasons) > 1 {
		t.Fatalf("%d refusals logged for one request: %q", len(reasons), reasons)
	}
	if len(reasons) == 0 {
		return ""
	}
	return reasons[0]
}

// startLoggingCaddy is startTestCaddy with Caddy's log in a JSON file.
func startLoggingCaddy(t *testing.T, sites string) *caddyLogFile {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	logs := &caddyLogFile{path: filepath.Join(t.TempDir(), "caddy.log")}
	tester := caddytest.NewTester(t)
	tester.InitServer(fmt.Sprintf(`{
		skip_install_trust
		admin localhost:2999
		http_port 9080
		https_port 9443
		grace_period 1ns
		log {
			output file %s
			format json
			level DEBUG
		}
	}
	`, logs.path)+sites, "caddyfile")
	return logs
}

// backquoted is s as one Caddyfile token, line breaks included.
func backquoted(s string) string { return "`" + s + "`" }

// parseBody splits a form body into its parameters, in order, decoded once.
func parseBody(t testing.TB, body string) []kv {
	t.Helper()
	var params []kv
	for _, pair := range strings.Split(body, "&") {
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			t.Fatalf("vector body: %v %v", err1, err2)
		}
		params = append(params, kv{key, value})
	}
	return params
}

// fold re-shapes params as an attacker would: name's parameter is moved
// into the value of into, "<value>&name=<its value>", which leaves the
// signed string byte for byte as it was.
func fold(t testing.TB, params []kv, into, name string) []kv {
	t.Helper()
	var folded string
	for _, p := range params {
		if p.k == name {
			folded = "&" + name + "=" + p.v
		}
	}
	if folded == "" {
		t.Fatalf("fold: no %s", name)
	}
	out := without(params, name)
	for i := range out {
		if out[i].k == into {
			out[i].v += folded
			return out
		}
	}
	t.Fatalf("fold: no %s", into)
	return nil
}

// signParam returns the value of sign in params.
func signParam(params []kv) string {
	for _, p := range params {
		if p.k == "sign" {
			return p.v
		}
	}
	return ""
}

// withRawSign is the body of params with sign spelled as given, unescaped.
func withRawSign(params []kv, rawSign string) string {
	return encodeForm(without(params, "sign")) + "&sign=" + rawSign
}

// nonZeroPaddingBits respells a base64 signature ending in padding with a
// padding bit set: the same bytes for a lenient decoder.
func nonZeroPaddingBits(t *testing.T, sign string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	data := strings.TrimRight(sign, "=")
	if len(data) == len(sign) {
		t.Fatal("signature without padding")
	}
	last := strings.IndexByte(alphabet, data[len(data)-1])
	return data[:len(data)-1] + string(alphabet[last|1]) + sign[len(data):]
}

// returnURLParams is a return_url redirect's parameter set, signed like a
// notification (V1) but without notify_id or notify_time.
func returnURLParams(now time.Time) []kv {
	return []kv{
		{"charset", "utf-8"}, {"out_trade_no", "20190815155618536-564-57"},
		{"method", "alipay.trade.page.pay.return"}, {"total_amount", "0.10"},
		{"sign_type", "RSA2"}, {"trade_no", "2019081522001468450512505578"},
		{"auth_app_id", testAppID}, {"version", "1.0"}, {"app_id", testAppID},
		{"seller_id", "2088531891668739"}, {"timestamp", now.In(beijing).Format(alipayTimeLayout)},
	}
}

func TestReshapedNotificationsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	backend := newTestUpstream(t, testSecret, http.StatusOK, 0) // behind alipay_verify
	trade := loadVector(t, absTestdata(t, "vectors", "trade-rsa2-production.json"))
	gateway := loadVector(t, absTestdata(t, "vectors", "gateway-servicemarket-rsa2-v2.json"))
	vectorApps := fmt.Sprintf(`app %s {
				alipay_public_key %s
			}
			app %s {
				alipay_public_key %s
			}`, trade.AppID, backquoted(trade.Key.AlipayPublicKey), gateway.AppID, backquoted(gateway.Key.AlipayPublicKey))
	logs := startLoggingCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		%s
		alipay_notify /vectors {
			%s
			forward %s
			webhook_secret %s
			max_age off
		}
		alipay_notify /vectors-aged {
			%s
			forward %s
			webhook_secret %s
		}
		alipay_notify /md5 {
			partner %s
			md5_key %s
			forward %s
			webhook_secret %s
		}
		alipay_verify /gate* {
			app_id %s
			alipay_public_key %s
		}
		reverse_proxy /gate* %[14]s
		reverse_proxy /plain* %[14]s
	}`, notifyBlock(t, "/notify", upstream.URL, "forward_status TRADE_SUCCESS"),
		vectorApps, upstream.URL, testSecret,
		vectorApps, upstream.URL, testSecret,
		testPartner, testMD5Key, upstream.URL, testSecret,
		testAppID, absTestdata(t, "keys", "alipay.pub.pem"), backend.URL))

	now := time.Now()
	alipay := testKey(t, "alipay")
	genuine := func(params []kv) []kv { return signed(t, alipay, params, false) }
	tradeVector := parseBody(t, trade.Body)
	gatewayVector := parseBody(t, gateway.Body)
	fresh := tradeParams(testAppID, now)
	closed := set(fresh, "trade_status", "TRADE_CLOSED")
	otherSeller := set(fresh, "seller_id", "2088000000000009")
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("白色杯子")
	gbk := set(set(fresh, "charset", "gbk"), "subject", gbkSubject)
	legacy := md5Signed(legacyParams("legacy-fold-1", "TRADE_SUCCESS", now), testMD5Key)
	stale := genuine(tradeParams(testAppID, now.Add(-100*time.Hour)))
	nameFold := append(without(without(genuine(fresh), "notify_id"), "notify_time"),
		kv{"notify_id=2019081500222155624068450559358070&notify_time", now.In(beijing).Format(alipayTimeLayout)})
	sign := signParam(genuine(fresh))
	embeds := func(k, n string) string {
		return fmt.Sprintf("a value embeds another parameter: %s holds %q", k, "&"+n+"=")
	}

	tests := []struct {
		name, path, body string
		status           int
		reason           string
	}{
		// Folds keep the signed string byte for byte: refused once verified.
		{"real vector: notify_time folded into notify_id", "/vectors", encodeForm(fold(t, tradeVector, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"real vector aged 7 years: the fold is no way around max_age", "/vectors-aged", encodeForm(fold(t, tradeVector, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"real vector: notify_type folded into notify_time", "/vectors", encodeForm(fold(t, tradeVector, "notify_time", "notify_type")), 400, embeds("notify_time", "notify_type")},
		{"real vector: seller_id folded into seller_email", "/vectors", encodeForm(fold(t, tradeVector, "seller_email", "seller_id")), 400, embeds("seller_email", "seller_id")},
		{"real vector: trade_status folded into trade_no", "/vectors", encodeForm(fold(t, tradeVector, "trade_no", "trade_status")), 400, embeds("trade_no", "trade_status")},
		{"real vector: charset folded into buyer_pay_amount", "/vectors", encodeForm(fold(t, tradeVector, "buyer_pay_amount", "charset")), 400, embeds("buyer_pay_amount", "charset")},
		{"real vector: invoice_amount folded into gmt_payment", "/vectors", encodeForm(fold(t, tradeVector, "gmt_payment", "invoice_amount")), 400, embeds("gmt_payment", "invoice_amount")},
		{"real V2 vector: notify_time folded into notify_id", "/vectors", encodeForm(fold(t, gatewayVector, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"real V2 vector: sign_type folded into service_code", "/vectors", encodeForm(fold(t, gatewayVector, "service_code", "sign_type")) + "&sign_type=RSA2", 400, embeds("service_code", "sign_type")},
		{"own: notify_time folded into notify_id", "/notify", encodeForm(fold(t, genuine(fresh), "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"own: notify_type folded into notify_time", "/notify", encodeForm(fold(t, genuine(fresh), "notify_time", "notify_type")), 400, embeds("notify_time", "notify_type")},
		{"own: seller_id of another seller folded into seller_email", "/notify", encodeForm(fold(t, genuine(otherSeller), "seller_email", "seller_id")), 400, embeds("seller_email", "seller_id")},
		{"own: TRADE_CLOSED folded into trade_no past forward_status", "/notify", encodeForm(fold(t, genuine(closed), "trade_no", "trade_status")), 400, embeds("trade_no", "trade_status")},
		{"own: charset folded into buyer_id", "/notify", encodeForm(fold(t, genuine(fresh), "buyer_id", "charset")), 400, embeds("buyer_id", "charset")},
		{"own GBK: charset folded into buyer_id, GBK bytes read as UTF-8", "/notify", encodeForm(fold(t, genuine(gbk), "buyer_id", "charset")), 400, `parameter "subject" is not valid UTF-8`},
		{"own: invoice_amount folded into gmt_create", "/notify", encodeForm(fold(t, genuine(fresh), "gmt_create", "invoice_amount")), 400, embeds("gmt_create", "invoice_amount")},
		{"MD5: notify_time folded into notify_id", "/md5", encodeForm(fold(t, legacy, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"a parameter name holding = and &", "/notify", encodeForm(nameFold), 400, `parameter name "notify_id=2019081500222155624068450559358070&notify_time" is not ASCII letters, digits and _`},
		// What is not a notification.
		{"a return_url parameter set POSTed as a notification", "/notify", encodeForm(genuine(returnURLParams(now))), 400, "not a notification: no notify_id"},
		{"blank notify_id", "/notify", encodeForm(append(genuine(without(fresh, "notify_id")), kv{"notify_id", " "})), 400, "not a notification: no notify_id"},
		{"notify_id with spaces, signed", "/notify", encodeForm(genuine(set(fresh, "notify_id", " 2019081500222155624068450559358070 "))), 400, `notify_id " 2019081500222155624068450559358070 " is not a token`},
		{"notify_time blank, no utc_timestamp", "/notify", encodeForm(append(genuine(without(fresh, "notify_time")), kv{"notify_time", "\t"})), 400, "not a notification: neither notify_time nor utc_timestamp"},
		// One signature, one spelling.
		{"sign with %0A", "/notify", withRawSign(genuine(fresh), url.QueryEscape(sign[:100]+"\n"+sign[100:])), 400, "sign is not canonical base64: it contains a line break"},
		{"sign with non-zero padding bits", "/notify", withRawSign(genuine(fresh), url.QueryEscape(nonZeroPaddingBits(t, sign))), 400, "sign is not canonical base64"},
		// The gate applies the same rules.
		{"gate: a stale notification with notify_time folded into notify_id", "/gate/notify.php", encodeForm(fold(t, stale, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"gate: a POST with a query", "/gate/notify.php?total_amount=999.00", encodeForm(genuine(fresh)), 400, "a POST with a query string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, answer, _ := postNotification(t, caddyBase+tc.path, tc.body)
			if status != tc.status || answer != "fail" {
				t.Errorf("answer %d %q, want %d fail", status, answer, tc.status)
			}
			if reason := logs.refusalReason(t); !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q\nwant it to contain %q", reason, tc.reason)
			}
			if got := upstream.take(); len(got) != 0 {
				t.Errorf("a re-shaped notification was forwarded: %s", got[0].body)
			}
			if got := backend.take(); len(got) != 0 {
				t.Errorf("a re-shaped notification reached the gated backend: %v", got[0].header)
			}
		})
	}

	// Blank parameters are not signed, so they do not exist.
	t.Run("blank notify_type: not the webhook type", func(t *testing.T) {
		body := encodeForm(append(genuine(without(fresh, "notify_type")), kv{"notify_type", " "}))
		event := forwardedEvent(t, upstream, "/notify", body)
		if event.Type != "alipay.notification" || event.Data["notify_type"] != "" {
			t.Errorf("type %q, data notify_type %q", event.Type, event.Data["notify_type"])
		}
	})
	t.Run("blank trade_status: not read by forward_status", func(t *testing.T) {
		body := encodeForm(append(genuine(without(fresh, "trade_status")), kv{"trade_status", "\u3000"}))
		event := forwardedEvent(t, upstream, "/notify", body)
		if _, present := event.Data["trade_status"]; present {
			t.Errorf("blank trade_status forwarded: %q", event.Data["trade_status"])
		}
	})
	for name, blank := range map[string]string{"U+3000": "\u3000", "tab": "\t"} {
		t.Run("gate: blank trade_status ("+name+") is no Alipay-Trade-Status", func(t *testing.T) {
			body := encodeForm(append(genuine(without(fresh, "trade_status")), kv{"trade_status", blank}))
			header := gatedHeader(t, backend, http.MethodPost, "/gate/notify.php", body)
			if header.Get("Alipay-Verified") != "true" {
				t.Fatalf("not verified: %v", header)
			}
			if values, present := header["Alipay-Trade-Status"]; present {
				t.Errorf("Alipay-Trade-Status %q", values)
			}
		})
	}

	// Honest values that look like folds, and real vectors, still pass.
	biz := `{"out_biz_no":"2026","notify_url":"https://shop.example.com/cb?a=1&c=1","status":"SUCCESS"}`
	gatewayMessage := []kv{
		{"app_id", testAppID}, {"biz_content", biz}, {"charset", "UTF-8"},
		{"msg_method", "alipay.fund.trans.order.changed"}, {"notify_id", "2026112900262171800512345678"},
		{"sign_type", "RSA2"}, {"utc_timestamp", fmt.Sprint(now.UnixMilli())}, {"version", "1.1"},
	}
	controls := []struct {
		name, path, body, field, want string
	}{
		{"subject=A&B=C (B sorts before subject)", "/notify", encodeForm(genuine(set(fresh, "subject", "A&B=C"))), "subject", "A&B=C"},
		{"body=x&zz=1 (total_amount sorts between body and zz)", "/notify", encodeForm(genuine(set(fresh, "body", "x&zz=1"))), "body", "x&zz=1"},
		{"a value holding = alone", "/notify", encodeForm(genuine(set(fresh, "passback_params", "a=b=c"))), "passback_params", "a=b=c"},
		{"a V2 gateway message whose JSON biz_content holds a URL with &c=1", "/notify", encodeForm(signed(t, alipay, gatewayMessage, true)), "biz_content", biz},
		{"the real trade vector", "/vectors", trade.Body, "total_amount", "0.10"},
		{"the real V2 gateway vector", "/vectors", gateway.Body, "commodity_order_id", "2019030800000018079639"},
	}
	for _, tc := range controls {
		t.Run("control: "+tc.name, func(t *testing.T) {
			event := forwardedEvent(t, upstream, tc.path, tc.body)
			if event.Data[tc.field] != tc.want {
				t.Errorf("%s = %q, want %q", tc.field, event.Data[tc.field], tc.want)
			}
		})
	}
	t.Run("a JSON value cut in two is refused", func(t *testing.T) {
		split := signed(t, alipay, gatewayMessage, true)
		for i := range split {
			if split[i].k == "biz_content" {
				split[i].v = `{"out_biz_no":"2026","notify_url":"https://shop.example.com/cb?a=1`
			}
		}
		split = append(split, kv{"c", `1","status":"SUCCESS"}`})
		status, _, _ := postNotification(t, caddyBase+"/notify", encodeForm(split))
		if reason := logs.refusalReason(t); status != 400 || !strings.Contains(reason, "the JSON value of biz_content continues into the parameters after it, up to c") {
			t.Errorf("answer %d, reason %q", status, reason)
		}
		if got := upstream.take(); len(got) != 0 {
			t.Errorf("forwarded: %s", got[0].body)
		}
	})
	t.Run("control: a genuine return_url GET through the gate", func(t *testing.T) {
		header := gatedHeader(t, backend, http.MethodGet, "/gate/orders/return?"+encodeForm(genuine(returnURLParams(now))), "")
		if header.Get("Alipay-Verified") != "true" || header.Get("Alipay-Out-Trade-No") != "20190815155618536-564-57" {
			t.Errorf("headers %v", header)
		}
	})
	t.Run("gate: a GET with a body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, caddyBase+"/gate/orders/return?"+encodeForm(genuine(returnURLParams(now))), strings.NewReader("total_amount=999.00"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if reason := logs.refusalReason(t); resp.StatusCode != 400 || !strings.Contains(reason, "a GET with a body") {
			t.Errorf("answer %d, reason %q", resp.StatusCode, reason)
		}
		if got := backend.take(); len(got) != 0 {
			t.Errorf("reached the backend: %v", got[0].header)
		}
	})
	t.Run("gate: trailers are removed", func(t *testing.T) {
		body := encodeForm(genuine(fresh))
		postWithTrailer := func(path string) receivedWebhook {
			conn, err := net.Dial("tcp", "localhost:9080")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\nTrailer: Alipay-Verified\r\n\r\n%x\r\n%s\r\n0\r\nAlipay-Verified: spoof\r\n\r\n", path, alipayFormType, len(body), body)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := backend.take()
			if resp.StatusCode != 200 || len(got) != 1 {
				t.Fatalf("%s: status %d, %d requests at the backend", path, resp.StatusCode, len(got))
			}
			return got[0]
		}
		// Without the gate, Caddy passes the client's trailer on: the
		// backend would see it.
		if plain := postWithTrailer("/plain/notify.php"); plain.trailer.Get("Alipay-Verified") != "spoof" {
			t.Fatalf("control: the trailer did not reach an ungated backend (%v), so this test proves nothing", plain.trailer)
		}
		gated := postWithTrailer("/gate/notify.php")
		if len(gated.trailer) != 0 || gated.header.Get("Alipay-Verified") != "true" || gated.header.Get("Trailer") != "" {
			t.Errorf("a client trailer reached the gated backend: header %v, trailer %v", gated.header, gated.trailer)
		}
	})
	t.Run("log fields taken from the request are cut", func(t *testing.T) {
		long := strings.Repeat("9", 40<<10)
		status, _, _ := postNotification(t, caddyBase+"/notify", encodeForm(set(genuine(fresh), "out_trade_no", long)))
		if status != 403 {
			t.Fatalf("status %d", status)
		}
		for _, e := range logs.entries(t) {
			if e["level"] == "debug" {
				continue
			}
			line, _ := json.Marshal(e)
			if len(line) > 2048 {
				t.Errorf("a %d-byte %s line: %.200s", len(line), e["level"], line)
			}
		}
	})
}

// forwardedEvent posts body and returns the one webhook it produced.
func forwardedEvent(t *testing.T, upstream *testUpstream, path, body string) receivedWebhookEvent {
	t.Helper()
	status, answer, _ := postNotification(t, caddyBase+path, body)
	got := upstream.take()
	if status != 200 || answer != "success" || len(got) != 1 {
		t.Fatalf("answer %d %q, %d webhooks", status, answer, len(got))
	}
	if got[0].verifyErr != nil {
		t.Fatalf("official library refuses the webhook: %v", got[0].verifyErr)
	}
	var event receivedWebhookEvent
	if err := json.Unmarshal(got[0].body, &event); err != nil {
		t.Fatal(err)
	}
	return event
}

// receivedWebhookEvent is a webhook body with data values as raw JSON
// presence: a missing key is absent from Data.
type receivedWebhookEvent struct {
	Type string            `json:"type"`
	Data map[string]string `json:"data"`
}

// gatedHeader sends a request through the gate and returns the request
// headers the backend received.
func gatedHeader(t *testing.T, backend *testUpstream, method, path, body string) http.Header {
	t.Helper()
	req, _ := http.NewRequest(method, caddyBase+path, strings.NewReader(body))
	if body == "" {
		req.Body = nil
	}
	req.Header.Set("Content-Type", alipayFormType)
	req.Header.Set("Alipay-Trade-Status", "TRADE_SUCCESS") // a client's own: removed
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := backend.take()
	if resp.StatusCode != 200 || len(got) != 1 {
		t.Fatalf("status %d, %d requests at the backend", resp.StatusCode, len(got))
	}
	return got[0].header
}

func TestEarlyTooLargeThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	logs := startLoggingCaddy(t, `http://localhost:9080 {
		`+notifyBlock(t, "/notify", upstream.URL, "max_body 1000")+`
		alipay_verify /gate* {
			app_id `+testAppID+`
			alipay_public_key `+absTestdata(t, "keys", "alipay.pub.pem")+`
			max_body 1000
		}
		respond /gate* "backend" 200
	}`)
	for _, path := range []string{"/notify", "/gate/notify.php"} {
		for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
			t.Run(path+" "+strings.TrimSpace(expect), func(t *testing.T) {
				conn, err := net.Dial("tcp", "localhost:9080")
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				// Headers only: the 5000 bytes are never sent.
				fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: %s\r\nContent-Length: 5000\r\n%s\r\n", path, alipayFormType, expect)
				reader := bufio.NewReader(conn)
				resp, err := http.ReadResponse(reader, nil)
				if err != nil {
					t.Fatalf("no answer before the body: %v", err)
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 413 || string(answer) != "fail" || !resp.Close {
					t.Errorf("answer %d %q, close %v; want 413 fail and the connection closed", resp.StatusCode, answer, resp.Close)
				}
				if _, err := reader.ReadByte(); err != io.EOF {
					t.Errorf("connection still open after the 413: %v", err)
				}
				if reason := logs.refusalReason(t); !strings.Contains(reason, "body of 5000 bytes exceeds max_body 1000") {
					t.Errorf("reason %q", reason)
				}
			})
		}
	}
	if got := upstream.take(); len(got) != 0 {
		t.Errorf("forwarded %d", len(got))
	}
}

// fastCGIResponder plays PHP-FPM: it runs a script only when
// SCRIPT_FILENAME names an existing file, and records every run of
// notify.php with the headers it was given.
type fastCGIResponder struct {
	addr string
	mu   sync.Mutex
	runs []http.Header
}

func newFastCGIResponder(t *testing.T, root string) *fastCGIResponder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fastCGIResponder{addr: ln.Addr().String()}
	go func() {
		_ = fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			script := fcgi.ProcessEnv(r)["SCRIPT_FILENAME"]
			if script != filepath.Join(root, "notify.php") {
				http.Error(w, "File not found.", http.StatusNotFound)
				return
			}
			f.mu.Lock()
			f.runs = append(f.runs, r.Header.Clone())
			f.mu.Unlock()
			_, _ = io.WriteString(w, "success")
		}))
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

// take returns and clears the recorded runs.
func (f *fastCGIResponder) take() []http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	runs := f.runs
	f.runs = nil
	return runs
}

// The README's gate examples must stop path variants that a backend maps
// to the gated page: gate a path prefix, not one exact path. Each test
// first shows, with the exact path alone, that the variant does reach the
// backend ungated (so that the check is not vacuous), then that the
// README's prefix configuration refuses it.
func TestGatePathVariantsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	forged := encodeForm(md5Signed(legacyParams("forged-1", "TRADE_SUCCESS", time.Now()), "not-the-key"))
	gate := fmt.Sprintf(`{
			partner %s
			md5_key %s
		}`, testPartner, testMD5Key)

	t.Run("php_fastcgi", func(t *testing.T) {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "notify.php"), []byte("<?php echo 'success';"), 0o644); err != nil {
			t.Fatal(err)
		}
		php := newFastCGIResponder(t, root)
		variants := []string{"/notify.php", "/notify.php/", "/notify.php/x", "/notify.php%2f", "/notify.php%2Fx", "//notify.php", "/./notify.php", "/notify.php."}
		for _, config := range []struct{ name, matcher string }{{"exact path (the old README)", "/notify.php"}, {"README: a prefix", "/notify.php*"}} {
			startLoggingCaddy(t, fmt.Sprintf(`http://localhost:9080 {
				root * %s
				alipay_verify %s %s
				php_fastcgi %s
			}`, root, config.matcher, gate, php.addr))
			var bypassed []string
			for _, path := range variants {
				status, _, _ := postNotification(t, caddyBase+path, forged)
				if runs := php.take(); len(runs) > 0 {
					bypassed = append(bypassed, fmt.Sprintf("%s (%d, Alipay-Verified %q)", path, status, runs[0].Get("Alipay-Verified")))
				}
			}
			switch {
			case config.matcher == "/notify.php" && len(bypassed) == 0:
				t.Errorf("%s: no variant reached notify.php, so this test proves nothing", config.name)
			case config.matcher != "/notify.php" && len(bypassed) > 0:
				t.Errorf("%s: forged posts ran notify.php: %v", config.name, bypassed)
			default:
				t.Logf("%s: forged posts that ran notify.php: %v", config.name, bypassed)
			}
		}
	})

	t.Run("reverse_proxy", func(t *testing.T) {
		backend := newTestUpstream(t, testSecret, http.StatusOK, 0)
		variants := []string{"/orders/return", "/orders/return/", "/orders/return.", "/orders/return%2f", "/orders/return;jsessionid=1", "//orders/return", "/orders/./return"}
		forgedQuery := "?" + forged
		for _, config := range []struct{ name, site string }{
			{"exact path in a route (the old README)", fmt.Sprintf(`route /orders/return {
					alipay_verify %s
					reverse_proxy %s
				}
				reverse_proxy %s`, gate, backend.URL, backend.URL)},
			{"README: a prefix", fmt.Sprintf(`alipay_verify /orders/return* %s
				reverse_proxy %s`, gate, backend.URL)},
		} {
			startLoggingCaddy(t, "http://localhost:9080 {\n"+config.site+"\n}")
			var bypassed []string
			for _, path := range variants {
				resp, err := http.Get(caddyBase + path + forgedQuery)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := backend.take(); len(got) > 0 {
					bypassed = append(bypassed, fmt.Sprintf("%s (%d)", path, resp.StatusCode))
				}
			}
			exact := strings.HasPrefix(config.name, "exact")
			switch {
			case exact && len(bypassed) == 0:
				t.Errorf("%s: no variant reached the backend, so this test proves nothing", config.name)
			case !exact && len(bypassed) > 0:
				t.Errorf("%s: forged redirects reached the backend: %v", config.name, bypassed)
			default:
				t.Logf("%s: forged redirects that reached the backend: %v", config.name, bypassed)
			}
		}
	})
}
