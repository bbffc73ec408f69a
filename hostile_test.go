package alipaynotify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Hostile input, through real servers: the Handler behind an httptest server
// for the request shapes, and the built binary where Caddy's own server
// (chunked bodies, connection handling, timeouts) takes part. Every case gets
// the answer of the table in README.md, never a panic, and a refused
// notification never reaches the upstream.

// provisionTestHandler provisions h like Caddy does, with a test logger at
// DEBUG (so that the DEBUG paths run too), and cleans it up after the test.
func provisionTestHandler(t testing.TB, h *Handler) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	if tt, ok := t.(*testing.T); ok {
		h.logger = zaptest.NewLogger(tt, zaptest.Level(zap.DebugLevel))
	} else {
		h.logger = zap.NewNop()
	}
}

// handlerServer serves h (provisioned for testkit.AppID and the test key,
// forwarding to upstream) on a free loopback port; configure adjusts h first.
func handlerServer(t *testing.T, upstream string, configure func(*Handler)) string {
	t.Helper()
	h := &Handler{
		Verifier: Verifier{
			AppIDs:    []string{testkit.AppID},
			KeySource: KeySource{AlipayPublicKeys: []string{testkit.PublicKeyLine(t, "alipay")}},
		},
		Forward:        upstream,
		WebhookSecrets: []string{testkit.Secret},
		Timeout:        caddy.Duration(5 * time.Second),
	}
	if configure != nil {
		configure(h)
	}
	provisionTestHandler(t, h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, r, nil); err != nil {
			t.Errorf("ServeHTTP returned an error: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/alipay/notify"
}

// withBody returns params with a "body" field (a signed trade field) of value.
func withBody(params []testkit.KV, value string) []testkit.KV {
	return testkit.Set(params, "body", value)
}

func TestHostileRequests(t *testing.T) {
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	url := handlerServer(t, upstream.URL, nil)
	bigURL := handlerServer(t, upstream.URL, func(h *Handler) { h.MaxBody = 1 << 20 })
	alipayKey := testkit.Key(t, "alipay")
	base := testkit.TradeParams(testkit.AppID, time.Now())
	good := testkit.Signed(t, alipayKey, base, false)
	goodBody := testkit.EncodeForm(good)
	sign := good[len(good)-1].V
	signEscaped := "sign=" + strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(sign, "+", "%2B"), "/", "%2F"), "=", "%3D")
	if !strings.Contains(goodBody, signEscaped) {
		t.Fatal("test bug: sign not found in the body")
	}
	// withSign replaces sign's value (encoded as Alipay does); withRawSign
	// puts raw bytes into the body instead.
	withRawSign := func(raw string) string { return strings.Replace(goodBody, signEscaped, "sign="+raw, 1) }
	withSign := func(value string) string { return withRawSign(neturl.QueryEscape(value)) }

	manyParams := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "&p%05d=%d", i, i)
		}
		return b.String()
	}
	var manySigned []testkit.KV
	for i := range 10000 {
		manySigned = append(manySigned, testkit.KV{fmt.Sprintf("p%05d", i), strconv.Itoa(i)})
	}
	manySigned = testkit.Signed(t, alipayKey, append(append([]testkit.KV(nil), base...), manySigned...), false)
	long := strings.Repeat("long value ", 5000) // 55 000 bytes, as many encoded
	spaced := strings.ReplaceAll(sign, "+", " ")
	if spaced == sign { // a signature without '+': make one
		spaced = sign[:10] + " " + sign[11:]
	}

	tests := []struct {
		name, url, body string
		status          int
		forwarded       bool
	}{
		{name: "valid (control)", url: url, body: goodBody, status: 200, forwarded: true},
		{name: "invalid UTF-8 in a signed value", url: url, body: testkit.EncodeForm(testkit.Signed(t, alipayKey, withBody(base, "ok\xff\xfe"), false)), status: 400},
		{name: "invalid UTF-8 in a key", url: url, body: goodBody + "&k%C3%28=1", status: 400},
		{name: "overlong UTF-8 encoding of '/'", url: url, body: goodBody + "&x=%C0%AF", status: 400},
		{name: "UTF-16 surrogate in UTF-8", url: url, body: goodBody + "&x=%ED%A0%80", status: 400},
		{name: "invalid GBK in a signed value", url: url, body: testkit.EncodeForm(testkit.Signed(t, alipayKey, withBody(testkit.Set(base, "charset", "gbk"), "\xff\xff"), false)), status: 400},
		{name: "truncated GBK character", url: url, body: testkit.EncodeForm(testkit.Signed(t, alipayKey, withBody(testkit.Set(base, "charset", "gbk"), "\xb0"), false)), status: 400},
		{name: "NUL added to a signed value", url: url, body: testkit.EncodeForm(withBody(good, "a\x00b")), status: 403},
		{name: "raw NUL bytes added", url: url, body: goodBody + "&x=\x00\x00", status: 403},
		{name: "NUL in a key", url: url, body: goodBody + "&a%00b=1", status: 400},
		{name: "NUL signed by Alipay's key is data", url: url, body: testkit.EncodeForm(testkit.Signed(t, alipayKey, withBody(base, "a\x00b"), false)), status: 200, forwarded: true},
		{name: "10 000 parameters added, default max_body", url: url, body: goodBody + manyParams(10000), status: 413},
		{name: "10 000 parameters added", url: bigURL, body: goodBody + manyParams(10000), status: 403},
		{name: "10 000 parameters, all signed", url: bigURL, body: testkit.EncodeForm(manySigned), status: 200, forwarded: true},
		{name: "10 000 copies of one key", url: bigURL, body: goodBody + strings.Repeat("&x=1", 10000), status: 400},
		{name: "10 000 empty pairs", url: bigURL, body: goodBody + strings.Repeat("&", 10000), status: 200, forwarded: true},
		{name: "very long value added", url: url, body: goodBody + "&x=" + strings.Repeat("a", 60000), status: 403},
		{name: "very long signed value replaced", url: url, body: testkit.EncodeForm(withBody(good, long)), status: 403},
		{name: "very long value signed", url: url, body: testkit.EncodeForm(testkit.Signed(t, alipayKey, withBody(base, long), false)), status: 200, forwarded: true},
		{name: "very long key", url: url, body: goodBody + "&" + strings.Repeat("k", 60000) + "=1", status: 403},
		{name: "value of 60 000 escapes", url: url, body: goodBody + "&x=" + strings.Repeat("%41", 20000), status: 403},
		{name: "key differing only by case", url: url, body: goodBody + "&TOTAL_AMOUNT=999.00", status: 403},
		{name: "case variant replaces the key", url: url, body: strings.Replace(goodBody, "total_amount=", "Total_Amount=", 1), status: 403},
		{name: "sign with spaces ('+' decoded twice)", url: url, body: withSign(spaced), status: 400},
		{name: "sign with '+' left raw", url: url, body: withRawSign(neturl.QueryEscape(sign[:10]) + "+" + neturl.QueryEscape(sign[10:])), status: 400},
		{name: "sign with a leading space", url: url, body: withSign(" " + sign), status: 400},
		{name: "sign with a tab", url: url, body: withSign(sign[:20] + "\t" + sign[20:]), status: 400},
		{name: "sign in URL-safe base64", url: url, body: withSign(strings.NewReplacer("+", "-", "/", "_").Replace(sign)), status: 400},
		{name: "sign with line breaks (ignored by base64 decoders, Alipay's Java SDK included): not canonical", url: url, body: withSign(sign[:76] + "\r\n" + sign[76:152] + "\n" + sign[152:]), status: 400},
		{name: "sign without padding", url: url, body: withSign(strings.TrimRight(sign, "=")), status: 400},
		{name: "sign cut short", url: url, body: withSign(sign[:len(sign)-8]), status: 403},
		{name: "sign empty", url: url, body: withSign(""), status: 400},
		{name: "sign of zeros", url: url, body: withSign(strings.Repeat("A", len(sign))), status: 403},
		{name: "sign of 100 KB", url: bigURL, body: withSign(strings.Repeat("QUFB", 25000)), status: 403},
		{name: "only separators and equals", url: url, body: "&=&=&", status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upstream.Take()
			status, answer, header := testkit.Post(t, tc.url, tc.body)
			wantAnswer := "fail"
			if tc.status == 200 {
				wantAnswer = "success"
			}
			if status != tc.status || answer != wantAnswer {
				t.Errorf("answer %d %q, want %d %q", status, answer, tc.status, wantAnswer)
			}
			if ct := header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			got := upstream.Take()
			switch {
			case tc.forwarded && len(got) != 1:
				t.Fatalf("upstream got %d webhooks, want 1", len(got))
			case !tc.forwarded && len(got) != 0:
				t.Fatalf("a refused notification reached the upstream (%d webhooks)", len(got))
			case tc.forwarded && got[0].VerifyErr != nil:
				t.Fatalf("official library refuses the webhook: %v", got[0].VerifyErr)
			}
		})
	}

	t.Run("signed NUL arrives as \\u0000 in the JSON", func(t *testing.T) {
		upstream.Take()
		testkit.Post(t, url, testkit.EncodeForm(testkit.Signed(t, alipayKey, withBody(base, "a\x00b"), false)))
		got := upstream.Take()
		if len(got) != 1 || got[0].Event.Data["body"] != "a\x00b" || !strings.Contains(string(got[0].Body), `"a\u0000b"`) {
			t.Fatalf("webhooks %d: %v", len(got), got)
		}
	})
	t.Run("10 000 signed parameters all arrive", func(t *testing.T) {
		upstream.Take()
		testkit.Post(t, bigURL, testkit.EncodeForm(manySigned))
		got := upstream.Take()
		if len(got) != 1 || len(got[0].Event.Data) != len(manySigned)-1 || got[0].Event.Data["p09999"] != "9999" {
			t.Fatalf("webhooks %d", len(got))
		}
	})
}

