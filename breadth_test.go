package alipaynotify

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// Legacy mapi notifications, app-gateway messages, alipay_verify, several
// apps and SM2, each through a real Caddy.

const (
	testPartner = "2088012362182973"
	testMD5Key  = "ma5ujpv6v2h6wt0ax6o4f3i0ypnwhjko"
)

// md5Signed signs params the legacy way: md5_hex(signed string + key).
func md5Signed(params []kv, key string) []kv {
	sum := md5.Sum([]byte(alipayString(params, false) + key))
	return append(append([]kv(nil), params...), kv{"sign", hex.EncodeToString(sum[:])})
}

// legacyParams is a mapi trade notification like those in seed 000.
func legacyParams(notifyID, status string, now time.Time) []kv {
	return []kv{
		{"discount", "0.00"}, {"payment_type", "1"}, {"subject", "白色杯子"},
		{"trade_no", "2015070200001000110058805905"}, {"buyer_email", "buyer@example.com"},
		{"gmt_create", now.In(beijing).Format(alipayTimeLayout)}, {"notify_type", "trade_status_sync"},
		{"quantity", "1"}, {"out_trade_no", "1435804253"}, {"seller_id", testPartner},
		{"notify_time", now.In(beijing).Format(alipayTimeLayout)}, {"trade_status", status},
		{"is_total_fee_adjust", "N"}, {"total_fee", "4.50"}, {"seller_email", "shop@example.com"},
		{"price", "4.50"}, {"buyer_id", "2088402465245110"}, {"notify_id", notifyID},
		{"use_coupon", "N"}, {"sign_type", "MD5"},
	}
}

// fakeGateway plays mapi.alipay.com's notify_verify: it confirms the
// notify_ids it was told about.
type fakeGateway struct {
	*httptest.Server
	mu        sync.Mutex
	confirmed map[string]bool
	queries   []string
}

