package alipaynotify

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"go.uber.org/zap"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// newTestVerifier provisions a Verifier for testkit.AppID with the named test keys.
func newTestVerifier(t testing.TB, keys ...string) *Verifier {
	t.Helper()
	v := &Verifier{AppIDs: []string{testkit.AppID}}
	for _, k := range keys {
		v.AlipayPublicKeys = append(v.AlipayPublicKeys, testkit.PublicKeyLine(t, k))
	}
	if err := v.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkBody runs the whole verification of a body and returns the refusal.
func checkBody(t *testing.T, v *Verifier, body string) (verified, *refusal) {
	t.Helper()
	return v.check(context.Background(), []byte(body))
}

func TestOwnSignedNotifications(t *testing.T) {
	now := time.Now()
	alipayKey := testkit.Key(t, "alipay")
	base := testkit.TradeParams(testkit.AppID, now)
	gbk := func(s string) string {
		out, err := simplifiedchinese.GBK.NewEncoder().String(s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name     string
		params   []testkit.KV
		v2       bool
		wantRule alipay.Rule
		// wantText are fields expected in the UTF-8 text after verification.
		wantText map[string]string
	}{
		{name: "RSA2", params: base, wantRule: alipay.RuleV1},
		{name: "RSA (SHA-1)", params: testkit.Set(base, "sign_type", "RSA"), wantRule: alipay.RuleV1},
		{name: "V2 signs sign_type", params: testkit.Set(base, "msg_method", "alipay.fund.trans.order.changed"), v2: true, wantRule: alipay.RuleV2},
		{
			name:     "GBK body",
			params:   testkit.Set(testkit.Set(base, "charset", "gbk"), "subject", gbk("白色杯子 中文")),
			wantRule: alipay.RuleV1,
			wantText: map[string]string{"subject": "白色杯子 中文", "charset": "gbk"},
		},
		{
			name:     "plus, space and %2B",
			params:   testkit.Set(base, "body", "a+b c%2Bd"),
			wantRule: alipay.RuleV1,
			wantText: map[string]string{"body": "a+b c%2Bd"},
		},
		{
			name:     "percent-encoded passback_params stays encoded",
			params:   testkit.Set(base, "passback_params", "order%3D1%26merchant%3D%E5%95%86"),
			wantRule: alipay.RuleV1,
			wantText: map[string]string{"passback_params": "order%3D1%26merchant%3D%E5%95%86"},
		},
		{name: "empty value dropped", params: testkit.Set(base, "body", ""), wantRule: alipay.RuleV1},
		{name: "whitespace-only value dropped", params: testkit.Set(base, "body", " \t "), wantRule: alipay.RuleV1},
		{name: "ideographic space only dropped", params: testkit.Set(base, "body", "\u3000"), wantRule: alipay.RuleV1},
		{
			name:     "untrimmed value signed with its spaces",
			params:   testkit.Set(base, "subject", "  padded  "),
			wantRule: alipay.RuleV1,
			wantText: map[string]string{"subject": "  padded  "},
		},
		{
			name:     "HTML in a value",
			params:   testkit.Set(base, "body", `<b>"quoted" & 'single'</b>`),
			wantRule: alipay.RuleV1,
			wantText: map[string]string{"body": `<b>"quoted" & 'single'</b>`},
		},
	}
	v := newTestVerifier(t, "alipay")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := testkit.EncodeForm(testkit.Signed(t, alipayKey, tc.params, tc.v2))
			res, ref := checkBody(t, v, body)
			if ref != nil {
				t.Fatalf("refused: %d %s", ref.status, ref.reason)
			}
			if res.match.Rule != tc.wantRule {
				t.Errorf("rule %s, want %s", res.match.Rule, tc.wantRule)
			}
			for k, want := range tc.wantText {
				if got := res.n.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	params := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false)
	v := newTestVerifier(t, "alipay2", "alipay")
	res, ref := checkBody(t, v, testkit.EncodeForm(params))
	if ref != nil {
		t.Fatalf("refused: %s", ref.reason)
	}
	if res.match.Key != "alipay_public_key #2" {
		t.Errorf("matched %q, want the second key", res.match.Key)
	}
	_, ref = checkBody(t, newTestVerifier(t, "alipay2"), testkit.EncodeForm(params))
	if ref == nil || ref.status != http.StatusForbidden {
		t.Fatalf("signature by a key not configured: want 403, got %+v", ref)
	}
}

func TestWrongKeyHint(t *testing.T) {
	params := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false)
	_, ref := checkBody(t, newTestVerifier(t, "app"), testkit.EncodeForm(params))
	if ref == nil || ref.status != http.StatusForbidden || ref.outcome != outcomeBadSignature {
		t.Fatalf("want 403 bad_signature, got %+v", ref)
	}
	if !strings.Contains(ref.reason, "not your app's public key") {
		t.Errorf("reason lacks the wrong-key hint: %s", ref.reason)
	}
	if ref.signed == nil || !strings.Contains(string(ref.signed.signedContent()), "app_id="+testkit.AppID) {
		t.Error("no signed string for the DEBUG log")
	}
}

func TestTampering(t *testing.T) {
	now := time.Now()
	good := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, now), false)
	v := newTestVerifier(t, "alipay")
	if _, ref := checkBody(t, v, testkit.EncodeForm(good)); ref != nil {
		t.Fatalf("untampered notification refused: %s", ref.reason)
	}

	// Changing, adding, removing or renaming any signed field must fail.
	var cases []struct {
		name string
		body string
	}
	add := func(name string, params []testkit.KV) {
		cases = append(cases, struct{ name, body string }{name, testkit.EncodeForm(params)})
	}
	for _, p := range good {
		if p.K == "sign" || p.K == "sign_type" {
			continue
		}
		add("change "+p.K, testkit.Set(good, p.K, p.V+"0"))
		add("remove "+p.K, testkit.Without(good, p.K))
		add("rename "+p.K, append(testkit.Without(good, p.K), testkit.KV{p.K + "_", p.V}))
		add("pad "+p.K, testkit.Set(good, p.K, " "+p.V))
	}
	add("unsigned extra parameter", append(good, testkit.KV{"refund_fee", "0.10"}))
	add("sign_type RSA2 to RSA", testkit.Set(good, "sign_type", "RSA"))
	sign := good[len(good)-1].V
	add("sign truncated", testkit.Set(good, "sign", sign[:len(sign)-4]))
	add("sign of another notification", testkit.Set(good, "sign", testkit.RSASign(t, testkit.Key(t, "alipay"), "RSA2", "total_amount=100.00")))
	add("sign by another key", testkit.Signed(t, testkit.Key(t, "app"), testkit.TradeParams(testkit.AppID, now), false))
	add("value HTML-escaped", testkit.Set(good, "fund_bill_list", strings.ReplaceAll(`[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]`, `"`, "&quot;")))

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ref := checkBody(t, v, tc.body)
			if ref == nil {
				t.Fatal("tampered notification accepted")
			}
			if ref.status != http.StatusForbidden && ref.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 403 or 400", ref.status)
			}
		})
	}

	// A '+' sent raw decodes to a space: a different value, so no match.
	plus := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.Set(testkit.TradeParams(testkit.AppID, now), "body", "a+b"), false)
	raw := strings.Replace(testkit.EncodeForm(plus), "body=a%2Bb", "body=a+b", 1)
	if _, ref := checkBody(t, v, raw); ref == nil || ref.status != http.StatusForbidden {
		t.Fatalf("'+' decoded as space must not verify, got %+v", ref)
	}
}

