package alipaynotify

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// These tests run a real Caddy in the test process (caddytest) with
// alipay_notify in front of real HTTP upstreams that check every webhook
// with the official Standard Webhooks Go library. They share caddytest's
// fixed ports, so they must not run in parallel; -short skips them, and CI
// never runs with -short.

const (
	caddyBase      = "http://localhost:9080"
	alipayFormType = "application/x-www-form-urlencoded; text/html; charset=UTF-8" // sic: Alipay's real header
)

// receivedWebhook is one request an upstream got.
type receivedWebhook struct {
	header    http.Header
	trailer   http.Header
	body      []byte
	verifyErr error
	event     struct {
		Type      string            `json:"type"`
		Timestamp string            `json:"timestamp"`
		Data      map[string]string `json:"data"`
	}
}

// testUpstream is a merchant backend: it verifies each webhook with the
// official library and records it, then answers status after delay.
type testUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	received []receivedWebhook
	status   int
	delay    time.Duration
	newConns atomic.Int64 // TCP connections opened by Caddy
}

func newTestUpstream(t *testing.T, secret string, status int, delay time.Duration) *testUpstream {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	u := &testUpstream{status: status, delay: delay}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := receivedWebhook{header: r.Header.Clone(), trailer: r.Trailer.Clone(), body: body, verifyErr: wh.Verify(body, r.Header)}
		if err := json.Unmarshal(body, &rec.event); err != nil && rec.verifyErr == nil {
			rec.verifyErr = err
		}
		u.mu.Lock()
		u.received = append(u.received, rec)
		u.mu.Unlock()
		time.Sleep(u.delay)
		if u.status == http.StatusFound {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(u.status)
		_, _ = io.WriteString(w, "processed")
	}))
	u.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			u.newConns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// take returns and clears what the upstream received.
func (u *testUpstream) take() []receivedWebhook {
	u.mu.Lock()
	defer u.mu.Unlock()
	got := u.received
	u.received = nil
	return got
}

// postNotification posts a form body the way Alipay does and returns status and body.
func postNotification(t *testing.T, url, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", alipayFormType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer), resp.Header
}