func newFakeGateway(t *testing.T, delay time.Duration) *fakeGateway {
	g := &fakeGateway{confirmed: map[string]bool{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		q := r.URL.Query()
		g.mu.Lock()
		g.queries = append(g.queries, r.URL.RawQuery)
		ok := q.Get("service") == "notify_verify" && q.Get("partner") == testPartner && g.confirmed[q.Get("notify_id")]
		g.mu.Unlock()
		fmt.Fprint(w, strconv.FormatBool(ok))
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *fakeGateway) confirm(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.confirmed[id] = true
}

func TestLegacyMD5ThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	gateway := newFakeGateway(t, 0)
	slowGateway := newFakeGateway(t, 2*time.Second)
	legacy := func(path, extra string) string {
		return fmt.Sprintf(`alipay_notify %s {
			partner %s
			md5_key {env.TEST_MD5_KEY}
			forward %s
			webhook_secret %s
			%s
		}
		`, path, testPartner, upstream.URL, testSecret, extra)
	}
	t.Setenv("TEST_MD5_KEY", testMD5Key)
	startTestCaddy(t, `http://localhost:9080 {
		`+legacy("/legacy", "")+`
		`+legacy("/verified", "notify_verify "+gateway.URL+"/gateway.do")+`
		`+legacy("/slow", "notify_verify "+slowGateway.URL+"\ntimeout 300ms")+`
		`+legacy("/down", "notify_verify http://127.0.0.1:1/gateway.do")+`
		`+legacy("/sellers", "seller_id 2088000000000001 "+testPartner)+`
		`+notifyBlock(t, "/rsa-only", upstream.URL, "")+`
	}`)
	now := time.Now()
	gateway.confirm("confirmed-1")
	uppercase := md5Signed(legacyParams("upper-1", "TRADE_SUCCESS", now), testMD5Key)
	uppercase[len(uppercase)-1].v = strings.ToUpper(uppercase[len(uppercase)-1].v)

	tests := []struct {
		name, path string
		params     []kv
		status     int
		forwarded  bool
	}{
		{"escrow WAIT_SELLER_SEND_GOODS", "/legacy", md5Signed(legacyParams("n-1", "WAIT_SELLER_SEND_GOODS", now), testMD5Key), 200, true},
		{"escrow WAIT_BUYER_CONFIRM_GOODS", "/legacy", md5Signed(legacyParams("n-2", "WAIT_BUYER_CONFIRM_GOODS", now), testMD5Key), 200, true},
		{"TRADE_FINISHED", "/legacy", md5Signed(legacyParams("n-3", "TRADE_FINISHED", now), testMD5Key), 200, true},
		{"upper-case hex sign", "/legacy", uppercase, 200, true},
		{"tampered total_fee", "/legacy", set(md5Signed(legacyParams("n-4", "TRADE_SUCCESS", now), testMD5Key), "total_fee", "0.01"), 403, false},
		{"other key", "/legacy", md5Signed(legacyParams("n-5", "TRADE_SUCCESS", now), "another-key"), 403, false},
		{"seller is not the partner", "/legacy", md5Signed(set(legacyParams("n-6", "TRADE_SUCCESS", now), "seller_id", "2088000000000009"), testMD5Key), 403, false},
		{"seller_id list", "/sellers", md5Signed(set(legacyParams("n-7", "TRADE_SUCCESS", now), "seller_id", "2088000000000001"), testMD5Key), 200, true},
		{"stale", "/legacy", md5Signed(legacyParams("n-8", "TRADE_SUCCESS", now.Add(-100*time.Hour)), testMD5Key), 403, false},
		{"MD5 without md5_key configured", "/rsa-only", md5Signed(legacyParams("n-9", "TRADE_SUCCESS", now), testMD5Key), 400, false},
		{"notify_verify confirms", "/verified", md5Signed(legacyParams("confirmed-1", "TRADE_SUCCESS", now), testMD5Key), 200, true},
		{"notify_verify answers false", "/verified", md5Signed(legacyParams("unknown-1", "TRADE_SUCCESS", now), testMD5Key), 403, false},
		{"notify_verify too slow", "/slow", md5Signed(legacyParams("confirmed-1", "TRADE_SUCCESS", now), testMD5Key), 504, false},
		{"notify_verify unreachable", "/down", md5Signed(legacyParams("confirmed-1", "TRADE_SUCCESS", now), testMD5Key), 502, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, answer, _ := postNotification(t, caddyBase+tc.path, encodeForm(tc.params))
			want := "fail"
			if tc.status == 200 {
				want = "success"
			}
			if status != tc.status || answer != want {
				t.Fatalf("answer %d %q, want %d %q", status, answer, tc.status, want)
			}
			got := upstream.take()
			if tc.forwarded != (len(got) == 1) || len(got) > 1 {
				t.Fatalf("forwarded %d webhooks, want forwarded=%v", len(got), tc.forwarded)
			}
			if tc.forwarded {
				if got[0].verifyErr != nil {
					t.Fatal(got[0].verifyErr)
				}
				if got[0].event.Data["subject"] != "白色杯子" || got[0].event.Data["sign_type"] != "MD5" || got[0].event.Type != "alipay.trade_status_sync" {
					t.Errorf("event %+v", got[0].event)
				}
			}
		})
	}
	gateway.mu.Lock()
	defer gateway.mu.Unlock()
	if len(gateway.queries) != 2 || !strings.Contains(gateway.queries[0], "partner="+testPartner) {
		t.Errorf("gateway queries %v", gateway.queries)
	}
}

func TestGatewayMessagesThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	vec := loadVector(t, absTestdata(t, "vectors", "gateway-servicemarket-rsa2-v2.json"))
	forged := loadVector(t, absTestdata(t, "vectors", "gateway-servicemarket-rsa2-v2-tampered.json"))
	startTestCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		%s
		alipay_notify /market {
			app_id %s
			alipay_public_key `+"`%s`"+`
			forward %s
			webhook_secret %s
			max_age off
		}
	}`, notifyBlock(t, "/gateway", upstream.URL, ""), vec.AppID, vec.Key.AlipayPublicKey, upstream.URL, testSecret))

	t.Run("service-market vector", func(t *testing.T) {
		if status, answer, _ := postNotification(t, caddyBase+"/market", vec.Body); status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := upstream.take()
		if len(got) != 1 || got[0].event.Type != "alipay.servicemarket_order_notify" || got[0].event.Data["contactor"] != "技术支持测试的公司" {
			t.Fatalf("webhooks %+v", got)
		}
		if status, _, _ := postNotification(t, caddyBase+"/market", forged.Body); status != 403 || len(upstream.take()) != 0 {
			t.Fatalf("tampered vector: status %d", status)
		}
	})

	t.Run("own message with msg_method and utc_timestamp", func(t *testing.T) {
		sent := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
		params := []kv{
			{"app_id", testAppID}, {"charset", "UTF-8"}, {"msg_method", "alipay.fund.trans.order.changed"},
			{"biz_content", `{"out_biz_no":"2024010200001","status":"SUCCESS","trans_amount":"1.00"}`},
			{"notify_id", "gateway-msg-1"}, {"utc_timestamp", strconv.FormatInt(sent.UnixMilli(), 10)},
			{"version", "1.1"}, {"sign_type", "RSA2"},
		}
		body := encodeForm(signed(t, testKey(t, "alipay"), params, true))
		if status, answer, _ := postNotification(t, caddyBase+"/gateway", body); status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := upstream.take()
		if len(got) != 1 {
			t.Fatalf("%d webhooks", len(got))
		}
		e := got[0].event
		if e.Type != "alipay.fund.trans.order.changed" || e.Timestamp != sent.In(beijing).Format(time.RFC3339) || e.Data["biz_content"] != params[3].v {
			t.Errorf("event %+v", e)
		}
		stale := set(params, "utc_timestamp", strconv.FormatInt(time.Now().Add(-80*time.Hour).UnixMilli(), 10))
		if status, _, _ := postNotification(t, caddyBase+"/gateway", encodeForm(signed(t, testKey(t, "alipay"), stale, true))); status != 403 {
			t.Errorf("stale utc_timestamp: status %d", status)
		}
		upstream.take()
	})
}

// proxiedRequest is what the upstream behind alipay_verify received.
type proxiedRequest struct {
	header http.Header
	body   string
	query  string
}

func TestAlipayVerifyThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	var mu sync.Mutex
	var received []proxiedRequest
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		received = append(received, proxiedRequest{header: r.Header.Clone(), body: string(body), query: r.URL.RawQuery})
		mu.Unlock()
		fmt.Fprint(w, "success")
	}))
	t.Cleanup(backend.Close)
	take := func() []proxiedRequest {
		mu.Lock()
		defer mu.Unlock()
		got := received
		received = nil
		return got
	}
	startTestCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		alipay_verify {
			app_id %s
			alipay_public_key %s
		}
		reverse_proxy %s {
			header_up X-Placeholder-Trade {http.alipay.out_trade_no}/{http.alipay.verified}
		}
	}`, testAppID, testPublicKeyLine(t, "alipay"), backend.URL))

	// The return_url redirect: a GET signed like a notification, with
	// timestamp instead of notify_time, so it is not aged.
	returnParams := []kv{
		{"charset", "utf-8"}, {"out_trade_no", "20240102-0001"}, {"method", "alipay.trade.page.pay.return"},
		{"total_amount", "88.88"}, {"sign_type", "RSA2"}, {"trade_no", "2024010222001400000000000001"},
		{"auth_app_id", testAppID}, {"version", "1.0"}, {"app_id", testAppID},
		{"seller_id", "2088531891668739"}, {"timestamp", "2020-01-02 10:00:00"},
	}
	returnQuery := encodeForm(signed(t, testKey(t, "alipay"), returnParams, false))

	get := func(query string, headers map[string]string) int {
		req, _ := http.NewRequest(http.MethodGet, caddyBase+"/orders/return?"+query, nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	t.Run("return_url passes with verified headers", func(t *testing.T) {
		forgedHeaders := map[string]string{"Alipay-Verified": "false", "Alipay-Total-Amount": "0.01", "Alipay-Whatever": "x"}
		if status := get(returnQuery, forgedHeaders); status != 200 {
			t.Fatalf("status %d", status)
		}
		got := take()
		if len(got) != 1 {
			t.Fatalf("%d requests upstream", len(got))
		}
		h := got[0].header
		want := map[string]string{
			"Alipay-Verified": "true", "Alipay-App-Id": testAppID, "Alipay-Out-Trade-No": "20240102-0001",
			"Alipay-Trade-No": "2024010222001400000000000001", "Alipay-Total-Amount": "88.88",
			"X-Placeholder-Trade": "20240102-0001/true",
		}
		for k, v := range want {
			if h.Get(k) != v || len(h.Values(k)) != 1 {
				t.Errorf("%s = %q, want %q", k, h.Values(k), v)
			}
		}
		if h.Get("Alipay-Whatever") != "" || h.Get("Alipay-Trade-Status") != "" {
			t.Errorf("client Alipay-* headers or an absent field leaked: %v", h)
		}
		if got[0].query != returnQuery {
			t.Error("query not passed on untouched")
		}
	})

	t.Run("forged return_url with forged headers is refused", func(t *testing.T) {
		forged := encodeForm(set(signed(t, testKey(t, "alipay"), returnParams, false), "total_amount", "0.01"))
		if status := get(forged, map[string]string{"Alipay-Verified": "true"}); status != 403 {
			t.Fatalf("status %d, want 403", status)
		}
		if status := get("out_trade_no=1", map[string]string{"Alipay-Verified": "true"}); status != 400 {
			t.Fatalf("unsigned: status %d, want 400", status)
		}
		if got := take(); len(got) != 0 {
			t.Fatalf("%d refused requests reached the upstream", len(got))
		}
	})

	t.Run("POST gate keeps the body readable", func(t *testing.T) {
		body := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false))
		status, answer, _ := postNotification(t, caddyBase+"/legacy/notify.php", body)
		if status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := take()
		if len(got) != 1 || got[0].body != body || got[0].header.Get("Alipay-Trade-Status") != "TRADE_SUCCESS" {
			t.Fatalf("upstream got %+v", got)
		}
		forged := encodeForm(set(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false), "total_amount", "9.99"))
		if status, answer, _ := postNotification(t, caddyBase+"/legacy/notify.php", forged); status != 403 || answer != "fail" {
			t.Fatalf("forged POST: %d %q", status, answer)
		}
		if got := take(); len(got) != 0 {
			t.Fatal("forged POST reached the upstream")
		}
	})
}

func TestSeveralAppsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	const appA, appB, appC = "2021000000000001", "2021000000000002", "2021000000000003"
	startTestCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		alipay_notify /notify {
			app %s {
				alipay_public_key %s
			}
			app %s {
				alipay_public_key %s
			}
			app_id %s
			alipay_public_key %s
			forward %s
			webhook_secret %s
		}
	}`, appA, testPublicKeyLine(t, "alipay"), appB, absTestdata(t, "keys", "alipay2.pub.pem"),
		appC, testPublicKeyLine(t, "app"), upstream.URL, testSecret))
	now := time.Now()
	tests := []struct {
		name, key, app string
		status         int
	}{
		{"app A with its key", "alipay", appA, 200},
		{"app B with its key", "alipay2", appB, 200},
		{"top-level app C", "app", appC, 200},
		{"app B signed with A's key", "alipay", appB, 403},
		{"app A signed with B's key", "alipay2", appA, 403},
		{"unknown app", "alipay", "2021000000000999", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := encodeForm(signed(t, testKey(t, tc.key), tradeParams(tc.app, now), false))
			if status, _, _ := postNotification(t, caddyBase+"/notify", body); status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if got := upstream.take(); (len(got) == 1) != (tc.status == 200) {
				t.Fatalf("%d webhooks", len(got))
			}
		})
	}
}

func TestAppBlockCaddyfile(t *testing.T) {
	line := testPublicKeyLine(t, "alipay")
	tail := "forward http://x\nwebhook_secret " + testSecret + "\n"
	tests := map[string]string{
		"policy in app block":  "app 1 {\nalipay_public_key " + line + "\nseller_id 2\n}\n",
		"app without id":       "app {\nalipay_public_key " + line + "\n}\n",
		"app without key":      "app 1 {\n}\n",
		"md5_key alone":        "md5_key abc\n",
		"partner alone":        "partner 2088\n",
		"nothing to verify":    "",
		"notify_verify no md5": "app_id 1\nalipay_public_key " + line + "\nnotify_verify http://x http://y\n",
	}
	wants := map[string]string{
		"policy in app block":  `"seller_id" in app 1: an app block holds only`,
		"app without id":       "app needs the app_id",
		"app without key":      "app 1: no key",
		"md5_key alone":        "partner and md5_key go together",
		"partner alone":        "partner and md5_key go together",
		"nothing to verify":    "app_id with a key",
		"notify_verify no md5": "notify_verify takes at most one gateway URL",
	}
	for name, block := range tests {
		t.Run(name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay_notify {\n" + block + tail + "}"))
			if err == nil || !strings.Contains(err.Error(), wants[name]) {
				t.Fatalf("want error containing %q, got %v", wants[name], err)
			}
		})
	}
	var g Gate
	err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay_verify {\napp_id 1\nalipay_public_key " + line + "\nforward http://x\n}"))
	if err == nil || !strings.Contains(err.Error(), `unknown subdirective "forward"`) {
		t.Fatalf("alipay_verify accepted forward: %v", err)
	}
}

// sm2TestKey generates an SM2 key and writes its public key as PEM.
func sm2TestKey(t *testing.T) (*sm2.PrivateKey, string) {
	t.Helper()
	priv, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := smx509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sm2.pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, path
}

// sm2Signed signs params with SM3withSM2 and the default user ID, as
// Alipay's Java SDK does.
func sm2Signed(t *testing.T, priv *sm2.PrivateKey, params []kv) []kv {
	t.Helper()
	params = set(params, "sign_type", "SM2")
	sig, err := priv.SignWithSM2(rand.Reader, nil, []byte(alipayString(params, false)))
	if err != nil {
		t.Fatal(err)
	}
	return append(params, kv{"sign", base64.StdEncoding.EncodeToString(sig)})
}

func TestSM2ThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	priv, pubPath := sm2TestKey(t)
	certPath := sm2Certificate(t, priv)
	startTestCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		alipay_notify /notify {
			app_id %s
			alipay_public_key %s
			alipay_public_key %s
			forward %s
			webhook_secret %s
		}
		alipay_notify /cert {
			app_id %s
			alipay_cert %s
			forward %s
			webhook_secret %s
		}
	}`, testAppID, testPublicKeyLine(t, "alipay"), pubPath, upstream.URL, testSecret, testAppID, certPath, upstream.URL, testSecret))
	now := time.Now()
	for _, path := range []string{"/notify", "/cert"} {
		good := sm2Signed(t, priv, tradeParams(testAppID, now))
		if status, answer, _ := postNotification(t, caddyBase+path, encodeForm(good)); status != 200 || answer != "success" {
			t.Fatalf("%s: SM2 notification: %d %q", path, status, answer)
		}
		if got := upstream.take(); len(got) != 1 || got[0].event.Data["sign_type"] != "SM2" {
			t.Fatalf("%s: webhooks %+v", path, got)
		}
		if status, _, _ := postNotification(t, caddyBase+path, encodeForm(set(good, "total_amount", "1.00"))); status != 403 {
			t.Fatalf("%s: tampered SM2 notification: status %d", path, status)
		}
		// An RSA signature relabelled SM2 must not pass, nor the reverse.
		rsaSigned := signed(t, testKey(t, "alipay"), tradeParams(testAppID, now), false)
		if status, _, _ := postNotification(t, caddyBase+path, encodeForm(set(rsaSigned, "sign_type", "SM2"))); status != 403 {
			t.Fatalf("%s: RSA signature as SM2: status %d", path, status)
		}
		if status, _, _ := postNotification(t, caddyBase+path, encodeForm(set(good, "sign_type", "RSA2"))); status != 403 {
			t.Fatalf("%s: SM2 signature as RSA2: status %d", path, status)
		}
		if got := upstream.take(); len(got) != 0 {
			t.Fatalf("%s: %d refused notifications forwarded", path, len(got))
		}
	}
}

// sm2Certificate writes a self-signed SM2 certificate for priv.
func sm2Certificate(t *testing.T, priv *sm2.PrivateKey) string {
	t.Helper()
	template := &smx509.Certificate{
		SerialNumber: big.NewInt(42),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	template.Subject.CommonName = "Test Alipay SM2"
	der, err := smx509.CreateCertificate(rand.Reader, template, template, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	// Not *.crt: caddytest rewrites paths ending in .crt or .key.
	path := filepath.Join(t.TempDir(), "alipayCertPublicKey_SM2.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
