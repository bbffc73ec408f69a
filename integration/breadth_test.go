package integration

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
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

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Legacy mapi notifications, app-gateway messages, alipay_verify, several
// apps and SM2, each through a real Caddy.

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
		ok := q.Get("service") == "notify_verify" && q.Get("partner") == testkit.Partner && g.confirmed[q.Get("notify_id")]
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
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
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
		`, path, testkit.Partner, upstream.URL, testkit.Secret, extra)
	}
	t.Setenv("TEST_MD5_KEY", testkit.MD5Key)
	startTestCaddy(t, `http://localhost:9080 {
		`+legacy("/legacy", "")+`
		`+legacy("/verified", "notify_verify "+gateway.URL+"/gateway.do")+`
		`+legacy("/slow", "notify_verify "+slowGateway.URL+"\ntimeout 300ms")+`
		`+legacy("/down", "notify_verify http://127.0.0.1:1/gateway.do")+`
		`+legacy("/sellers", "seller_id 2088000000000001 "+testkit.Partner)+`
		`+legacy("/legacy-gbk", "default_charset gbk")+`
		`+notifyBlock(t, "/rsa-only", upstream.URL, "")+`
	}`)
	now := time.Now()
	gateway.confirm("confirmed-1")
	uppercase := testkit.MD5Signed(testkit.LegacyParams("upper-1", "TRADE_SUCCESS", now), testkit.MD5Key)
	uppercase[len(uppercase)-1].V = strings.ToUpper(uppercase[len(uppercase)-1].V)
	// A merchant whose payment requests named no _input_charset: GBK bytes,
	// no charset parameter, the MD5 over the GBK bytes.
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("白色杯子")
	gbkLegacy := func(id string) []testkit.KV {
		return testkit.MD5Signed(testkit.Set(testkit.LegacyParams(id, "TRADE_SUCCESS", now), "subject", gbkSubject), testkit.MD5Key)
	}

	tests := []struct {
		name, path string
		params     []testkit.KV
		status     int
		forwarded  bool
	}{
		{"escrow WAIT_SELLER_SEND_GOODS", "/legacy", testkit.MD5Signed(testkit.LegacyParams("n-1", "WAIT_SELLER_SEND_GOODS", now), testkit.MD5Key), 200, true},
		{"escrow WAIT_BUYER_CONFIRM_GOODS", "/legacy", testkit.MD5Signed(testkit.LegacyParams("n-2", "WAIT_BUYER_CONFIRM_GOODS", now), testkit.MD5Key), 200, true},
		{"TRADE_FINISHED", "/legacy", testkit.MD5Signed(testkit.LegacyParams("n-3", "TRADE_FINISHED", now), testkit.MD5Key), 200, true},
		{"upper-case hex sign", "/legacy", uppercase, 200, true},
		{"GBK without a charset, default_charset gbk", "/legacy-gbk", gbkLegacy("gbk-1"), 200, true},
		{"GBK without a charset, read as UTF-8", "/legacy", gbkLegacy("gbk-2"), 400, false},
		{"tampered total_fee", "/legacy", testkit.Set(testkit.MD5Signed(testkit.LegacyParams("n-4", "TRADE_SUCCESS", now), testkit.MD5Key), "total_fee", "0.01"), 403, false},
		{"other key", "/legacy", testkit.MD5Signed(testkit.LegacyParams("n-5", "TRADE_SUCCESS", now), "another-key"), 403, false},
		{"seller is not the partner", "/legacy", testkit.MD5Signed(testkit.Set(testkit.LegacyParams("n-6", "TRADE_SUCCESS", now), "seller_id", "2088000000000009"), testkit.MD5Key), 403, false},
		{"seller_id list", "/sellers", testkit.MD5Signed(testkit.Set(testkit.LegacyParams("n-7", "TRADE_SUCCESS", now), "seller_id", "2088000000000001"), testkit.MD5Key), 200, true},
		{"stale", "/legacy", testkit.MD5Signed(testkit.LegacyParams("n-8", "TRADE_SUCCESS", now.Add(-100*time.Hour)), testkit.MD5Key), 403, false},
		{"MD5 without md5_key configured", "/rsa-only", testkit.MD5Signed(testkit.LegacyParams("n-9", "TRADE_SUCCESS", now), testkit.MD5Key), 400, false},
		{"notify_verify confirms", "/verified", testkit.MD5Signed(testkit.LegacyParams("confirmed-1", "TRADE_SUCCESS", now), testkit.MD5Key), 200, true},
		{"notify_verify answers false", "/verified", testkit.MD5Signed(testkit.LegacyParams("unknown-1", "TRADE_SUCCESS", now), testkit.MD5Key), 403, false},
		{"notify_verify too slow", "/slow", testkit.MD5Signed(testkit.LegacyParams("confirmed-1", "TRADE_SUCCESS", now), testkit.MD5Key), 504, false},
		{"notify_verify unreachable", "/down", testkit.MD5Signed(testkit.LegacyParams("confirmed-1", "TRADE_SUCCESS", now), testkit.MD5Key), 502, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, answer, _ := testkit.Post(t, caddyBase+tc.path, testkit.EncodeForm(tc.params))
			want := "fail"
			if tc.status == 200 {
				want = "success"
			}
			if status != tc.status || answer != want {
				t.Fatalf("answer %d %q, want %d %q", status, answer, tc.status, want)
			}
			got := upstream.Take()
			if tc.forwarded != (len(got) == 1) || len(got) > 1 {
				t.Fatalf("forwarded %d webhooks, want forwarded=%v", len(got), tc.forwarded)
			}
			if tc.forwarded {
				if got[0].VerifyErr != nil {
					t.Fatal(got[0].VerifyErr)
				}
				if got[0].Event.Data["subject"] != "白色杯子" || got[0].Event.Data["sign_type"] != "MD5" || got[0].Event.Type != "alipay.trade_status_sync" {
					t.Errorf("event %+v", got[0].Event)
				}
			}
		})
	}
	gateway.mu.Lock()
	defer gateway.mu.Unlock()
	if len(gateway.queries) != 2 || !strings.Contains(gateway.queries[0], "partner="+testkit.Partner) {
		t.Errorf("gateway queries %v", gateway.queries)
	}
}

func TestGatewayMessagesThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	vec := testkit.LoadVector(t, "gateway-servicemarket-rsa2-v2.json")
	forged := testkit.LoadVector(t, "gateway-servicemarket-rsa2-v2-tampered.json")
	startTestCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		%s
		alipay_notify /market {
			app_id %s
			alipay_public_key `+"`%s`"+`
			forward %s
			webhook_secret %s
			max_age off
		}
	}`, notifyBlock(t, "/gateway", upstream.URL, ""), vec.AppID, vec.Key.AlipayPublicKey, upstream.URL, testkit.Secret))

	t.Run("service-market vector", func(t *testing.T) {
		if status, answer, _ := testkit.Post(t, caddyBase+"/market", vec.Body); status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := upstream.Take()
		if len(got) != 1 || got[0].Event.Type != "alipay.servicemarket_order_notify" || got[0].Event.Data["contactor"] != "技术支持测试的公司" {
			t.Fatalf("webhooks %+v", got)
		}
		if status, _, _ := testkit.Post(t, caddyBase+"/market", forged.Body); status != 403 || len(upstream.Take()) != 0 {
			t.Fatalf("tampered vector: status %d", status)
		}
	})

	t.Run("own message with msg_method and utc_timestamp", func(t *testing.T) {
		sent := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
		params := []testkit.KV{
			{"app_id", testkit.AppID}, {"charset", "UTF-8"}, {"msg_method", "alipay.fund.trans.order.changed"},
			{"biz_content", `{"out_biz_no":"2024010200001","status":"SUCCESS","trans_amount":"1.00"}`},
			{"notify_id", "gateway-msg-1"}, {"utc_timestamp", strconv.FormatInt(sent.UnixMilli(), 10)},
			{"version", "1.1"}, {"sign_type", "RSA2"},
		}
		body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), params, true))
		if status, answer, _ := testkit.Post(t, caddyBase+"/gateway", body); status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := upstream.Take()
		if len(got) != 1 {
			t.Fatalf("%d webhooks", len(got))
		}
		e := got[0].Event
		if e.Type != "alipay.fund.trans.order.changed" || e.Timestamp != sent.In(testkit.Beijing).Format(time.RFC3339) || e.Data["biz_content"] != params[3].V {
			t.Errorf("event %+v", e)
		}
		stale := testkit.Set(params, "utc_timestamp", strconv.FormatInt(time.Now().Add(-80*time.Hour).UnixMilli(), 10))
		if status, _, _ := testkit.Post(t, caddyBase+"/gateway", testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), stale, true))); status != 403 {
			t.Errorf("stale utc_timestamp: status %d", status)
		}
		upstream.Take()
	})
}

func TestAlipayVerifyThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	// The backend behind the gate: a notify handler that answers success.
	backend := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "success") })
	take := backend.Take
	startTestCaddy(t, fmt.Sprintf(`http://localhost:9080 {
		alipay_verify {
			app_id %s
			alipay_public_key %s
		}
		reverse_proxy %s {
			header_up X-Placeholder-Trade {http.alipay.out_trade_no}/{http.alipay.verified}
		}
	}`, testkit.AppID, testkit.PublicKeyLine(t, "alipay"), backend.URL))

	// The return_url redirect: a GET signed like a notification, with
	// timestamp instead of notify_time, so it is not aged.
	returnParams := []testkit.KV{
		{"charset", "utf-8"}, {"out_trade_no", "20240102-0001"}, {"method", "alipay.trade.page.pay.return"},
		{"total_amount", "88.88"}, {"sign_type", "RSA2"}, {"trade_no", "2024010222001400000000000001"},
		{"auth_app_id", testkit.AppID}, {"version", "1.0"}, {"app_id", testkit.AppID},
		{"seller_id", "2088531891668739"}, {"timestamp", "2020-01-02 10:00:00"},
	}
	returnQuery := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), returnParams, false))

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
		h := got[0].Header
		want := map[string]string{
			"Alipay-Verified": "true", "Alipay-App-Id": testkit.AppID, "Alipay-Out-Trade-No": "20240102-0001",
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
		if got[0].URL.RawQuery != returnQuery {
			t.Error("query not passed on untouched")
		}
	})

	t.Run("forged return_url with forged headers is refused", func(t *testing.T) {
		forged := testkit.EncodeForm(testkit.Set(testkit.Signed(t, testkit.Key(t, "alipay"), returnParams, false), "total_amount", "0.01"))
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
		body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false))
		status, answer, _ := testkit.Post(t, caddyBase+"/legacy/notify.php", body)
		if status != 200 || answer != "success" {
			t.Fatalf("answer %d %q", status, answer)
		}
		got := take()
		if len(got) != 1 || string(got[0].Body) != body || got[0].Header.Get("Alipay-Trade-Status") != "TRADE_SUCCESS" {
			t.Fatalf("upstream got %+v", got)
		}
		forged := testkit.EncodeForm(testkit.Set(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false), "total_amount", "9.99"))
		if status, answer, _ := testkit.Post(t, caddyBase+"/legacy/notify.php", forged); status != 403 || answer != "fail" {
			t.Fatalf("forged POST: %d %q", status, answer)
		}
		if got := take(); len(got) != 0 {
			t.Fatal("forged POST reached the upstream")
		}
	})

	t.Run("metrics count what the gate did", func(t *testing.T) {
		m := scrapeMetrics(t)
		const name = "caddy_alipay_verify_requests_total"
		for outcome, want := range map[string]float64{"verified": 2, "bad_signature": 2, "bad_request": 1, "stale": 0, "too_large": 0} {
			if got := sumOverApps(m, name, outcome); got != want {
				t.Errorf("%s{outcome=%q} = %v, want %v", name, outcome, got, want)
			}
		}
		if got := m[name+`{app_id="`+testkit.AppID+`",outcome="verified"}`]; got != 2 {
			t.Errorf("verified for app %s: %v, want 2", testkit.AppID, got)
		}
		if _, ok := m[name+`{app_id="other",outcome="app_refused"}`]; !ok {
			t.Error("the series are not created at zero for app_id other")
		}
		if got := notificationsTotal(m, "forwarded"); got != 0 {
			t.Errorf("the gate counted in alipay_notify's metric: %v", got)
		}
	})
}

func TestSeveralAppsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
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
	}`, appA, testkit.PublicKeyLine(t, "alipay"), appB, testkit.Testdata("keys", "alipay2.pub.pem"),
		appC, testkit.PublicKeyLine(t, "app"), upstream.URL, testkit.Secret))
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
			body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, tc.key), testkit.TradeParams(tc.app, now), false))
			if status, _, _ := testkit.Post(t, caddyBase+"/notify", body); status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if got := upstream.Take(); (len(got) == 1) != (tc.status == 200) {
				t.Fatalf("%d webhooks", len(got))
			}
		})
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
func sm2Signed(t *testing.T, priv *sm2.PrivateKey, params []testkit.KV) []testkit.KV {
	t.Helper()
	params = testkit.Set(params, "sign_type", "SM2")
	sig, err := priv.SignWithSM2(rand.Reader, nil, []byte(testkit.AlipayString(params, false)))
	if err != nil {
		t.Fatal(err)
	}
	return append(params, testkit.KV{"sign", base64.StdEncoding.EncodeToString(sig)})
}

func TestSM2ThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
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
	}`, testkit.AppID, testkit.PublicKeyLine(t, "alipay"), pubPath, upstream.URL, testkit.Secret, testkit.AppID, certPath, upstream.URL, testkit.Secret))
	now := time.Now()
	for _, path := range []string{"/notify", "/cert"} {
		good := sm2Signed(t, priv, testkit.TradeParams(testkit.AppID, now))
		if status, answer, _ := testkit.Post(t, caddyBase+path, testkit.EncodeForm(good)); status != 200 || answer != "success" {
			t.Fatalf("%s: SM2 notification: %d %q", path, status, answer)
		}
		if got := upstream.Take(); len(got) != 1 || got[0].Event.Data["sign_type"] != "SM2" {
			t.Fatalf("%s: webhooks %+v", path, got)
		}
		if status, _, _ := testkit.Post(t, caddyBase+path, testkit.EncodeForm(testkit.Set(good, "total_amount", "1.00"))); status != 403 {
			t.Fatalf("%s: tampered SM2 notification: status %d", path, status)
		}
		// An RSA signature relabelled SM2 must not pass, nor the reverse.
		rsaSigned := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, now), false)
		if status, _, _ := testkit.Post(t, caddyBase+path, testkit.EncodeForm(testkit.Set(rsaSigned, "sign_type", "SM2"))); status != 403 {
			t.Fatalf("%s: RSA signature as SM2: status %d", path, status)
		}
		if status, _, _ := testkit.Post(t, caddyBase+path, testkit.EncodeForm(testkit.Set(good, "sign_type", "RSA2"))); status != 403 {
			t.Fatalf("%s: SM2 signature as RSA2: status %d", path, status)
		}
		if got := upstream.Take(); len(got) != 0 {
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
