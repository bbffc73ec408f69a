package integration

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

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
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

// startLoggingCaddy is startTestCaddy with Caddy's log in a JSON file. The
// client's idle connections are closed once the configuration is loaded, so
// that no later request reaches the server of a previous configuration over
// a kept-alive connection.
func startLoggingCaddy(t *testing.T, sites string) *caddyLogFile {
	logs := &caddyLogFile{path: filepath.Join(t.TempDir(), "caddy.log")}
	initTestCaddy(t, debugLog(logs.path), sites)
	return logs
}

// sendHead writes a request's head to caddytest's Caddy over a connection
// of its own and reads the answer: its response, body, and the reader of
// the connection, which stays open until the test ends.
func sendHead(t *testing.T, head string) (*http.Response, []byte, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", "localhost:9080")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, head)
	reader := bufio.NewReader(conn)
	resp, err := http.ReadResponse(reader, nil)
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, answer, reader
}

// waitFile polls the file at path for 5 s until ready holds for its
// content; it fails the test with what and the content otherwise.
func waitFile(t *testing.T, path, what string, ready func(data string) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if ready(string(data)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n%s", what, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// backquoted is s as one Caddyfile token, line breaks included.
func backquoted(s string) string { return "`" + s + "`" }

// signParam returns the value of sign in params.
func signParam(params []testkit.KV) string {
	for _, p := range params {
		if p.K == "sign" {
			return p.V
		}
	}
	return ""
}

// withRawSign is the body of params with sign spelled as given, unescaped.
func withRawSign(params []testkit.KV, rawSign string) string {
	return testkit.EncodeForm(testkit.Without(params, "sign")) + "&sign=" + rawSign
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

func TestReshapedNotificationsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	backend := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0)) // behind alipay_verify
	trade := testkit.LoadVector(t, "trade-rsa2-production.json")
	gateway := testkit.LoadVector(t, "gateway-servicemarket-rsa2-v2.json")
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
		vectorApps, upstream.URL, testkit.Secret,
		vectorApps, upstream.URL, testkit.Secret,
		testkit.Partner, testkit.MD5Key, upstream.URL, testkit.Secret,
		testkit.AppID, testkit.Testdata("keys", "alipay.pub.pem"), backend.URL))

	now := time.Now()
	alipay := testkit.Key(t, "alipay")
	genuine := func(params []testkit.KV) []testkit.KV { return testkit.Signed(t, alipay, params, false) }
	tradeVector := testkit.ParseBody(t, trade.Body)
	gatewayVector := testkit.ParseBody(t, gateway.Body)
	fresh := testkit.TradeParams(testkit.AppID, now)
	closed := testkit.Set(fresh, "trade_status", "TRADE_CLOSED")
	otherSeller := testkit.Set(fresh, "seller_id", "2088000000000009")
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("白色杯子")
	gbk := testkit.Set(testkit.Set(fresh, "charset", "gbk"), "subject", gbkSubject)
	legacy := testkit.MD5Signed(testkit.LegacyParams("legacy-fold-1", "TRADE_SUCCESS", now), testkit.MD5Key)
	stale := genuine(testkit.TradeParams(testkit.AppID, now.Add(-100*time.Hour)))
	nameFold := append(testkit.Without(testkit.Without(genuine(fresh), "notify_id"), "notify_time"),
		testkit.KV{"notify_id=2019081500222155624068450559358070&notify_time", now.In(testkit.Beijing).Format(testkit.TimeLayout)})
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
		{"real vector: notify_time folded into notify_id", "/vectors", testkit.EncodeForm(testkit.Fold(t, tradeVector, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"real vector aged 7 years: the fold is no way around max_age", "/vectors-aged", testkit.EncodeForm(testkit.Fold(t, tradeVector, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"real vector: notify_type folded into notify_time", "/vectors", testkit.EncodeForm(testkit.Fold(t, tradeVector, "notify_time", "notify_type")), 400, embeds("notify_time", "notify_type")},
		{"real vector: seller_id folded into seller_email", "/vectors", testkit.EncodeForm(testkit.Fold(t, tradeVector, "seller_email", "seller_id")), 400, embeds("seller_email", "seller_id")},
		{"real vector: trade_status folded into trade_no", "/vectors", testkit.EncodeForm(testkit.Fold(t, tradeVector, "trade_no", "trade_status")), 400, embeds("trade_no", "trade_status")},
		{"real vector: charset folded into buyer_pay_amount", "/vectors", testkit.EncodeForm(testkit.Fold(t, tradeVector, "buyer_pay_amount", "charset")), 400, embeds("buyer_pay_amount", "charset")},
		{"real vector: invoice_amount folded into gmt_payment", "/vectors", testkit.EncodeForm(testkit.Fold(t, tradeVector, "gmt_payment", "invoice_amount")), 400, embeds("gmt_payment", "invoice_amount")},
		{"real V2 vector: notify_time folded into notify_id", "/vectors", testkit.EncodeForm(testkit.Fold(t, gatewayVector, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"real V2 vector: sign_type folded into service_code", "/vectors", testkit.EncodeForm(testkit.Fold(t, gatewayVector, "service_code", "sign_type")) + "&sign_type=RSA2", 400, embeds("service_code", "sign_type")},
		{"own: notify_time folded into notify_id", "/notify", testkit.EncodeForm(testkit.Fold(t, genuine(fresh), "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"own: notify_type folded into notify_time", "/notify", testkit.EncodeForm(testkit.Fold(t, genuine(fresh), "notify_time", "notify_type")), 400, embeds("notify_time", "notify_type")},
		{"own: seller_id of another seller folded into seller_email", "/notify", testkit.EncodeForm(testkit.Fold(t, genuine(otherSeller), "seller_email", "seller_id")), 400, embeds("seller_email", "seller_id")},
		{"own: TRADE_CLOSED folded into trade_no past forward_status", "/notify", testkit.EncodeForm(testkit.Fold(t, genuine(closed), "trade_no", "trade_status")), 400, embeds("trade_no", "trade_status")},
		{"own: charset folded into buyer_id", "/notify", testkit.EncodeForm(testkit.Fold(t, genuine(fresh), "buyer_id", "charset")), 400, embeds("buyer_id", "charset")},
		{"own GBK: charset folded into buyer_id, GBK bytes read as UTF-8", "/notify", testkit.EncodeForm(testkit.Fold(t, genuine(gbk), "buyer_id", "charset")), 400, `parameter "subject" is not valid UTF-8`},
		{"own: invoice_amount folded into gmt_create", "/notify", testkit.EncodeForm(testkit.Fold(t, genuine(fresh), "gmt_create", "invoice_amount")), 400, embeds("gmt_create", "invoice_amount")},
		{"MD5: notify_time folded into notify_id", "/md5", testkit.EncodeForm(testkit.Fold(t, legacy, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"a parameter name holding = and &", "/notify", testkit.EncodeForm(nameFold), 400, `parameter name "notify_id=2019081500222155624068450559358070&notify_time" is not ASCII letters, digits and _`},
		// What is not a notification.
		{"a return_url parameter set POSTed as a notification", "/notify", testkit.EncodeForm(genuine(testkit.ReturnURLParams(now))), 400, "not a notification: no notify_id"},
		{"blank notify_id", "/notify", testkit.EncodeForm(append(genuine(testkit.Without(fresh, "notify_id")), testkit.KV{"notify_id", " "})), 400, "not a notification: no notify_id"},
		{"notify_id with spaces, signed", "/notify", testkit.EncodeForm(genuine(testkit.Set(fresh, "notify_id", " 2019081500222155624068450559358070 "))), 400, `notify_id " 2019081500222155624068450559358070 " is not a token`},
		{"notify_time blank, no utc_timestamp", "/notify", testkit.EncodeForm(append(genuine(testkit.Without(fresh, "notify_time")), testkit.KV{"notify_time", "\t"})), 400, "not a notification: neither notify_time nor utc_timestamp"},
		// One signature, one spelling.
		{"sign with %0A", "/notify", withRawSign(genuine(fresh), url.QueryEscape(sign[:100]+"\n"+sign[100:])), 400, "sign is not canonical base64: it contains a line break"},
		{"sign with non-zero padding bits", "/notify", withRawSign(genuine(fresh), url.QueryEscape(nonZeroPaddingBits(t, sign))), 400, "sign is not canonical base64"},
		// The gate applies the same rules.
		{"gate: a stale notification with notify_time folded into notify_id", "/gate/notify.php", testkit.EncodeForm(testkit.Fold(t, stale, "notify_id", "notify_time")), 400, embeds("notify_id", "notify_time")},
		{"gate: a POST with a query", "/gate/notify.php?total_amount=999.00", testkit.EncodeForm(genuine(fresh)), 400, "a POST with a query string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, answer, _ := testkit.Post(t, caddyBase+tc.path, tc.body)
			if status != tc.status || answer != "fail" {
				t.Errorf("answer %d %q, want %d fail", status, answer, tc.status)
			}
			if reason := logs.refusalReason(t); !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q\nwant it to contain %q", reason, tc.reason)
			}
			if got := upstream.Take(); len(got) != 0 {
				t.Errorf("a re-shaped notification was forwarded: %s", got[0].Body)
			}
			if got := backend.Take(); len(got) != 0 {
				t.Errorf("a re-shaped notification reached the gated backend: %v", got[0].Header)
			}
		})
	}

	// Blank parameters are not signed, so they do not exist.
	t.Run("blank notify_type: not the webhook type", func(t *testing.T) {
		body := testkit.EncodeForm(append(genuine(testkit.Without(fresh, "notify_type")), testkit.KV{"notify_type", " "}))
		event := forwardedEvent(t, upstream, "/notify", body)
		if event.Type != "alipay.notification" || event.Data["notify_type"] != "" {
			t.Errorf("type %q, data notify_type %q", event.Type, event.Data["notify_type"])
		}
	})
	t.Run("blank trade_status: not read by forward_status", func(t *testing.T) {
		body := testkit.EncodeForm(append(genuine(testkit.Without(fresh, "trade_status")), testkit.KV{"trade_status", "\u3000"}))
		event := forwardedEvent(t, upstream, "/notify", body)
		if _, present := event.Data["trade_status"]; present {
			t.Errorf("blank trade_status forwarded: %q", event.Data["trade_status"])
		}
	})
	for name, blank := range map[string]string{"U+3000": "\u3000", "tab": "\t"} {
		t.Run("gate: blank trade_status ("+name+") is no Alipay-Trade-Status", func(t *testing.T) {
			body := testkit.EncodeForm(append(genuine(testkit.Without(fresh, "trade_status")), testkit.KV{"trade_status", blank}))
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
	gatewayMessage := []testkit.KV{
		{"app_id", testkit.AppID}, {"biz_content", biz}, {"charset", "UTF-8"},
		{"msg_method", "alipay.fund.trans.order.changed"}, {"notify_id", "2026112900262171800512345678"},
		{"sign_type", "RSA2"}, {"utc_timestamp", fmt.Sprint(now.UnixMilli())}, {"version", "1.1"},
	}
	controls := []struct {
		name, path, body, field, want string
	}{
		{"subject=A&B=C (B sorts before subject)", "/notify", testkit.EncodeForm(genuine(testkit.Set(fresh, "subject", "A&B=C"))), "subject", "A&B=C"},
		{"body=x&zz=1 (total_amount sorts between body and zz)", "/notify", testkit.EncodeForm(genuine(testkit.Set(fresh, "body", "x&zz=1"))), "body", "x&zz=1"},
		{"a value holding = alone", "/notify", testkit.EncodeForm(genuine(testkit.Set(fresh, "passback_params", "a=b=c"))), "passback_params", "a=b=c"},
		{"a V2 gateway message whose JSON biz_content holds a URL with &c=1", "/notify", testkit.EncodeForm(testkit.Signed(t, alipay, gatewayMessage, true)), "biz_content", biz},
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
		split := testkit.Signed(t, alipay, gatewayMessage, true)
		for i := range split {
			if split[i].K == "biz_content" {
				split[i].V = `{"out_biz_no":"2026","notify_url":"https://shop.example.com/cb?a=1`
			}
		}
		split = append(split, testkit.KV{"c", `1","status":"SUCCESS"}`})
		status, _, _ := testkit.Post(t, caddyBase+"/notify", testkit.EncodeForm(split))
		if reason := logs.refusalReason(t); status != 400 || !strings.Contains(reason, "the JSON value of biz_content continues into the parameters after it, up to c") {
			t.Errorf("answer %d, reason %q", status, reason)
		}
		if got := upstream.Take(); len(got) != 0 {
			t.Errorf("forwarded: %s", got[0].Body)
		}
	})
	t.Run("control: a genuine return_url GET through the gate", func(t *testing.T) {
		header := gatedHeader(t, backend, http.MethodGet, "/gate/orders/return?"+testkit.EncodeForm(genuine(testkit.ReturnURLParams(now))), "")
		if header.Get("Alipay-Verified") != "true" || header.Get("Alipay-Out-Trade-No") != "20190815155618536-564-57" {
			t.Errorf("headers %v", header)
		}
	})
	t.Run("gate: a GET with a body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, caddyBase+"/gate/orders/return?"+testkit.EncodeForm(genuine(testkit.ReturnURLParams(now))), strings.NewReader("total_amount=999.00"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if reason := logs.refusalReason(t); resp.StatusCode != 400 || !strings.Contains(reason, "a GET with a body") {
			t.Errorf("answer %d, reason %q", resp.StatusCode, reason)
		}
		if got := backend.Take(); len(got) != 0 {
			t.Errorf("reached the backend: %v", got[0].Header)
		}
	})
	t.Run("gate: trailers are removed", func(t *testing.T) {
		body := testkit.EncodeForm(genuine(fresh))
		postWithTrailer := func(path string) testkit.Webhook {
			conn, err := net.Dial("tcp", "localhost:9080")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\nTrailer: Alipay-Verified\r\n\r\n%x\r\n%s\r\n0\r\nAlipay-Verified: spoof\r\n\r\n", path, testkit.ContentType, len(body), body)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := backend.Take()
			if resp.StatusCode != 200 || len(got) != 1 {
				t.Fatalf("%s: status %d, %d requests at the backend", path, resp.StatusCode, len(got))
			}
			return got[0]
		}
		// Without the gate, Caddy passes the client's trailer on: the
		// backend would see it.
		if plain := postWithTrailer("/plain/notify.php"); plain.Trailer.Get("Alipay-Verified") != "spoof" {
			t.Fatalf("control: the trailer did not reach an ungated backend (%v), so this test proves nothing", plain.Trailer)
		}
		gated := postWithTrailer("/gate/notify.php")
		if len(gated.Trailer) != 0 || gated.Header.Get("Alipay-Verified") != "true" || gated.Header.Get("Trailer") != "" {
			t.Errorf("a client trailer reached the gated backend: header %v, trailer %v", gated.Header, gated.Trailer)
		}
	})
	t.Run("log lines carry remote_ip, and trade_no and total_amount when verified", func(t *testing.T) {
		logs.entries(t) // skip what came before
		forwardedEvent(t, upstream, "/notify", testkit.EncodeForm(genuine(fresh)))
		testkit.Post(t, caddyBase+"/notify", "x=%")
		var forwarded, refused map[string]any
		for _, e := range logs.entries(t) {
			switch e["msg"] {
			case "notification forwarded":
				forwarded = e
			case "notification refused":
				refused = e
			}
		}
		if forwarded["remote_ip"] != "127.0.0.1" || forwarded["trade_no"] != testkit.Get(fresh, "trade_no") || forwarded["total_amount"] != "0.10" {
			t.Errorf("forwarded line %v", forwarded)
		}
		if refused["remote_ip"] != "127.0.0.1" {
			t.Errorf("refused line %v", refused)
		}
	})
	t.Run("log fields taken from the request are cut", func(t *testing.T) {
		long := strings.Repeat("9", 40<<10)
		status, _, _ := testkit.Post(t, caddyBase+"/notify", testkit.EncodeForm(testkit.Set(genuine(fresh), "out_trade_no", long)))
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
func forwardedEvent(t *testing.T, upstream *testkit.Upstream, path, body string) testkit.Event {
	t.Helper()
	status, answer, _ := testkit.Post(t, caddyBase+path, body)
	got := upstream.Take()
	if status != 200 || answer != "success" || len(got) != 1 {
		t.Fatalf("answer %d %q, %d webhooks", status, answer, len(got))
	}
	if got[0].VerifyErr != nil {
		t.Fatalf("official library refuses the webhook: %v", got[0].VerifyErr)
	}
	return got[0].Event
}

// gatedHeader sends a request through the gate and returns the request
// headers the backend received.
func gatedHeader(t *testing.T, backend *testkit.Upstream, method, path, body string) http.Header {
	t.Helper()
	req, _ := http.NewRequest(method, caddyBase+path, strings.NewReader(body))
	if body == "" {
		req.Body = nil
	}
	req.Header.Set("Content-Type", testkit.ContentType)
	req.Header.Set("Alipay-Trade-Status", "TRADE_SUCCESS") // a client's own: removed
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := backend.Take()
	if resp.StatusCode != 200 || len(got) != 1 {
		t.Fatalf("status %d, %d requests at the backend", resp.StatusCode, len(got))
	}
	return got[0].Header
}

func TestEarlyTooLargeThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	logs := startLoggingCaddy(t, `http://localhost:9080 {
		`+notifyBlock(t, "/notify", upstream.URL, "max_body 1000")+`
		alipay_verify /gate* {
			app_id `+testkit.AppID+`
			alipay_public_key `+testkit.Testdata("keys", "alipay.pub.pem")+`
			max_body 1000
		}
		respond /gate* "backend" 200
	}`)
	for _, path := range []string{"/notify", "/gate/notify.php"} {
		for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
			t.Run(path+" "+strings.TrimSpace(expect), func(t *testing.T) {
				// Headers only: the 5000 bytes are never sent.
				resp, answer, reader := sendHead(t, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: %s\r\nContent-Length: 5000\r\n%s\r\n", path, testkit.ContentType, expect))
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
	if got := upstream.Take(); len(got) != 0 {
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
	forged := testkit.EncodeForm(testkit.MD5Signed(testkit.LegacyParams("forged-1", "TRADE_SUCCESS", time.Now()), "not-the-key"))
	gate := fmt.Sprintf(`{
			partner %s
			md5_key %s
		}`, testkit.Partner, testkit.MD5Key)

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
				status, _, _ := testkit.Post(t, caddyBase+path, forged)
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
		backend := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
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
				if got := backend.Take(); len(got) > 0 {
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