// TestBodySizeBoundary: a signed notification of exactly max_body bytes is
// accepted, one byte more is 413, with or without Content-Length.
func TestBodySizeBoundary(t *testing.T) {
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	const maxBody = 4096
	url := handlerServer(t, upstream.URL, func(h *Handler) { h.MaxBody = maxBody })
	alipayKey := testkit.Key(t, "alipay")
	base := testkit.TradeParams(testkit.AppID, time.Now())
	// A signed body field brings the body close to maxBody (the encoded
	// length of sign varies with its '+' and '/'); empty pairs ("&", which
	// carry nothing) make it exact.
	body := testkit.EncodeForm(testkit.Signed(t, alipayKey, base, false))
	body = testkit.EncodeForm(testkit.Signed(t, alipayKey, withBody(base, strings.Repeat("x", maxBody-len(body)-100)), false))
	if len(body) > maxBody {
		t.Fatalf("test bug: body of %d bytes", len(body))
	}
	body += strings.Repeat("&", maxBody-len(body))
	over := body + "&"
	for _, tc := range []struct {
		name    string
		body    string
		chunked bool
		status  int
	}{
		{"exactly max_body", body, false, 200},
		{"exactly max_body, chunked", body, true, 200},
		{"max_body + 1", over, false, 413},
		{"max_body + 1, chunked", over, true, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upstream.Take()
			var reader io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				reader = io.MultiReader(reader) // hides the length: sent chunked
			}
			status, answer, _ := testkit.Send(t, http.MethodPost, url, reader)
			if status != tc.status {
				t.Errorf("status %d %q, want %d", status, answer, tc.status)
			}
			if n := len(upstream.Take()); (tc.status == 200) != (n == 1) {
				t.Errorf("%d webhooks", n)
			}
		})
	}
}
