package integration

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// These tests run a real Caddy in the test process (caddytest) with
// alipay_notify in front of real HTTP upstreams that check every webhook
// with the official Standard Webhooks Go library. They share caddytest's
// fixed ports, so they must not run in parallel; -short skips them, and CI
// never runs with -short.

// caddyBase is where caddytest's Caddy listens.
const caddyBase = "http://localhost:9080"

// startTestCaddy loads a Caddyfile whose site blocks are given.
func startTestCaddy(t *testing.T, sites string) *caddytest.Tester {
	return initTestCaddy(t, debugLog(""), sites)
}

// initTestCaddy loads a Caddyfile (caddytestConfig) with its config and
// data folders in the test's. The client's idle connections are closed
// once it is loaded, so that no later request reaches the server of a
// previous configuration over a kept-alive connection.
func initTestCaddy(t *testing.T, globals, sites string) *caddytest.Tester {
	defer http.DefaultClient.CloseIdleConnections()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	tester := caddytest.NewTester(t)
	tester.InitServer(caddytestConfig(globals, sites), "caddyfile")
	return tester
}

// caddytestConfig is a Caddyfile on caddytest's ports with more global
// options (globals: a log block at least) and the site blocks.
func caddytestConfig(globals, sites string) string {
	return `{
		skip_install_trust
		admin localhost:2999
		http_port 9080
		https_port 9443
		grace_period 1ns
		` + globals + `
	}
	` + sites
}

// debugLog is the global log block at DEBUG, to stderr, or as JSON to the
// file path.
func debugLog(path string) string {
	if path == "" {
		return "log {\n\t\t\tlevel DEBUG\n\t\t}"
	}
	return "log {\n\t\t\toutput file " + path + "\n\t\t\tformat json\n\t\t\tlevel DEBUG\n\t\t}"
}

// notifyBlock is an alipay_notify block for testkit.AppID with the test key.
func notifyBlock(t *testing.T, path, forward string, extra string) string {
	return fmt.Sprintf(`alipay_notify %s {
			app_id %s
			alipay_public_key %s
			seller_id 2088531891668739
			forward %s
			webhook_secret %s
			%s
		}
		`, path, testkit.AppID, testkit.Testdata("keys", "alipay.pub.pem"), forward, testkit.Secret, extra)
}

func TestAnswersThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ok := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusNoContent, 0))
	failing := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusInternalServerError, 0))
	redirecting := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusFound, 0))
	slow := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 2*time.Second))
	downURL := testkit.ClosedURL(t)

	startTestCaddy(t, `http://localhost:9080 {
		`+notifyBlock(t, "/notify", ok.URL+"/hooks/alipay", "max_body 8KiB")+`
		`+notifyBlock(t, "/filtered", ok.URL+"/hooks/alipay", "forward_status TRADE_FINISHED")+`
		`+notifyBlock(t, "/failing", failing.URL, "")+`
		`+notifyBlock(t, "/redirecting", redirecting.URL, "")+`
		`+notifyBlock(t, "/slow", slow.URL, "timeout 300ms")+`
		`+notifyBlock(t, "/down", downURL, "")+`
		respond "not an Alipay endpoint" 404
	}`)

	now := time.Now()
	alipay := testkit.Key(t, "alipay")
	good := testkit.Signed(t, alipay, testkit.TradeParams(testkit.AppID, now), false)
	goodBody := testkit.EncodeForm(good)

	tests := []struct {
		name, path, method, body string
		status                   int
		answer                   string
		forwarded                *testkit.Upstream
	}{
		{name: "upstream 2xx", path: "/notify", body: goodBody, status: 200, answer: "success", forwarded: ok},
		{name: "filtered trade_status", path: "/filtered", body: goodBody, status: 200, answer: "success"},
		{name: "GET", path: "/notify", method: http.MethodGet, status: 405, answer: "fail"},
		{name: "PUT", path: "/notify", method: http.MethodPut, body: goodBody, status: 405, answer: "fail"},
		{name: "body over max_body", path: "/notify", body: goodBody + "&pad=" + strings.Repeat("x", 9000), status: 413, answer: "fail"},
		{name: "not a form", path: "/notify", body: "%%%", status: 400, answer: "fail"},
		{name: "key sent twice", path: "/notify", body: goodBody + "&total_amount=0.10", status: 400, answer: "fail"},
		{name: "no sign", path: "/notify", body: testkit.EncodeForm(good[:len(good)-1]), status: 400, answer: "fail"},
		{name: "unknown sign_type", path: "/notify", body: testkit.EncodeForm(testkit.Set(good, "sign_type", "XYZ")), status: 400, answer: "fail"},
		{name: "tampered amount", path: "/notify", body: testkit.EncodeForm(testkit.Set(good, "total_amount", "100.00")), status: 403, answer: "fail"},
		{name: "signed by the app key", path: "/notify", body: testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "app"), testkit.TradeParams(testkit.AppID, now), false)), status: 403, answer: "fail"},
		{name: "other app_id", path: "/notify", body: testkit.EncodeForm(testkit.Signed(t, alipay, testkit.TradeParams("2021000000000999", now), false)), status: 403, answer: "fail"},
		{name: "other seller_id", path: "/notify", body: testkit.EncodeForm(testkit.Signed(t, alipay, testkit.Set(testkit.TradeParams(testkit.AppID, now), "seller_id", "2088000000000009"), false)), status: 403, answer: "fail"},
		{name: "stale notify_time", path: "/notify", body: testkit.EncodeForm(testkit.Signed(t, alipay, testkit.TradeParams(testkit.AppID, now.Add(-100*time.Hour)), false)), status: 403, answer: "fail"},
		{name: "signed field moved into the query", path: "/notify?total_amount=0.10", body: testkit.EncodeForm(testkit.Without(good, "total_amount")), status: 403, answer: "fail"},
		{name: "upstream 500", path: "/failing", body: goodBody, status: 502, answer: "fail", forwarded: failing},
		{name: "upstream redirect not followed", path: "/redirecting", body: goodBody, status: 502, answer: "fail", forwarded: redirecting},
		{name: "upstream timeout", path: "/slow", body: goodBody, status: 504, answer: "fail", forwarded: slow},
		{name: "upstream down", path: "/down", body: goodBody, status: 502, answer: "fail"},
	}
	all := []*testkit.Upstream{ok, failing, redirecting, slow}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			status, answer, header := testkit.Send(t, method, caddyBase+tc.path, strings.NewReader(tc.body))
			if status != tc.status || answer != tc.answer {
				t.Errorf("answer %d %q, want %d %q", status, answer, tc.status, tc.answer)
			}
			if ct := header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, u := range all {
				got := u.Take()
				switch {
				case u == tc.forwarded && len(got) != 1:
					t.Errorf("upstream got %d webhooks, want exactly 1", len(got))
				case u != tc.forwarded && len(got) != 0:
					t.Errorf("a refused or filtered notification reached an upstream (%d webhooks)", len(got))
				case len(got) == 1 && got[0].VerifyErr != nil:
					t.Errorf("official library refuses the webhook: %v", got[0].VerifyErr)
				}
			}
		})
	}
}

func TestWebhookThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	vec := testkit.LoadVector(t, "trade-rsa2-production.json")
	startTestCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		%s
		alipay_notify /vector {
			app_id %s
			alipay_public_key %q
			forward %s/vector
			webhook_secret %s
			header_up Authorization "Bearer token-{env.TEST_TOKEN_PART}"
			max_age off
		}
	}`, notifyBlock(t, "/notify", upstream.URL+"/hooks/alipay", ""), vec.AppID, vec.Key.AlipayPublicKey, upstream.URL, testkit.Secret))

	t.Run("real Alipay vector", func(t *testing.T) {
		status, answer, _ := testkit.Post(t, caddyBase+"/vector", vec.Body)
		if status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := upstream.Take()
		if len(got) != 1 || got[0].VerifyErr != nil {
			t.Fatalf("upstream got %d webhooks (%v)", len(got), got)
		}
		w := got[0]
		if w.Header.Get("webhook-id") != "2019081500222155624068450559358070" {
			t.Errorf("webhook-id %q", w.Header.Get("webhook-id"))
		}
		if w.Header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type %q", w.Header.Get("Content-Type"))
		}
		if w.Header.Get("Authorization") != "Bearer token-" {
			t.Errorf("header_up Authorization %q", w.Header.Get("Authorization"))
		}
		if w.Event.Type != "alipay.trade_status_sync" || w.Event.Timestamp != "2019-08-15T15:56:25+08:00" {
			t.Errorf("event %s at %s", w.Event.Type, w.Event.Timestamp)
		}
		if w.Event.Data["total_amount"] != "0.10" || w.Event.Data["subject"] != "语雀空间 500人规模" || w.Event.Data["sign"] != "" {
			t.Errorf("data %v", w.Event.Data)
		}
	})

	t.Run("query parameters are neither signed nor forwarded", func(t *testing.T) {
		params := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false)
		status, answer, _ := testkit.Post(t, caddyBase+"/notify?total_amount=999.00&injected=1", testkit.EncodeForm(params))
		if status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := upstream.Take()
		if len(got) != 1 {
			t.Fatalf("%d webhooks", len(got))
		}
		if got[0].Event.Data["total_amount"] != "0.10" || got[0].Event.Data["injected"] != "" {
			t.Errorf("query leaked into data: %v", got[0].Event.Data)
		}
	})

	t.Run("GBK notification forwarded as UTF-8", func(t *testing.T) {
		subject, _ := simplifiedchinese.GBK.NewEncoder().String("白色杯子")
		params := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.Set(testkit.Set(testkit.TradeParams(testkit.AppID, time.Now()), "charset", "gbk"), "subject", subject), false)
		req, _ := http.NewRequest(http.MethodPost, caddyBase+"/notify", strings.NewReader(testkit.EncodeForm(params)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=GBK")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := upstream.Take()
		if resp.StatusCode != 200 || len(got) != 1 {
			t.Fatalf("status %d, %d webhooks", resp.StatusCode, len(got))
		}
		if got[0].Event.Data["subject"] != "白色杯子" {
			t.Errorf("subject %q", got[0].Event.Data["subject"])
		}
	})

	t.Run("keep-alive connections are reused", func(t *testing.T) {
		before := upstream.NewConns.Load()
		for range 5 {
			body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false))
			if status, _, _ := testkit.Post(t, caddyBase+"/notify", body); status != 200 {
				t.Fatalf("status %d", status)
			}
		}
		upstream.Take()
		if opened := upstream.NewConns.Load() - before; opened > 1 {
			t.Errorf("%d new upstream connections for 5 sequential notifications, want at most 1", opened)
		}
	})

	t.Run("a retry carries the same webhook-id", func(t *testing.T) {
		body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false))
		for range 2 {
			if status, _, _ := testkit.Post(t, caddyBase+"/notify", body); status != 200 {
				t.Fatalf("status %d", status)
			}
		}
		got := upstream.Take()
		if len(got) != 2 || got[0].Header.Get("webhook-id") != got[1].Header.Get("webhook-id") {
			t.Fatalf("ids differ or missing: %d webhooks", len(got))
		}
	})
}

func TestSecretRotationThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	next := "whsec_" + strings.Repeat("QUJD", 8)
	oldSide := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	newSide := testkit.NewUpstream(t, next, testkit.Status(http.StatusOK, 0))
	startTestCaddy(t, `http://localhost:9080 {
		`+notifyBlock(t, "/old", oldSide.URL, "")+`
		`+strings.Replace(notifyBlock(t, "/new", newSide.URL, ""), "webhook_secret "+testkit.Secret, "webhook_secret "+testkit.Secret+" "+next, 1)+`
	}`)
	body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false))
	for path, u := range map[string]*testkit.Upstream{"/new": newSide, "/old": oldSide} {
		if status, _, _ := testkit.Post(t, caddyBase+path, body); status != 200 {
			t.Fatalf("%s: status %d", path, status)
		}
		got := u.Take()
		if len(got) != 1 || got[0].VerifyErr != nil {
			t.Fatalf("%s: %d webhooks, %v", path, len(got), got)
		}
		if path == "/new" && len(strings.Fields(got[0].Header.Get("webhook-signature"))) != 2 {
			t.Errorf("want two signatures, got %q", got[0].Header.Get("webhook-signature"))
		}
	}
}

func TestConfigErrorsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Setenv("ALIPAY_NOTIFY_EMPTY", "")
	tests := map[string]struct{ block, want string }{
		"missing key file":         {`alipay_public_key /nonexistent/key.txt`, "alipay_public_key #1"},
		"missing file placeholder": {`alipay_public_key {file./nonexistent/key.txt}`, "alipay_public_key #1: {file./nonexistent/key.txt}: cannot read /nonexistent/key.txt"},
		"unset env secret":         {`alipay_public_key ` + testkit.PublicKeyLine(t, "alipay") + "\nwebhook_secret {env.ALIPAY_NOTIFY_EMPTY}", "webhook_secret #1"},
		"wrong root":               {`alipay_cert ` + testkit.Testdata("keys", "alipay.pub.pem"), "alipay_cert #1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			secret := "webhook_secret " + testkit.Secret
			if strings.Contains(tc.block, "webhook_secret") {
				secret = ""
			}
			caddytest.AssertLoadError(t, fmt.Sprintf(`{
				admin localhost:2999
				http_port 9080
			}
			http://localhost:9080 {
				alipay_notify {
					app_id 1
					forward http://127.0.0.1:1
					%s
					%s
				}
			}`, secret, tc.block), "caddyfile", tc.want)
		})
	}
}

// An https:// upstream whose certificate a private CA issued: refused
// without trusted_ca (Alipay retries), trusted with it.
func TestTrustedCAThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewTLSUpstream(t, testkit.Secret, nil)
	caFile := filepath.Join(t.TempDir(), "private-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	startTestCaddy(t, `http://localhost:9080 {
		`+notifyBlock(t, "/untrusted", upstream.URL, "")+`
		`+notifyBlock(t, "/trusted", upstream.URL, "trusted_ca "+caFile)+`
	}`)
	body := testkit.Genuine(t, "2026112900222155624068450559358071")
	if status, answer, _ := testkit.Post(t, caddyBase+"/untrusted", body); status != 502 || answer != "fail" {
		t.Errorf("untrusted certificate: answer %d %q, want 502 fail", status, answer)
	}
	upstream.Take() // the TLS handshake failed before any request
	if status, answer, _ := testkit.Post(t, caddyBase+"/trusted", body); status != 200 || answer != "success" {
		t.Fatalf("trusted_ca: answer %d %q, want 200 success", status, answer)
	}
	if got := upstream.Take(); len(got) != 1 || got[0].VerifyErr != nil {
		t.Fatalf("upstream got %d webhooks (%v)", len(got), got)
	}
}