func TestMalformedRequests(t *testing.T) {
	good := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false))
	v := newTestVerifier(t, "alipay")
	tests := map[string]string{
		"empty body":            "",
		"only separators":       "&&&",
		"duplicated key":        good + "&total_amount=0.10",
		"duplicated sign":       good + "&sign=abc",
		"no sign":               strings.Split(good, "&sign=")[0],
		"unknown sign_type":     strings.Replace(good, "sign_type=RSA2", "sign_type=HMAC", 1),
		"no sign_type":          strings.Replace(good, "sign_type=RSA2&", "", 1),
		"sign not base64":       good + "x!",
		"sign with spaces":      strings.Replace(good, "&sign=", "&sign=ab+cd", 1),
		"bad percent escape":    good + "&x=%zz",
		"truncated escape":      good + "&x=%4",
		"empty parameter name":  good + "&=1",
		"invalid UTF-8":         good + "&x=%ff%fe",
		"invalid GBK":           strings.Replace(good, "charset=utf-8", "charset=gbk", 1) + "&x=%81%20",
		"unknown charset":       strings.Replace(good, "charset=utf-8", "charset=latin1", 1),
		"malformed notify_time": "",
	}
	mt := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.Set(testkit.TradeParams(testkit.AppID, time.Now()), "notify_time", "yesterday"), false)
	tests["malformed notify_time"] = testkit.EncodeForm(mt)
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, ref := checkBody(t, v, body)
			if ref == nil || ref.status != http.StatusBadRequest {
				t.Fatalf("want 400, got %+v", ref)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	now := time.Now()
	alipayKey := testkit.Key(t, "alipay")
	v := newTestVerifier(t, "alipay")
	v.SellerIDs = []string{"2088531891668739"}
	tests := []struct {
		name    string
		params  []testkit.KV
		status  int
		outcome string
	}{
		{"allowed", testkit.TradeParams(testkit.AppID, now), 0, ""},
		{"other app", testkit.TradeParams("2021000000000999", now), http.StatusForbidden, outcomeAppRefused},
		{"no app_id", testkit.Without(testkit.TradeParams(testkit.AppID, now), "app_id"), http.StatusForbidden, outcomeAppRefused},
		{"other seller", testkit.Set(testkit.TradeParams(testkit.AppID, now), "seller_id", "2088000000000000"), http.StatusForbidden, outcomeSellerRefused},
		{"no seller_id passes", testkit.Without(testkit.TradeParams(testkit.AppID, now), "seller_id"), 0, ""},
		{"stale", testkit.TradeParams(testkit.AppID, now.Add(-73*time.Hour)), http.StatusForbidden, outcomeStale},
		{"just in time", testkit.TradeParams(testkit.AppID, now.Add(-71*time.Hour)), 0, ""},
		{"no notify_time passes", testkit.Without(testkit.TradeParams(testkit.AppID, now), "notify_time"), 0, ""},
		{"stale utc_timestamp", testkit.Set(testkit.Without(testkit.TradeParams(testkit.AppID, now), "notify_time"), "utc_timestamp",
			strconv.FormatInt(now.Add(-80*time.Hour).UnixMilli(), 10)), http.StatusForbidden, outcomeStale},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ref := checkBody(t, v, testkit.EncodeForm(testkit.Signed(t, alipayKey, tc.params, false)))
			switch {
			case tc.status == 0 && ref != nil:
				t.Fatalf("refused: %s", ref.reason)
			case tc.status != 0 && (ref == nil || ref.status != tc.status || ref.outcome != tc.outcome):
				t.Fatalf("want %d %s, got %+v", tc.status, tc.outcome, ref)
			}
		})
	}

	off := newTestVerifier(t, "alipay")
	off.maxAge = 0 // max_age off
	old := testkit.Signed(t, alipayKey, testkit.TradeParams(testkit.AppID, now.Add(-1000*time.Hour)), false)
	if _, ref := checkBody(t, off, testkit.EncodeForm(old)); ref != nil {
		t.Fatalf("max_age off refused an old notification: %s", ref.reason)
	}
}