func absTestdata(t *testing.T, parts ...string) string {
	path, err := filepath.Abs(filepath.Join(append([]string{"testdata"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// startTestCaddy loads a Caddyfile whose site blocks are given.
func startTestCaddy(t *testing.T, sites string) *caddytest.Tester {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	tester := caddytest.NewTester(t)
	tester.InitServer(`{
		skip_install_trust
		admin localhost:2999
		http_port 9080
		https_port 9443
		grace_period 1ns
		log {
			level DEBUG
		}
	}
	`+sites, "caddyfile")
	return tester
}

// notifyBlock is an alipay_notify block for testAppID with the test key.
func notifyBlock(t *testing.T, path, forward string, extra string) string {
	return fmt.Sprintf(`alipay_notify %s {
			app_id %s
			alipay_public_key %s
			seller_id 2088531891668739
			forward %s
			webhook_secret %s
			%s
		}
		`, path, testAppID, absTestdata(t, "keys", "alipay.pub.pem"), forward, testSecret, extra)
}

func TestAnswersThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ok := newTestUpstream(t, testSecret, http.StatusNoContent, 0)
	failing := newTestUpstream(t, testSecret, http.StatusInternalServerError, 0)
	redirecting := newTestUpstream(t, testSecret, http.StatusFound, 0)
	slow := newTestUpstream(t, testSecret, http.StatusOK, 2*time.Second)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // nothing listens there any more

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
	alipay := testKey(t, "alipay")
	good := signed(t, alipay, tradeParams(testAppID, now), false)
	goodBody := encodeForm(good)

	tests := []struct {
		name, path, method, body string
		status                   int
		answer                   string
		forwarded                *testUpstream
	}{
		{name: "upstream 2xx", path: "/notify", body: goodBody, status: 200, answer: "success", forwarded: ok},
		{name: "filtered trade_status", path: "/filtered", body: goodBody, status: 200, answer: "success"},
		{name: "GET", path: "/notify", method: http.MethodGet, status: 405, answer: "fail"},
		{name: "PUT", path: "/notify", method: http.MethodPut, body: goodBody, status: 405, answer: "fail"},
		{name: "body over max_body", path: "/notify", body: goodBody + "&pad=" + strings.Repeat("x", 9000), status: 413, answer: "fail"},
		{name: "not a form", path: "/notify", body: "%%%", status: 400, answer: "fail"},
		{name: "key sent twice", path: "/notify", body: goodBody + "&total_amount=0.10", status: 400, answer: "fail"},
		{name: "no sign", path: "/notify", body: encodeForm(good[:len(good)-1]), status: 400, answer: "fail"},
		{name: "unknown sign_type", path: "/notify", body: encodeForm(set(good, "sign_type", "XYZ")), status: 400, answer: "fail"},
		{name: "tampered amount", path: "/notify", body: encodeForm(set(good, "total_amount", "100.00")), status: 403, answer: "fail"},
		{name: "signed by the app key", path: "/notify", body: encodeForm(signed(t, testKey(t, "app"), tradeParams(testAppID, now), false)), status: 403, answer: "fail"},
		{name: "other app_id", path: "/notify", body: encodeForm(signed(t, alipay, tradeParams("2021000000000999", now), false)), status: 403, answer: "fail"},
		{name: "other seller_id", path: "/notify", body: encodeForm(signed(t, alipay, set(tradeParams(testAppID, now), "seller_id", "2088000000000009"), false)), status: 403, answer: "fail"},
		{name: "stale notify_time", path: "/notify", body: encodeForm(signed(t, alipay, tradeParams(testAppID, now.Add(-100*time.Hour)), false)), status: 403, answer: "fail"},
		{name: "signed field moved into the query", path: "/notify?total_amount=0.10", body: encodeForm(without(good, "total_amount")), status: 403, answer: "fail"},
		{name: "upstream 500", path: "/failing", body: goodBody, status: 502, answer: "fail", forwarded: failing},
		{name: "upstream redirect not followed", path: "/redirecting", body: goodBody, status: 502, answer: "fail", forwarded: redirecting},
		{name: "upstream timeout", path: "/slow", body: goodBody, status: 504, answer: "fail", forwarded: slow},
		{name: "upstream down", path: "/down", body: goodBody, status: 502, answer: "fail"},
	}
	all := []*testUpstream{ok, failing, redirecting, slow}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, caddyBase+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", alipayFormType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || string(answer) != tc.answer {
				t.Errorf("answer %d %q, want %d %q", resp.StatusCode, answer, tc.status, tc.answer)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, u := range all {
				got := u.take()
				switch {
				case u == tc.forwarded && len(got) != 1:
					t.Errorf("upstream got %d webhooks, want exactly 1", len(got))
				case u != tc.forwarded && len(got) != 0:
					t.Errorf("a refused or filtered notification reached an upstream (%d webhooks)", len(got))
				case len(got) == 1 && got[0].verifyErr != nil:
					t.Errorf("official library refuses the webhook: %v", got[0].verifyErr)
				}
			}
		})
	}
}

func TestWebhookThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	vec := loadVector(t, absTestdata(t, "vectors", "trade-rsa2-production.json"))
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
	}`, notifyBlock(t, "/notify", upstream.URL+"/hooks/alipay", ""), vec.AppID, vec.Key.AlipayPublicKey, upstream.URL, testSecret))

	t.Run("real Alipay vector", func(t *testing.T) {
		status, answer, _ := postNotification(t, caddyBase+"/vector", vec.Body)
		if status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := upstream.take()
		if len(got) != 1 || got[0].verifyErr != nil {
			t.Fatalf("upstream got %d webhooks (%v)", len(got), got)
		}
		w := got[0]
		if w.header.Get("webhook-id") != "2019081500222155624068450559358070" {
			t.Errorf("webhook-id %q", w.header.Get("webhook-id"))
		}
		if w.header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type %q", w.header.Get("Content-Type"))
		}
		if w.header.Get("Authorization") != "Bearer token-" {
			t.Errorf("header_up Authorization %q", w.header.Get("Authorization"))
		}
		if w.event.Type != "alipay.trade_status_sync" || w.event.Timestamp != "2019-08-15T15:56:25+08:00" {
			t.Errorf("event %s at %s", w.event.Type, w.event.Timestamp)
		}
		if w.event.Data["total_amount"] != "0.10" || w.event.Data["subject"] != "语雀空间 500人规模" || w.event.Data["sign"] != "" {
			t.Errorf("data %v", w.event.Data)
		}
	})

	t.Run("query parameters are neither signed nor forwarded", func(t *testing.T) {
		params := signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false)
		status, answer, _ := postNotification(t, caddyBase+"/notify?total_amount=999.00&injected=1", encodeForm(params))
		if status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := upstream.take()
		if len(got) != 1 {
			t.Fatalf("%d webhooks", len(got))
		}
		if got[0].event.Data["total_amount"] != "0.10" || got[0].event.Data["injected"] != "" {
			t.Errorf("query leaked into data: %v", got[0].event.Data)
		}
	})

	t.Run("GBK notification forwarded as UTF-8", func(t *testing.T) {
		subject, _ := simplifiedchinese.GBK.NewEncoder().String("白色杯子")
		params := signed(t, testKey(t, "alipay"), set(set(tradeParams(testAppID, time.Now()), "charset", "gbk"), "subject", subject), false)
		req, _ := http.NewRequest(http.MethodPost, caddyBase+"/notify", strings.NewReader(encodeForm(params)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=GBK")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := upstream.take()
		if resp.StatusCode != 200 || len(got) != 1 {
			t.Fatalf("status %d, %d webhooks", resp.StatusCode, len(got))
		}
		if got[0].event.Data["subject"] != "白色杯子" {
			t.Errorf("subject %q", got[0].event.Data["subject"])
		}
	})

	t.Run("keep-alive connections are reused", func(t *testing.T) {
		before := upstream.newConns.Load()
		for range 5 {
			body := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false))
			if status, _, _ := postNotification(t, caddyBase+"/notify", body); status != 200 {
				t.Fatalf("status %d", status)
			}
		}
		upstream.take()
		if opened := upstream.newConns.Load() - before; opened > 1 {
			t.Errorf("%d new upstream connections for 5 sequential notifications, want at most 1", opened)
		}
	})

	t.Run("a retry carries the same webhook-id", func(t *testing.T) {
		body := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false))
		for range 2 {
			if status, _, _ := postNotification(t, caddyBase+"/notify", body); status != 200 {
				t.Fatalf("status %d", status)
			}
		}
		got := upstream.take()
		if len(got) != 2 || got[0].header.Get("webhook-id") != got[1].header.Get("webhook-id") {
			t.Fatalf("ids differ or missing: %d webhooks", len(got))
		}
	})
}

func TestSecretRotationThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	next := "whsec_" + strings.Repeat("QUJD", 8)
	oldSide := newTestUpstream(t, testSecret, http.StatusOK, 0)
	newSide := newTestUpstream(t, next, http.StatusOK, 0)
	startTestCaddy(t, `http://localhost:9080 {
		`+notifyBlock(t, "/old", oldSide.URL, "")+`
		`+strings.Replace(notifyBlock(t, "/new", newSide.URL, ""), "webhook_secret "+testSecret, "webhook_secret "+testSecret+" "+next, 1)+`
	}`)
	body := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false))
	for path, u := range map[string]*testUpstream{"/new": newSide, "/old": oldSide} {
		if status, _, _ := postNotification(t, caddyBase+path, body); status != 200 {
			t.Fatalf("%s: status %d", path, status)
		}
		got := u.take()
		if len(got) != 1 || got[0].verifyErr != nil {
			t.Fatalf("%s: %d webhooks, %v", path, len(got), got)
		}
		if path == "/new" && len(strings.Fields(got[0].header.Get("webhook-signature"))) != 2 {
			t.Errorf("want two signatures, got %q", got[0].header.Get("webhook-signature"))
		}
	}
}

func TestConfigErrorsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Setenv("ALIPAY_NOTIFY_EMPTY", "")
	tests := map[string]struct{ block, want string }{
		"missing key file": {`alipay_public_key /nonexistent/key.txt`, "alipay_public_key #1"},
		"unset env secret": {`alipay_public_key ` + testPublicKeyLine(t, "alipay") + "\nwebhook_secret {env.ALIPAY_NOTIFY_EMPTY}", "webhook_secret #1"},
		"wrong root":       {`alipay_cert ` + absTestdata(t, "keys", "alipay.pub.pem"), "alipay_cert #1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			secret := "webhook_secret " + testSecret
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
