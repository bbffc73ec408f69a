package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// Antom notifications (DESIGN.md §10) through a real Caddy: every accepted
// and refused case of §10, each checked for its status, its exact JSON
// answer and Content-Type, its outcome and log reason, and what reached
// the upstream (nothing on a refusal; on acceptance one webhook that the
// official Standard Webhooks library verifies, whose type, timestamp, data
// and id follow §10). The notifications are signed by testkit.AntomSign,
// written from antom-protocol.md independently of the plugin's antom.Sign.

// Antom's two answers (§10), byte for byte.
const (
	antomSuccessJSON = `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}`
	antomFailJSON    = `{"result":{"resultCode":"FAIL","resultStatus":"F","resultMessage":"fail"}}`
)

// antomReply is what Caddy answered.
type antomReply struct {
	status int
	body   string
	header http.Header
}

// sendAntom sends one request to Caddy with exactly these headers (names
// as given: a lower-case name goes out lower-case).
func sendAntom(t *testing.T, method, path string, header http.Header, body []byte) antomReply {
	t.Helper()
	req, err := http.NewRequest(method, caddyBase+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	req.Header = header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return antomReply{status: resp.StatusCode, body: string(answer), header: resp.Header}
}

// antomLogged is what Caddy logged for one request.
type antomLogged struct {
	reasons   []string         // of "notification refused" lines
	forwarded []map[string]any // "notification forwarded" lines
	details   []map[string]any // DEBUG "refused notification details" lines
	all       []map[string]any
}

func readAntomLog(t *testing.T, logs *caddyLogFile) antomLogged {
	t.Helper()
	var l antomLogged
	for _, e := range logs.entries(t) {
		if e["logger"] != "http.handlers.alipay_notify" {
			continue
		}
		l.all = append(l.all, e)
		switch e["msg"] {
		case "notification refused":
			reason, _ := e["reason"].(string)
			l.reasons = append(l.reasons, reason)
		case "notification forwarded":
			l.forwarded = append(l.forwarded, e)
		case "refused notification details":
			l.details = append(l.details, e)
		}
	}
	return l
}

// antomWebhookID is §10's webhook-id, computed here independently.
func antomWebhookID(body []byte) string {
	sum := sha256.Sum256(body)
	return "antom_" + hex.EncodeToString(sum[:])[:32]
}

// requestTimeInstant reads a Request-Time the test sent.
func requestTimeInstant(t *testing.T, rt string) time.Time {
	t.Helper()
	var ms int64
	if _, err := fmt.Sscanf(rt, "%d", &ms); err == nil && fmt.Sprint(ms) == rt {
		return time.UnixMilli(ms)
	}
	at, err := time.Parse(time.RFC3339Nano, rt)
	if err != nil {
		t.Fatalf("test Request-Time %q: %v", rt, err)
	}
	return at
}

// compactJSON is body without insignificant white space.
func compactJSON(t *testing.T, body []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// checkAntomWebhook checks one webhook against §10: verified by the official
// library, type antom.<notifyType>, timestamp the Request-Time instant,
// data the posted object (compacted, every byte of every value kept),
// webhook-id from the body.
func checkAntomWebhook(t *testing.T, w testkit.Webhook, body []byte, requestTime, wantType string) {
	t.Helper()
	if w.VerifyErr != nil {
		t.Fatalf("official Standard Webhooks library refuses the webhook: %v\n%s", w.VerifyErr, w.Body)
	}
	if ct := w.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("webhook Content-Type %q", ct)
	}
	if id := w.Header.Get("webhook-id"); id != antomWebhookID(body) {
		t.Errorf("webhook-id %q, want %q", id, antomWebhookID(body))
	}
	if w.Event.Type != wantType {
		t.Errorf("type %q, want %q", w.Event.Type, wantType)
	}
	at, err := time.Parse(time.RFC3339Nano, w.Event.Timestamp)
	if err != nil || !at.Equal(requestTimeInstant(t, requestTime)) {
		t.Errorf("timestamp %q (%v), want the instant of Request-Time %q", w.Event.Timestamp, err, requestTime)
	}
	if want := compactJSON(t, body); !bytes.Equal(w.Event.RawData, want) {
		t.Errorf("data\n%s\nwant the posted object\n%s", w.Event.RawData, want)
	}
	// The whole webhook body is exactly these three members.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(w.Body, &members); err != nil || len(members) != 3 {
		t.Errorf("webhook body %s: %d members, %v", w.Body, len(members), err)
	}
}

func TestAntomThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ok := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	failing := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusInternalServerError, 0))
	slow := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 2*time.Second))
	downURL := testkit.ClosedURL(t)
	upstreams := []*testkit.Upstream{ok, failing, slow}

	vector := testkit.LoadAntomVector(t, "sandbox-response-rsa256.json")
	tamperedVector := testkit.LoadAntomVector(t, "sandbox-response-rsa256-tampered.json")
	t.Setenv("ANTOM_VECTOR_KEY", vector.AntomPublicKey)
	caPEM, err := os.ReadFile(testkit.Testdata("keys", "ca.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	accessLog := filepath.Join(t.TempDir(), "access.log")

	// Client A has two keys (rotation): alipay2, as a path, then app, as
	// one line; client B one, ca, as an inline PEM block. The domestic app
	// of /antom has its own key, alipay: no key serves two.
	clientA := fmt.Sprintf(`antom %s {
				antom_public_key %s
				antom_public_key %s
			}`, testkit.AntomClient, testkit.Testdata("keys", "alipay2.pub.pem"), testkit.PublicKeyLine(t, "app"))
	clientB := fmt.Sprintf(`antom %s {
				antom_public_key %s
			}`, testkit.AntomClient2, backquoted(string(caPEM)))
	antomOnly := func(path, forward, extra string) string {
		return fmt.Sprintf(`alipay_notify %s {
			%s
			forward %s
			webhook_secret %s
			%s
		}
		`, path, clientA, forward, testkit.Secret, extra)
	}
	logs := startLoggingCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		log {
			output file %s
			format json
		}
		log_append antom_request_id {http.alipay_notify.out_trade_no}
		header {
			defer
			X-Alipay-Outcome {http.alipay_notify.outcome}
			X-Alipay-Notify {http.alipay_notify.notify_id}/{http.alipay_notify.app_id}/{http.alipay_notify.trade_status}/{http.alipay_notify.out_trade_no}
		}
		rewrite /legacy/notify /antom?rewritten=1
		alipay_notify /antom {
			app_id %s
			alipay_public_key %s
			%s
			%s
			forward %s/hooks/antom
			webhook_secret %s
			max_body 8KiB
		}
		%s%s%s%s
		alipay_notify %s {
			antom %s {
				antom_public_key {env.ANTOM_VECTOR_KEY}
			}
			forward %s/hooks/antom
			webhook_secret %s
			max_age off
		}
		respond "not an Alipay endpoint" 404
	}`, accessLog, testkit.AppID, testkit.Testdata("keys", "alipay.pub.pem"), clientA, clientB, ok.URL, testkit.Secret,
		antomOnly("/antom-no-max-age", ok.URL, "max_age off"),
		antomOnly("/failing", failing.URL, ""),
		antomOnly("/slow", slow.URL, "timeout 300ms"),
		antomOnly("/down", downURL, ""),
		vector.URI, vector.ClientID, ok.URL, testkit.Secret))

	now := time.Now()
	keyA1, keyA2 := testkit.Key(t, "alipay2"), testkit.Key(t, "app")
	keyB, domestic := testkit.Key(t, "ca"), testkit.Key(t, "alipay")
	ms := testkit.AntomMillis(now)
	body := testkit.AntomPayment("PAY_20260101000000001", now)

	signed := func(key *rsa.PrivateKey, uri, client, rt string, body []byte) http.Header {
		return testkit.AntomHeaders(client, rt, testkit.AntomSign(t, key, uri, client, rt, body))
	}
	withSignature := func(h http.Header, value string) http.Header {
		h = h.Clone()
		h.Set("Signature", value)
		return h
	}
	without := func(h http.Header, name string) http.Header {
		h = h.Clone()
		h.Del(name)
		return h
	}
	good := signed(keyA1, "/antom", testkit.AntomClient, ms, body)
	sigField := testkit.AntomSignature(t, keyA1, "/antom", testkit.AntomClient, ms, body)

	// A body whose signature has a '+' (and so %2B), a '/' and padding.
	var plusBody []byte
	var plusSig string
	for i := 0; ; i++ {
		plusBody = testkit.AntomPayment(fmt.Sprintf("PAY_PLUS_%d", i), now)
		plusSig = testkit.AntomSignature(t, keyA1, "/antom", testkit.AntomClient, ms, plusBody)
		if strings.Contains(plusSig, "%2B") && strings.Contains(plusSig, "%2F") && strings.HasSuffix(plusSig, "%3D") {
			break
		}
		if i == 1000 {
			t.Fatal("no signature with '+', '/' and padding in 1000 tries")
		}
	}
	plusHeader := func(sig string) http.Header {
		return testkit.AntomHeaders(testkit.AntomClient, ms, "algorithm=RSA256,keyVersion=1,signature="+sig)
	}

	pretty := func(b []byte) []byte {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	prettyBody := pretty(testkit.AntomPayment("PAY_PRETTY", now))
	tampered := bytes.Replace(body, []byte(`"value":"100"`), []byte(`"value":"9000"`), 1)
	offset := now.In(time.FixedZone("", 5*3600+1800)).Format("2006-01-02T15:04:05.000-07:00")
	zulu := now.UTC().Format("2006-01-02T15:04:05Z")
	stale := testkit.AntomMillis(now.Add(-100 * time.Hour))
	lower := http.Header{
		"content-type": {"application/json"}, "client-id": {testkit.AntomClient},
		"request-time": {ms}, "signature": {good.Get("Signature")},
	}
	// A notification that the structural checks must refuse, signed all
	// the same, so that only the rule under test refuses it.
	signedBody := func(b string) (http.Header, []byte) {
		return signed(keyA1, "/antom", testkit.AntomClient, ms, []byte(b)), []byte(b)
	}
	arrayHeader, arrayBody := signedBody(`[` + string(body) + `]`)
	twoHeader, twoBody := signedBody(string(body) + `{"notifyType":"REFUND_RESULT"}`)
	emptyHeader, emptyBody := signedBody(``)
	dupHeader, dupBody := signedBody(`{"notifyType":"PAYMENT_RESULT","paymentAmount":{"currency":"USD","value":"100","value":"9000"}}`)
	dupEscHeader, dupEscBody := signedBody(`{"notifyType":"PAYMENT_RESULT","paymentAmount":{"currency":"USD","value":"100"},"list":[{"a":1,"\u0061":2}]}`)
	typeHeader, typeBody := signedBody(`{"notifyType":7,"paymentAmount":{"currency":"USD","value":"100"}}`)
	bigBody := []byte(strings.Replace(string(body), `"notifyType"`, `"padding":"`+strings.Repeat("x", 9000)+`","notifyType"`, 1))
	domesticBody := testkit.EncodeForm(testkit.Signed(t, domestic, testkit.TradeParams(testkit.AppID, now), false))
	domesticHeader := http.Header{"Content-Type": {testkit.ContentType}}

	type antomCase struct {
		name    string
		method  string // POST when empty
		path    string // /antom when empty
		header  http.Header
		body    []byte
		status  int
		outcome string
		reason  string            // a refusal's logged reason contains it
		to      *testkit.Upstream // the upstream that gets the one webhook (nil: none)
		key     string            // the key that verified, as logged
		text    bool              // a domestic answer, success or fail in text
	}
	refused := func(name string, h http.Header, b []byte, status int, outcome, reason string) antomCase {
		return antomCase{name: name, header: h, body: b, status: status, outcome: outcome, reason: reason}
	}
	accepted := func(name, path string, h http.Header, b []byte, key string) antomCase {
		return antomCase{name: name, path: path, header: h, body: b, status: 200, outcome: "forwarded", to: ok, key: key}
	}
	at := func(path string, c antomCase) antomCase {
		c.path = path
		return c
	}
	otherClient := good.Clone()
	otherClient.Set("Client-Id", testkit.AntomClient2)
	// A signed header sent twice, the signed value first: which copy a
	// reader takes is a guess, so neither is taken.
	twice := func(name, second string) http.Header {
		h := good.Clone()
		h.Add(name, second)
		return h
	}
	const key1, key2 = "antom_public_key #1", "antom_public_key #2"
	const mismatch = "antom: signature does not verify with any of"
	tests := []antomCase{
		// Accepted: every form Antom sends.
		accepted("Request-Time in epoch milliseconds", "", good, body, key1),
		accepted("Request-Time RFC 3339 with an offset and milliseconds", "", signed(keyA1, "/antom", testkit.AntomClient, offset, body), body, key1),
		accepted("Request-Time RFC 3339 in UTC (Z)", "", signed(keyA1, "/antom", testkit.AntomClient, zulu, body), body, key1),
		accepted("spaces after the commas (as the docs show)", "", withSignature(good, "algorithm=RSA256, keyVersion=1, signature="+sigField), body, key1),
		accepted("fields in another order", "", withSignature(good, "signature="+sigField+",algorithm=RSA256,keyVersion=1"), body, key1),
		accepted("keyVersion 2 does not pick a key", "", withSignature(good, "algorithm=RSA256,keyVersion=2,signature="+sigField), body, key1),
		accepted("keyVersion missing", "", withSignature(good, "algorithm=RSA256,signature="+sigField), body, key1),
		accepted("lower-case header names", "", lower, body, key1),
		accepted("a query in the URI, signed as received", "/antom?source=antom&ref=%41%2f", signed(keyA1, "/antom?source=antom&ref=%41%2f", testkit.AntomClient, ms, body), body, key1),
		accepted("a URI rewritten by Caddy: signed over the original", "/legacy/notify", signed(keyA1, "/legacy/notify", testkit.AntomClient, ms, body), body, key1),
		accepted("%2B, %2F and %3D in the signature", "", plusHeader(plusSig), plusBody, key1),
		accepted("a raw + in the signature", "", plusHeader(strings.ReplaceAll(plusSig, "%2B", "+")), plusBody, key1),
		accepted("the signature not percent-encoded at all", "", plusHeader(strings.NewReplacer("%2B", "+", "%2F", "/", "%3D", "=").Replace(plusSig)), plusBody, key1),
		accepted("rotation: the block's second key", "", signed(keyA2, "/antom", testkit.AntomClient, ms, body), body, key2),
		accepted("a pretty-printed body, signed as sent", "", signed(keyA1, "/antom", testkit.AntomClient, ms, prettyBody), prettyBody, key1),
		accepted("Request-Time 100h old with max_age off", "/antom-no-max-age", signed(keyA1, "/antom-no-max-age", testkit.AntomClient, stale, body), body, key1),
		accepted("Request-Time 10 minutes ahead (a sender's clock)", "", signed(keyA1, "/antom", testkit.AntomClient, testkit.AntomMillis(now.Add(10*time.Minute)), body), body, key1),
		{name: "a domestic notification on the same endpoint", header: domesticHeader, body: []byte(domesticBody), status: 200, outcome: "forwarded", to: ok, text: true},

		// Refused 403: well formed, not signed by this client's keys.
		refused("a tampered body (value 100 to 9000)", good, tampered, 403, "bad_signature", mismatch),
		refused("a re-serialised (pretty-printed) copy of the compact body", good, pretty(body), 403, "bad_signature", mismatch),
		refused("the Client-Id of another configured client on a body signed for the first", otherClient, body, 403, "bad_signature", mismatch+" 1 key(s)"),
		refused("an unconfigured client", signed(keyA1, "/antom", "SANDBOX_5Y00000000000009", ms, body), body, 403, "app_refused", `antom: unknown Client-Id: "SANDBOX_5Y00000000000009"`),
		refused("another block's key", signed(keyB, "/antom", testkit.AntomClient, ms, body), body, 403, "bad_signature", mismatch+" 2 key(s)"),
		refused("the domestic key", signed(domestic, "/antom", testkit.AntomClient, ms, body), body, 403, "bad_signature", mismatch+" 2 key(s)"),
		refused("the second client with the first client's key", signed(keyA1, "/antom", testkit.AntomClient2, ms, body), body, 403, "bad_signature", mismatch+" 1 key(s)"),
		refused("Request-Time changed after signing", withSignature(testkit.AntomHeaders(testkit.AntomClient, testkit.AntomMillis(now.Add(time.Second)), ""), good.Get("Signature")), body, 403, "bad_signature", mismatch),
		at("/antom?paymentAmount=1", refused("a query that was not signed", good, body, 403, "bad_signature", mismatch)),
		at("/antom?ref=A", refused("a query re-encoded (%41 signed, A sent)", signed(keyA1, "/antom?ref=%41", testkit.AntomClient, ms, body), body, 403, "bad_signature", mismatch)),
		at("/legacy/notify", refused("a rewritten URI signed as rewritten", signed(keyA1, "/antom?rewritten=1", testkit.AntomClient, ms, body), body, 403, "bad_signature", mismatch)),
		refused("Request-Time 100h old", signed(keyA1, "/antom", testkit.AntomClient, stale, body), body, 403, "stale", "(Request-Time), more than max_age 72h0m0s"),
		refused("Request-Time in seconds reads as 1970", signed(keyA1, "/antom", testkit.AntomClient, fmt.Sprint(now.Unix()), body), body, 403, "stale", "more than max_age 72h0m0s"),

		// Refused 400: not an Antom notification as Antom sends them.
		refused("Request-Time twice", twice("Request-Time", stale), body, 400, "bad_request", "antom: header sent more than once: Request-Time, 2 times"),
		refused("Client-Id twice", twice("Client-Id", testkit.AntomClient2), body, 400, "bad_request", "antom: header sent more than once: Client-Id, 2 times"),
		refused("Signature twice, the same value", twice("Signature", good.Get("Signature")), body, 400, "bad_request", "antom: header sent more than once: Signature, 2 times"),
		refused("no Client-Id", without(good, "Client-Id"), body, 400, "bad_request", "antom: missing header Client-Id"),
		refused("no Request-Time", without(good, "Request-Time"), body, 400, "bad_request", "antom: missing header Request-Time"),
		refused("an empty Signature header", withSignature(good, ""), body, 400, "bad_request", "antom: missing header Signature"),
		refused("algorithm RSA512", withSignature(good, "algorithm=RSA512,keyVersion=1,signature="+sigField), body, 400, "bad_request", `antom: unsupported signature algorithm: "RSA512"`),
		refused("no algorithm", withSignature(good, "keyVersion=1,signature="+sigField), body, 400, "bad_request", "antom: malformed Signature header: no algorithm"),
		refused("keyVersion not a number", withSignature(good, "algorithm=RSA256,keyVersion=v1,signature="+sigField), body, 400, "bad_request", `keyVersion "v1" is not a number`),
		refused("a '+' turned into a space", plusHeader(strings.ReplaceAll(plusSig, "%2B", " ")), plusBody, 400, "bad_request", "it contains a space"),
		refused("an unparseable Request-Time", withSignature(testkit.AntomHeaders(testkit.AntomClient, "yesterday", ""), good.Get("Signature")), body, 400, "bad_request", `antom: malformed Request-Time: "yesterday"`),
		refused("a Client-Id with a dot", signed(keyA1, "/antom", "SANDBOX.5Y", ms, body), body, 400, "bad_request", "antom: malformed Client-Id"),
		refused("a body that is an array", arrayHeader, arrayBody, 400, "bad_request", "antom: malformed body: not a JSON object"),
		refused("two objects", twoHeader, twoBody, 400, "bad_request", "antom: malformed body"),
		refused("an empty body", emptyHeader, emptyBody, 400, "bad_request", "antom: malformed body"),
		refused("a duplicate key at depth", dupHeader, dupBody, 400, "bad_request", `antom: duplicate key in body: "value"`),
		refused("a duplicate key spelt with an escape", dupEscHeader, dupEscBody, 400, "bad_request", `antom: duplicate key in body: "a"`),
		refused("notifyType not a string", typeHeader, typeBody, 400, "bad_request", "antom: malformed body: notifyType is not a string"),
		refused("a body over max_body", signed(keyA1, "/antom", testkit.AntomClient, ms, bigBody), bigBody, 413, "too_large", "exceeds max_body 8192"),
		{name: "GET with a Signature", method: http.MethodGet, header: good, status: 405, outcome: "method_not_allowed", reason: "method GET, Antom notifications are POSTed"},
		{name: "PUT with a Signature", method: http.MethodPut, header: good, body: body, status: 405, outcome: "method_not_allowed", reason: "method PUT, Antom notifications are POSTed"},
		{name: "no Signature header: a domestic notification, refused as one", header: without(good, "Signature"), body: body, status: 400, outcome: "bad_request", reason: "malformed notification", text: true},
		{name: "a domestic notification on an Antom-only endpoint", path: "/antom-no-max-age", header: domesticHeader, body: []byte(domesticBody), status: 403, outcome: "app_refused", reason: testkit.AppID, text: true},

		// The upstream decides.
		{name: "upstream 500", path: "/failing", header: signed(keyA1, "/failing", testkit.AntomClient, ms, body), body: body, status: 502, outcome: "upstream_error", to: failing, key: key1},
		{name: "upstream down", path: "/down", header: signed(keyA1, "/down", testkit.AntomClient, ms, body), body: body, status: 502, outcome: "upstream_error"},
		{name: "upstream timeout", path: "/slow", header: signed(keyA1, "/slow", testkit.AntomClient, ms, body), body: body, status: 504, outcome: "upstream_timeout", to: slow, key: key1},
	}
	// The notifications_total series each case adds to: its outcome, and
	// its app_id label, the Antom client when it is one the handler
	// serves (the domestic app for a domestic notification), else "other"
	// (and "other" when the handler answered before reading the headers).
	outcomes := map[[2]string]float64{}
	metricsApp := func(tc antomCase) string {
		if tc.text { // the one domestic notification for the app of /antom
			if tc.path == "" && tc.status == 200 {
				return testkit.AppID
			}
			return "other"
		}
		switch id := headerValue(tc.header, "Client-Id"); {
		case tc.status == 405 || tc.status == 413:
			return "other"
		case id == testkit.AntomClient, id == testkit.AntomClient2 && tc.path == "":
			return id
		}
		return "other"
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/antom"
			}
			reply := sendAntom(t, method, path, tc.header, tc.body)
			outcomes[[2]string{tc.outcome, metricsApp(tc)}]++
			logged := readAntomLog(t, logs)

			wantBody, wantType := antomFailJSON, "application/json"
			switch {
			case tc.text && tc.status == 200:
				wantBody, wantType = "success", "text/plain; charset=utf-8"
			case tc.text:
				wantBody, wantType = "fail", "text/plain; charset=utf-8"
			case tc.status == 200:
				wantBody = antomSuccessJSON
			}
			if reply.status != tc.status || reply.body != wantBody {
				t.Errorf("answer %d %s\nwant   %d %s", reply.status, reply.body, tc.status, wantBody)
			}
			if ct := reply.header.Get("Content-Type"); ct != wantType {
				t.Errorf("Content-Type %q, want %q", ct, wantType)
			}
			if got := reply.header.Get("X-Alipay-Outcome"); got != tc.outcome {
				t.Errorf("outcome %q, want %q", got, tc.outcome)
			}
			if tc.status == 405 && reply.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", reply.header.Get("Allow"))
			}

			// The log: one refusal with its reason, or none.
			t.Logf("answer %d %s; refusal reasons %q", reply.status, reply.body, logged.reasons)
			switch {
			case tc.reason != "":
				if len(logged.reasons) != 1 || !strings.Contains(logged.reasons[0], tc.reason) {
					t.Errorf("refusal reasons %q\nwant one containing %q", logged.reasons, tc.reason)
				}
			case len(logged.reasons) != 0:
				t.Errorf("refusals logged: %q", logged.reasons)
			}
			if tc.key != "" && tc.status == 200 {
				if len(logged.forwarded) != 1 || logged.forwarded[0]["key"] != tc.key || logged.forwarded[0]["app_id"] != testkit.AntomClient {
					t.Errorf("forwarded log lines %v, want one with key %q", logged.forwarded, tc.key)
				}
			}

			// The upstreams: exactly one webhook where it was sent, else none.
			for _, u := range upstreams {
				got := u.Take()
				switch {
				case u != tc.to && len(got) != 0:
					t.Errorf("a webhook reached an upstream it should not: %s", got[0].Body)
				case u == tc.to && len(got) != 1:
					t.Errorf("upstream got %d webhooks, want exactly 1", len(got))
				case u == tc.to && tc.text:
					if got[0].VerifyErr != nil || got[0].Event.Type != "alipay.trade_status_sync" {
						t.Errorf("domestic webhook %s: %v", got[0].Event.Type, got[0].VerifyErr)
					}
				case u == tc.to:
					checkAntomWebhook(t, got[0], tc.body, headerValue(tc.header, "Request-Time"), "antom.PAYMENT_RESULT")
				}
			}
		})
	}

	// forwardOne sends an Antom notification of client that ok accepts,
	// counts it, and returns the answer and the one webhook ok received.
	forwardOne := func(t *testing.T, uri string, header http.Header, body []byte, client string) (antomReply, testkit.Webhook) {
		t.Helper()
		reply := sendAntom(t, http.MethodPost, uri, header, body)
		readAntomLog(t, logs)
		outcomes[[2]string{"forwarded", client}]++
		got := ok.Take()
		if reply.status != 200 || reply.body != antomSuccessJSON || len(got) != 1 {
			t.Fatalf("answer %d %s, %d webhooks", reply.status, reply.body, len(got))
		}
		return reply, got[0]
	}

	t.Run("webhook data keeps every number's digits and every string's bytes", func(t *testing.T) {
		data := []byte(`{"notifyType":"REFUND_RESULT","refundRequestId":"REF_1","refundAmount":{"currency":"USD","value":"100"},` +
			`"big":12345678901234567890,"small":0.10,"huge":1E+400,"negZero":-0,"exp":2.50e-3,` +
			`"nested":{"list":[1.0,{"deep":[true,false,null]}],"empty":{}},"text":"caf\u00e9 \ud83d\ude00 <b>&amp;</b> \/ \"q\""}`)
		rt := zulu
		reply, webhook := forwardOne(t, "/antom", signed(keyA1, "/antom", testkit.AntomClient, rt, data), data, testkit.AntomClient)
		checkAntomWebhook(t, webhook, data, rt, "antom.REFUND_RESULT")
		// Read as a merchant's JSON library would, numbers as written.
		dec := json.NewDecoder(bytes.NewReader(webhook.Event.RawData))
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil {
			t.Fatal(err)
		}
		if fields["big"] != json.Number("12345678901234567890") || fields["small"] != json.Number("0.10") || fields["huge"] != json.Number("1E+400") {
			t.Errorf("numbers %v %v %v", fields["big"], fields["small"], fields["huge"])
		}
		if amount := fields["refundAmount"].(map[string]any); amount["value"] != "100" {
			t.Errorf("value %#v, want the string \"100\"", amount["value"])
		}
		if fields["text"] != "café 😀 <b>&amp;</b> / \"q\"" {
			t.Errorf("text %q", fields["text"])
		}
		if h := reply.header.Get("X-Alipay-Notify"); h != antomWebhookID(data)+"/"+testkit.AntomClient+"/REFUND_RESULT/REF_1" {
			t.Errorf("placeholders %q", h)
		}
	})

	t.Run("a pretty-printed body is forwarded compacted", func(t *testing.T) {
		_, webhook := forwardOne(t, "/antom", signed(keyA1, "/antom", testkit.AntomClient, ms, prettyBody), prettyBody, testkit.AntomClient)
		if bytes.ContainsAny(webhook.Event.RawData, " \n") || !bytes.Equal(webhook.Event.RawData, testkit.AntomPayment("PAY_PRETTY", now)) {
			t.Errorf("data %s", webhook.Event.RawData)
		}
		if id := webhook.Header.Get("webhook-id"); id != antomWebhookID(prettyBody) {
			t.Errorf("webhook-id %q: want the hash of the bytes received", id)
		}
	})

	t.Run("webhook-id stable across a re-send with a new Request-Time", func(t *testing.T) {
		retry := testkit.AntomPayment("PAY_RETRY", now)
		var ids, stamps []string
		for _, at := range []time.Time{now, now.Add(2 * time.Minute), now.Add(12 * time.Minute)} {
			rt := testkit.AntomMillis(at)
			_, webhook := forwardOne(t, "/antom", signed(keyA1, "/antom", testkit.AntomClient, rt, retry), retry, testkit.AntomClient)
			checkAntomWebhook(t, webhook, retry, rt, "antom.PAYMENT_RESULT")
			ids = append(ids, webhook.Header.Get("webhook-id"))
			stamps = append(stamps, webhook.Event.Timestamp)
		}
		if ids[0] != ids[1] || ids[1] != ids[2] || ids[0] != antomWebhookID(retry) {
			t.Errorf("webhook-ids %q, want one id", ids)
		}
		if stamps[0] == stamps[1] || stamps[1] == stamps[2] {
			t.Errorf("timestamps %q: each re-send is timed by its own Request-Time", stamps)
		}
		other := testkit.AntomPayment("PAY_OTHER", now)
		sendAntom(t, http.MethodPost, "/antom", signed(keyA1, "/antom", testkit.AntomClient, ms, other), other)
		readAntomLog(t, logs)
		outcomes[[2]string{"forwarded", testkit.AntomClient}]++
		if got := ok.Take(); len(got) != 1 || got[0].Header.Get("webhook-id") == ids[0] {
			t.Errorf("another notification has the same webhook-id")
		}
	})

	t.Run("the signed content at DEBUG on a signature failure", func(t *testing.T) {
		reply := sendAntom(t, http.MethodPost, "/antom?debug=1", good, tampered)
		outcomes[[2]string{"bad_signature", testkit.AntomClient}]++
		logged := readAntomLog(t, logs)
		if reply.status != 403 || len(logged.details) != 1 {
			t.Fatalf("answer %d, %d detail lines", reply.status, len(logged.details))
		}
		want := "POST /antom?debug=1\n" + testkit.AntomClient + "." + ms + "." + string(tampered)
		if got := logged.details[0]["signed_string"]; got != want {
			t.Errorf("signed_string %q\nwant %q", got, want)
		}
	})

	t.Run("log lines carry the notification", func(t *testing.T) {
		reply := sendAntom(t, http.MethodPost, "/antom", good, body)
		outcomes[[2]string{"forwarded", testkit.AntomClient}]++
		logged := readAntomLog(t, logs)
		ok.Take()
		if reply.status != 200 || len(logged.forwarded) != 1 {
			t.Fatalf("answer %d, %d forwarded lines", reply.status, len(logged.forwarded))
		}
		line := logged.forwarded[0]
		want := map[string]any{
			"notify_id": antomWebhookID(body), "app_id": testkit.AntomClient, "out_trade_no": "PAY_20260101000000001",
			"trade_status": "PAYMENT_RESULT", "outcome": "forwarded", "key": key1, "key_version": float64(1), "upstream_status": float64(200),
		}
		for k, v := range want {
			if line[k] != v {
				t.Errorf("log %s = %#v, want %#v", k, line[k], v)
			}
		}
		if h := reply.header.Get("X-Alipay-Notify"); h != antomWebhookID(body)+"/"+testkit.AntomClient+"/PAYMENT_RESULT/PAY_20260101000000001" {
			t.Errorf("placeholders %q", h)
		}
	})

	t.Run("the real Antom vector verifies through Caddy, its tampered copy does not", func(t *testing.T) {
		header := testkit.AntomHeaders(vector.ClientID, vector.RequestTime, vector.SignatureHeader)
		_, webhook := forwardOne(t, vector.URI, header, []byte(vector.Body), vector.ClientID)
		// A response, not a notification: it has no notifyType.
		checkAntomWebhook(t, webhook, []byte(vector.Body), vector.RequestTime, "antom.notification")
		if webhook.Event.Timestamp != "2025-05-19T01:52:32Z" {
			t.Errorf("timestamp %q", webhook.Event.Timestamp)
		}

		header = testkit.AntomHeaders(tamperedVector.ClientID, tamperedVector.RequestTime, tamperedVector.SignatureHeader)
		reply := sendAntom(t, http.MethodPost, tamperedVector.URI, header, []byte(tamperedVector.Body))
		outcomes[[2]string{"bad_signature", vector.ClientID}]++
		logged := readAntomLog(t, logs)
		if reply.status != 403 || reply.body != antomFailJSON || len(logged.reasons) != 1 || !strings.Contains(logged.reasons[0], mismatch) {
			t.Errorf("tampered vector: answer %d %s, reasons %q", reply.status, reply.body, logged.reasons)
		}
		if got := ok.Take(); len(got) != 0 {
			t.Errorf("the tampered vector was forwarded")
		}
	})

	t.Run("a Content-Length over max_body is answered at once in JSON", func(t *testing.T) {
		// Headers only: the 9000 bytes are never sent.
		resp, answer, _ := sendHead(t, fmt.Sprintf("POST /antom HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: application/json\r\nClient-Id: %s\r\nRequest-Time: %s\r\nSignature: %s\r\nContent-Length: 9000\r\n\r\n",
			testkit.AntomClient, ms, good.Get("Signature")))
		outcomes[[2]string{"too_large", "other"}]++
		if resp.StatusCode != 413 || string(answer) != antomFailJSON || resp.Header.Get("Content-Type") != "application/json" || !resp.Close {
			t.Errorf("answer %d %s (%s), close %v", resp.StatusCode, answer, resp.Header.Get("Content-Type"), resp.Close)
		}
		if logged := readAntomLog(t, logs); len(logged.reasons) != 1 || !strings.Contains(logged.reasons[0], "body of 9000 bytes exceeds max_body 8192") {
			t.Errorf("reasons %q", logged.reasons)
		}
	})

	t.Run("access log", func(t *testing.T) {
		var entry struct {
			Request struct {
				URI string `json:"uri"`
			} `json:"request"`
			AlipayNotify struct {
				Outcome  string `json:"outcome"`
				NotifyID string `json:"notify_id"`
			} `json:"alipay_notify"`
			RequestID string `json:"antom_request_id"`
		}
		waitFile(t, accessLog, "no access log entry for the query case", func(data string) bool {
			for _, line := range strings.Split(data, "\n") {
				if json.Unmarshal([]byte(line), &entry) == nil && entry.Request.URI == "/antom?source=antom&ref=%41%2f" {
					return true
				}
			}
			return false
		})
		if entry.AlipayNotify.Outcome != "forwarded" || entry.AlipayNotify.NotifyID != antomWebhookID(body) || entry.RequestID != "PAY_20260101000000001" {
			t.Errorf("access log: %+v", entry)
		}
	})

	t.Run("metrics count Antom notifications by outcome and client", func(t *testing.T) {
		samples := scrapeMetrics(t)
		byOutcome := map[string]float64{}
		for key, n := range outcomes {
			byOutcome[key[0]] += n
			series := `caddy_alipay_notify_notifications_total{app_id="` + key[1] + `",outcome="` + key[0] + `"}`
			if got := samples[series]; got != n {
				t.Errorf("%s = %v, want %v", series, got, n)
			}
		}
		for outcome, n := range byOutcome {
			if got := notificationsTotal(samples, outcome); got != n {
				t.Errorf("notifications_total{outcome=%q} = %v, want %v", outcome, got, n)
			}
		}
	})
}

// headerValue is the value of a header whatever the case its name was
// given in (http.Header.Get finds only canonical names).
func headerValue(h http.Header, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Key problems found at provisioning are configuration errors naming the
// block and the key (caddy validate and a reload report them).
func TestAntomConfigErrorsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	shortKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	shortDER, _ := x509.MarshalPKIXPublicKey(&shortKey.PublicKey)
	_, sm2Path := sm2TestKey(t)
	t.Setenv("ANTOM_EMPTY_KEY", "")
	client := "antom " + testkit.AntomClient + " {\n"
	tests := map[string]struct{ block, want string }{
		"missing key file":   {client + "antom_public_key " + testkit.PublicKeyLine(t, "alipay2") + "\nantom_public_key /nonexistent/antom.pem\n}", "antom " + testkit.AntomClient + ": antom_public_key #2: neither one line of base64, a PEM block, nor a readable file"},
		"unset env key":      {client + "antom_public_key {env.ANTOM_EMPTY_KEY}\n}", "antom " + testkit.AntomClient + ": antom_public_key #1"},
		"an inline EC key":   {client + "antom_public_key " + base64.StdEncoding.EncodeToString(ecDER) + "\n}", "antom_public_key: malformed inline key: a *ecdsa.PublicKey"},
		"an SM2 key file":    {client + "antom_public_key " + sm2Path + "\n}", "antom " + testkit.AntomClient + ": antom_public_key #1: Antom signs with RSA keys"},
		"a 1024-bit RSA key": {client + "antom_public_key " + base64.StdEncoding.EncodeToString(shortDER) + "\n}", "1024-bit RSA, want at least 2048"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			caddytest.AssertLoadError(t, fmt.Sprintf(`{
				admin localhost:2999
				http_port 9080
			}
			http://localhost:9080 {
				alipay_notify {
					%s
					forward http://127.0.0.1:1
					webhook_secret %s
				}
			}`, tc.block, testkit.Secret), "caddyfile", tc.want)
		})
	}
	t.Run("a client twice in JSON", func(t *testing.T) {
		line := testkit.PublicKeyLine(t, "alipay2")
		caddytest.AssertLoadError(t, fmt.Sprintf(`{
			"admin": {"listen": "localhost:2999"},
			"apps": {"http": {"http_port": 9080, "servers": {"srv0": {"listen": [":9080"], "routes": [{"handle": [{
				"handler": "alipay_notify",
				"antom": [
					{"client_id": %[1]q, "antom_public_keys": [%[2]q]},
					{"client_id": %[1]q, "antom_public_keys": [%[2]q]}
				],
				"forward": "http://127.0.0.1:1",
				"webhook_secrets": [%[3]q]
			}]}]}}}}
		}`, testkit.AntomClient, line, testkit.Secret), "json", "antom "+testkit.AntomClient+": client ID given twice")
	})
}
