package diagnose_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/antom"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/diagnose"
	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// The Antom requests below are signed by testkit's independent signer
// ("alipay" plays Antom's key, "app" the merchant's own) and damaged the
// way each cause damages them.

func antomKeys(t *testing.T, names ...string) *diagnose.AntomKeys {
	t.Helper()
	var keys []diagnose.AntomKey
	for _, name := range names {
		keys = append(keys, diagnose.AntomKey{Label: name + " key", Key: &tk.Key(t, name).PublicKey})
	}
	k, err := diagnose.NewAntomKeys(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	antomURI    = "/antom/notify"
	antomClient = tk.AntomClient
)

// signedAntom is a request signed over uri, clientID and body by key.
func signedAntom(t *testing.T, key, uri, clientID string, body []byte) antom.Request {
	t.Helper()
	at := tk.AntomMillis(time.Now())
	return antom.Request{
		Method: http.MethodPost, URI: uri, ClientID: clientID, RequestTime: at,
		Signature: tk.AntomSign(t, tk.Key(t, key), uri, clientID, at, body), Body: body,
	}
}

// plusSigned is signedAntom with a body chosen so that the signature holds
// a '+'.
func plusSigned(t *testing.T) antom.Request {
	t.Helper()
	for i := 0; i < 200; i++ {
		req := signedAntom(t, "alipay", antomURI, antomClient, tk.AntomPayment(fmt.Sprint("PAY_PLUS_", i), time.Now()))
		if strings.Contains(req.Signature, "%2B") {
			return req
		}
	}
	t.Fatal("no signature with a '+' in 200 tries")
	return antom.Request{}
}

func indent(t *testing.T, body []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestCheckAntom(t *testing.T) {
	body := tk.AntomPayment("PAY_CHECK_1", time.Now())
	good := signedAntom(t, "alipay", antomURI, antomClient, body)
	get := good
	get.Method = http.MethodGet
	noClient := good
	noClient.ClientID = ""
	rotated := signedAntom(t, "alipay2", antomURI, antomClient, body)
	for _, tc := range []struct {
		name    string
		keys    *diagnose.AntomKeys
		req     antom.Request
		status  int
		key     string
		wantErr error
	}{
		{"verified", antomKeys(t, "alipay"), good, 0, "alipay key", nil},
		{"second key of a rotation", antomKeys(t, "alipay", "alipay2"), rotated, 0, "alipay2 key", nil},
		{"another key", antomKeys(t, "alipay2"), good, http.StatusForbidden, "", antom.ErrSignatureMismatch},
		{"no keys: an unknown client", nil, good, http.StatusForbidden, "", antom.ErrUnknownClient},
		{"GET", antomKeys(t, "alipay"), get, http.StatusMethodNotAllowed, "", nil},
		{"no Client-Id", antomKeys(t, "alipay"), noClient, http.StatusBadRequest, "", antom.ErrMissingHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := diagnose.CheckAntom(tc.keys, tc.req)
			if v.Status != tc.status || v.Key != tc.key || (tc.wantErr != nil && !errors.Is(v.Err, tc.wantErr)) || (tc.status == 0) != (v.Err == nil) {
				t.Fatalf("status %d key %q err %v; want %d %q %v", v.Status, v.Key, v.Err, tc.status, tc.key, tc.wantErr)
			}
			want := "POST " + tc.req.URI + "\n" + tc.req.ClientID + "." + tc.req.RequestTime + "." + string(tc.req.Body)
			if tc.name == "GET" {
				want = "GET" + want[4:]
			}
			if string(v.SignedContent) != want {
				t.Errorf("signed content %q", v.SignedContent)
			}
			if (v.Verified != nil) != (tc.status == 0) {
				t.Errorf("Verified %v", v.Verified)
			}
		})
	}
}

func TestCheckAntomRealVector(t *testing.T) {
	vec := tk.LoadAntomVector(t, "sandbox-response-rsa256.json")
	key, err := antom.ParsePublicKey(vec.AntomPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := diagnose.NewAntomKeys(diagnose.AntomKey{Label: "antom", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	req := antom.Request{Method: vec.Method, URI: vec.URI, ClientID: vec.ClientID, RequestTime: vec.RequestTime, Signature: vec.SignatureHeader, Body: []byte(vec.Body)}
	if v := diagnose.CheckAntom(keys, req); v.Err != nil || len(v.SignedContent) != vec.SignedContentLength {
		t.Fatalf("the real vector: %v, %d bytes signed", v.Err, len(v.SignedContent))
	}
	// Published pretty-printed, as its source did: compacting it verifies.
	pretty := req
	pretty.Body = indent(t, req.Body)
	f := diagnose.DiagnoseAntom(keys, pretty, diagnose.AntomHints{})
	if f.Cause != "the body is pretty-printed: compacting it verifies" || f.Repair == nil || string(f.Repair.Request.Body) != vec.Body {
		t.Errorf("pretty-printed vector: %+v", f)
	}
	// The tampered copy: nothing repairs it.
	tampered := tk.LoadAntomVector(t, "sandbox-response-rsa256-tampered.json")
	req.Body = []byte(tampered.Body)
	if f := diagnose.DiagnoseAntom(keys, req, diagnose.AntomHints{}); f.Repair != nil || !strings.HasPrefix(f.Cause, "no repair makes it verify") {
		t.Errorf("tampered vector: %+v", f)
	}
}

func TestDiagnoseAntom(t *testing.T) {
	body := tk.AntomPayment("PAY_DIAG_1", time.Now())
	good := signedAntom(t, "alipay", antomURI, antomClient, body)
	with := func(f func(*antom.Request)) antom.Request {
		r := good
		f(&r)
		return r
	}
	escapedBody := []byte(`{"notifyType":"PAYMENT_RESULT","paymentRequestId":"PAY_ESC","note":"é <b> & ü","url":"https://shop.example/return?a=1"}`)
	escaped := signedAntom(t, "alipay", antomURI, antomClient, escapedBody)
	plus := plusSigned(t)
	ordered := []byte(`{"paymentRequestId":"PAY_ORD","notifyType":"PAYMENT_RESULT","amount":100}`)
	orderedReq := signedAntom(t, "alipay", antomURI, antomClient, ordered)

	for _, tc := range []struct {
		name    string
		keys    *diagnose.AntomKeys
		req     antom.Request
		hints   diagnose.AntomHints
		cause   string // the finding's cause starts with it
		explain string // the explanation holds it
		repair  func(antom.Request) bool
	}{
		{
			name:  "query added",
			req:   with(func(r *antom.Request) { r.URI = antomURI + "?lb=1" }),
			cause: "the URI's query was not signed: without it (/antom/notify) it verifies", explain: "appends parameters",
			repair: func(r antom.Request) bool { return r.URI == antomURI },
		},
		{
			name:  "prefix stripped by a proxy",
			req:   with(func(r *antom.Request) { r.URI = "/notify" }),
			hints: diagnose.AntomHints{URIs: []string{"/antom/"}},
			cause: "the path lost a prefix: Antom signed /antom/notify, the request line has /notify", explain: "{http.request.orig_uri}",
			repair: func(r antom.Request) bool { return r.URI == antomURI },
		},
		{
			name: "prefix added by a proxy, query kept",
			req: with(func(r *antom.Request) {
				*r = signedAntom(t, "alipay", "/notify?x=1", antomClient, body)
				r.URI = "/antom/notify?x=1"
			}),
			hints:  diagnose.AntomHints{URIs: []string{"/antom"}},
			cause:  "the path gained a prefix: Antom signed /notify?x=1, the request line has /antom/notify?x=1",
			repair: func(r antom.Request) bool { return r.URI == "/notify?x=1" },
		}, {
			name:  "another URI given whole",
			req:   with(func(r *antom.Request) { r.URI = "/hooks/antom" }),
			hints: diagnose.AntomHints{URIs: []string{"", antomURI}},
			cause: "the URI differs: Antom signed /antom/notify, the request line has /hooks/antom",
		},
		{
			name:  "absolute URI in the request line",
			req:   with(func(r *antom.Request) { r.URI = "http://shop.example" + antomURI }),
			cause: "the request line has an absolute URI (http://shop.example/antom/notify): its path and query, /antom/notify, verify", explain: "forward proxy",
		},
		{
			name:  "trailing slash",
			req:   with(func(r *antom.Request) { r.URI = antomURI + "/" }),
			cause: "the path differs by a trailing slash: /antom/notify verifies",
		},
		{
			name:  "pretty-printed body",
			req:   with(func(r *antom.Request) { r.Body = indent(t, body) }),
			cause: "the body is pretty-printed: compacting it verifies", explain: "php://input",
			repair: func(r antom.Request) bool { return bytes.Equal(r.Body, body) },
		},
		{
			name: "re-encoded with escapes (PHP, Go, Python)",
			req: with(func(r *antom.Request) {
				*r = escaped
				r.Body = []byte(`{"notifyType":"PAYMENT_RESULT","paymentRequestId":"PAY_ESC","note":"\u00e9 \u003cb\u003e \u0026 \u00fc","url":"https:\/\/shop.example\/return?a=1"}`)
			}),
			cause:  `the body was re-encoded with escapes Antom does not write (\/, \uXXXX): undoing them verifies`,
			repair: func(r antom.Request) bool { return bytes.Equal(r.Body, escapedBody) },
		},
		{
			name: "pretty-printed and escaped",
			req: with(func(r *antom.Request) {
				*r = escaped
				r.Body = indent(t, []byte(`{"notifyType":"PAYMENT_RESULT","paymentRequestId":"PAY_ESC","note":"\u00e9 <b> & \u00fc","url":"https:\/\/shop.example\/return?a=1"}`))
			}),
			cause: "the body was re-serialised (pretty-printed, with extra escapes): compacting it and undoing the escapes verifies",
		},
		{
			name: "re-serialised: keys reordered, pretty-printed",
			req: with(func(r *antom.Request) {
				*r = orderedReq
				r.Body = indent(t, []byte(`{"amount":100,"notifyType":"PAYMENT_RESULT","paymentRequestId":"PAY_ORD"}`))
			}),
			cause: "the body was re-serialised: it is pretty-printed, and compacting it does not make it verify (keys reordered or numbers reformatted", explain: "no repair recovers the original bytes",
		},
		{
			name: "re-serialised: numbers through floats, escapes",
			req: with(func(r *antom.Request) {
				*r = orderedReq
				r.Body = []byte(`{"paymentRequestId":"PAY_ORD","notifyType":"PAYMENT_RESULT","amount":100.0,"x":"\/"}`)
			}),
			cause: `the body was re-serialised: it has escapes Antom does not write (\/, \uXXXX), and undoing them does not make it verify; its numbers look re-formatted as floating point (1.0E2, 100.0)`,
		},
		{
			name: "re-serialised: exponent",
			req: with(func(r *antom.Request) {
				*r = orderedReq
				r.Body = []byte(`{"paymentRequestId":"PAY_ORD","notifyType":"PAYMENT_RESULT","amount":1E2}`)
			}),
			cause: "the body was re-serialised: its numbers look re-formatted",
		},
		{
			name: "'+' turned into a space in the Signature",
			req: with(func(r *antom.Request) {
				*r = plus
				r.Signature = strings.ReplaceAll(plus.Signature, "%2B", " ")
			}),
			cause: "'+' turned into a space in the Signature: restoring it verifies", explain: "form-decoded",
			repair: func(r antom.Request) bool { return strings.Contains(r.Signature, "+") },
		},
		{
			name:  "Signature percent-encoded twice",
			req:   with(func(r *antom.Request) { r.Signature = strings.ReplaceAll(good.Signature, "%", "%25") }),
			cause: "the Signature is percent-encoded twice (%25): decoding it once verifies",
		},
		{
			name:  "another Client-Id",
			req:   with(func(r *antom.Request) { r.ClientID = tk.AntomClient2 }),
			hints: diagnose.AntomHints{ClientIDs: []string{"", tk.AntomClient2, antomClient}},
			cause: "the Client-Id differs: the signature verifies with Client-Id " + antomClient + ", not " + tk.AntomClient2,
		},
		{
			name: "two causes: a query and a pretty-printed body",
			req: with(func(r *antom.Request) {
				r.URI += "?from=proxy"
				r.Body = indent(t, body)
			}),
			cause:   "the URI's query was not signed: without it (/antom/notify) it verifies; the body is pretty-printed: compacting it verifies",
			explain: "re-indented",
		},
		{
			name:  "the wrong key",
			keys:  antomKeys(t, "alipay2"),
			req:   good,
			cause: "no repair makes it verify: the key is not Antom's for this client, or the notification was altered", explain: "Sandbox and production",
		},
		{
			name:  "the merchant's own public key as --key",
			keys:  antomKeys(t, "alipay2", "app"),
			req:   good,
			hints: diagnose.AntomHints{AppKeys: antomKeys(t, "app")},
			cause: "app key is your own public key, not Antom's", explain: "Key configuration",
		},
		{
			name:  "signed with the merchant's own private key",
			req:   signedAntom(t, "app", antomURI, antomClient, body),
			hints: diagnose.AntomHints{AppKeys: antomKeys(t, "app")},
			cause: "signed with your own private key (app key), not by Antom",
		},
		{
			name: "signed with the merchant's own private key, and pretty-printed",
			req: with(func(r *antom.Request) {
				*r = signedAntom(t, "app", antomURI, antomClient, body)
				r.Body = indent(t, body)
			}),
			hints: diagnose.AntomHints{AppKeys: antomKeys(t, "app")},
			cause: "signed with your own private key (app key), not by Antom",
		},
		{
			name:  "another key, and no app key recognised",
			keys:  antomKeys(t, "alipay2"),
			req:   good,
			hints: diagnose.AntomHints{AppKeys: antomKeys(t, "ca")},
			cause: "no repair makes it verify",
		},
		{name: "GET", req: with(func(r *antom.Request) { r.Method = http.MethodGet }), cause: "method GET: Antom POSTs its notifications (the plugin answers 405)"},
		{name: "no Client-Id", req: with(func(r *antom.Request) { r.ClientID = "" }), cause: "there is no Client-Id header", explain: "--client-id"},
		{name: "no Request-Time", req: with(func(r *antom.Request) { r.RequestTime = "" }), cause: "there is no Request-Time header", explain: "--request-time"},
		{name: "a '.' in the Client-Id", req: with(func(r *antom.Request) { r.ClientID = "a.b" }), cause: `the Client-Id "a.b" has a '.'`, explain: "(400)"},
		{name: "another algorithm", req: with(func(r *antom.Request) { r.Signature = strings.Replace(good.Signature, "RSA256", "RSA512", 1) }), cause: "the Signature header names an algorithm other than RSA256"},
		{name: "a Signature that does not parse", req: with(func(r *antom.Request) { r.Signature = "signature=abc" }), cause: "the Signature header does not parse"},
		{name: "a signature cut", req: with(func(r *antom.Request) { r.Signature = good.Signature[:len(good.Signature)-5] }), cause: "the signature is not percent-encoded base64"},
		{name: "a Request-Time in seconds with a comma", req: with(func(r *antom.Request) { r.RequestTime = "2025-05-19T01:52:32,5Z" }), cause: `the Request-Time "2025-05-19T01:52:32,5Z" is neither epoch milliseconds nor RFC 3339`},
		{name: "a duplicate key", req: with(func(r *antom.Request) { r.Body = []byte(`{"a":1,"a":2}`) }), cause: "the body has a duplicate key"},
		{name: "not one JSON object", req: with(func(r *antom.Request) { r.Body = []byte(`{"a":1} {}`) }), cause: "the body is not one JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := tc.keys
			if keys == nil {
				keys = antomKeys(t, "alipay")
			}
			if v := diagnose.CheckAntom(keys, tc.req); v.Err == nil {
				t.Fatal("the damaged request verifies as it is")
			}
			f := diagnose.DiagnoseAntom(keys, tc.req, tc.hints)
			if !strings.HasPrefix(f.Cause, tc.cause) {
				t.Errorf("cause\n got %s\nwant %s…", f.Cause, tc.cause)
			}
			if !strings.Contains(f.Explain, tc.explain) {
				t.Errorf("explanation lacks %q: %s", tc.explain, f.Explain)
			}
			if f.Repair != nil {
				if v := diagnose.CheckAntom(keys, f.Repair.Request); v.Err != nil || v.Key != f.Repair.Key || !bytes.Equal(v.SignedContent, f.Repair.SignedContent) {
					t.Errorf("the repair does not verify: %v", v.Err)
				}
				if strings.Join(f.Repair.Changes, "; ") != f.Cause {
					t.Errorf("changes %q, cause %q", f.Repair.Changes, f.Cause)
				}
			}
			if tc.repair != nil && (f.Repair == nil || !tc.repair(f.Repair.Request)) {
				t.Errorf("repair %+v", f.Repair)
			}
		})
	}
}

// TestDiagnoseAntomBounded: many hints do not make the search run away.
func TestDiagnoseAntomBounded(t *testing.T) {
	req := signedAntom(t, "alipay", antomURI, antomClient, tk.AntomPayment("PAY_BOUND", time.Now()))
	var hints diagnose.AntomHints
	for i := range 100 {
		hints.URIs = append(hints.URIs, fmt.Sprintf("/u%d", i))
		hints.ClientIDs = append(hints.ClientIDs, fmt.Sprintf("C%d", i))
	}
	start := time.Now()
	f := diagnose.DiagnoseAntom(antomKeys(t, "alipay2"), req, hints)
	if f.Repair != nil || time.Since(start) > 20*time.Second {
		t.Errorf("%+v after %s", f, time.Since(start))
	}
}

func TestNewAntomKeys(t *testing.T) {
	if _, err := diagnose.NewAntomKeys(); err == nil {
		t.Error("no key accepted")
	}
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := diagnose.NewAntomKeys(diagnose.AntomKey{Label: "--key #1", Key: &short.PublicKey}); err == nil || !strings.HasPrefix(err.Error(), "--key #1: ") {
		t.Errorf("a 1024-bit key: %v", err)
	}
	if k := antomKeys(t, "alipay", "app"); k.Len() != 2 {
		t.Errorf("Len %d", k.Len())
	}
	var none *diagnose.AntomKeys
	if none.Len() != 0 {
		t.Error("nil Len")
	}
}

// TestUndoEscapes covers the escapes that must stay: an escaped backslash
// before '/', control characters, quotes, lone surrogates, and malformed
// \u escapes.
func TestUndoEscapes(t *testing.T) {
	keys := antomKeys(t, "alipay")
	for _, tc := range []struct{ signed, captured string }{
		{`{"a":"\\/x","b":"\n\u0001\"\\"}`, `{"a":"\\\/x","b":"\n\u0001\"\\"}`},
		{`{"e":"😀","q":"\u0022"}`, `{"e":"\ud83d\ude00","q":"\u0022"}`},
	} {
		req := signedAntom(t, "alipay", antomURI, antomClient, []byte(tc.signed))
		req.Body = []byte(tc.captured)
		f := diagnose.DiagnoseAntom(keys, req, diagnose.AntomHints{})
		if f.Repair == nil || string(f.Repair.Request.Body) != tc.signed {
			t.Errorf("%s: %+v", tc.captured, f)
		}
	}
	// Lone surrogates stay escaped (and the body is then malformed).
	for _, captured := range []string{`{"s":"\ud800 x","k":"\/"}`, `{"z":"\ud83d\u0041","k":"\/"}`, `{"z":"\udc00\udc00","k":"\/"}`} {
		req := signedAntom(t, "alipay", antomURI, antomClient, []byte(`{"a":"x"}`))
		req.Body = []byte(captured)
		if f := diagnose.DiagnoseAntom(keys, req, diagnose.AntomHints{}); f.Cause != "the body is not one JSON object" {
			t.Errorf("%s: %+v", captured, f)
		}
	}
	// A malformed \u escape is left as it is (the body is then malformed).
	req := signedAntom(t, "alipay", antomURI, antomClient, []byte(`{"a":"x"}`))
	req.Body = []byte(`{"a":"\u00zz\/"}`)
	if f := diagnose.DiagnoseAntom(keys, req, diagnose.AntomHints{}); f.Cause != "the body is not one JSON object" {
		t.Errorf("malformed escape: %+v", f)
	}
}
