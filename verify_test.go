package alipaynotify

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/text/encoding/simplifiedchinese"
)

const testAppID = "2021000000000001"

// newTestVerifier provisions a Verifier for testAppID with the named test keys.
func newTestVerifier(t testing.TB, keys ...string) *Verifier {
	t.Helper()
	v := &Verifier{AppIDs: []string{testAppID}}
	for _, k := range keys {
		v.AlipayPublicKeys = append(v.AlipayPublicKeys, testPublicKeyLine(t, k))
	}
	if err := v.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVectors(t *testing.T) {
	for _, vec := range loadVectors(t) {
		t.Run(vec.Name, func(t *testing.T) {
			n, err := newNotification([]byte(vec.Body))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(n.signedContent(vec.Expect.ContentRule)); got != vec.Expect.StringToSign {
				t.Fatalf("signed string\n got %s\nwant %s", got, vec.Expect.StringToSign)
			}
			key, err := parsePublicKey(vec.Key.AlipayPublicKey)
			if err != nil {
				t.Fatal(err)
			}
			m, verr := keyRing{{label: "vector", key: key}}.verify(n)
			if vec.Expect.Verified {
				if verr != nil {
					t.Fatalf("want verified, got %v", verr)
				}
				if m.rule != vec.Expect.ContentRule {
					t.Errorf("rule %s, want %s", m.rule, vec.Expect.ContentRule)
				}
				return
			}
			if verr == nil || verr.status != http.StatusForbidden {
				t.Fatalf("forged vector: want 403, got %v (match %+v)", verr, m)
			}
		})
	}
}

// checkBody runs the whole verification of a body and returns the refusal.
func checkBody(t *testing.T, v *Verifier, body string) (*notification, match, *refusal) {
	t.Helper()
	return v.check(context.Background(), []byte(body))
}

func TestOwnSignedNotifications(t *testing.T) {
	now := time.Now()
	alipay := testKey(t, "alipay")
	base := tradeParams(testAppID, now)
	gbk := func(s string) string {
		out, err := simplifiedchinese.GBK.NewEncoder().String(s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name     string
		params   []kv
		v2       bool
		wantRule string
		// wantText are fields expected in the UTF-8 text after verification.
		wantText map[string]string
	}{
		{name: "RSA2", params: base, wantRule: ruleV1},
		{name: "RSA (SHA-1)", params: set(base, "sign_type", "RSA"), wantRule: ruleV1},
		{name: "V2 signs sign_type", params: set(base, "msg_method", "alipay.fund.trans.order.changed"), v2: true, wantRule: ruleV2},
		{
			name:     "GBK body",
			params:   set(set(base, "charset", "gbk"), "subject", gbk("白色杯子 中文")),
			wantRule: ruleV1,
			wantText: map[string]string{"subject": "白色杯子 中文", "charset": "gbk"},
		},
		{
			name:     "plus, space and %2B",
			params:   set(base, "body", "a+b c%2Bd"),
			wantRule: ruleV1,
			wantText: map[string]string{"body": "a+b c%2Bd"},
		},
		{
			name:     "percent-encoded passback_params stays encoded",
			params:   set(base, "passback_params", "order%3D1%26merchant%3D%E5%95%86"),
			wantRule: ruleV1,
			wantText: map[string]string{"passback_params": "order%3D1%26merchant%3D%E5%95%86"},
		},
		{name: "empty value dropped", params: set(base, "body", ""), wantRule: ruleV1},
		{name: "whitespace-only value dropped", params: set(base, "body", " \t "), wantRule: ruleV1},
		{name: "ideographic space only dropped", params: set(base, "body", "\u3000"), wantRule: ruleV1},
		{
			name:     "untrimmed value signed with its spaces",
			params:   set(base, "subject", "  padded  "),
			wantRule: ruleV1,
			wantText: map[string]string{"subject": "  padded  "},
		},
		{
			name:     "HTML in a value",
			params:   set(base, "body", `<b>"quoted" & 'single'</b>`),
			wantRule: ruleV1,
			wantText: map[string]string{"body": `<b>"quoted" & 'single'</b>`},
		},
	}
	v := newTestVerifier(t, "alipay")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := encodeForm(signed(t, alipay, tc.params, tc.v2))
			n, m, ref := checkBody(t, v, body)
			if ref != nil {
				t.Fatalf("refused: %d %s", ref.status, ref.reason)
			}
			if m.rule != tc.wantRule {
				t.Errorf("rule %s, want %s", m.rule, tc.wantRule)
			}
			for k, want := range tc.wantText {
				if got := n.get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestSignedStringRules(t *testing.T) {
	body := "b=2&a=1&sign=x&sign_type=RSA2&empty=&blank=+%09+&spaced=+x+&nbsp=%C2%A0&plus=%2B&space=+&A=upper"
	n, err := newNotification([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	wantV1 := "A=upper&a=1&b=2&nbsp=\u00a0&plus=+&spaced= x "
	if got := string(n.signedContent(ruleV1)); got != wantV1 {
		t.Errorf("v1\n got %q\nwant %q", got, wantV1)
	}
	wantV2 := "A=upper&a=1&b=2&nbsp=\u00a0&plus=+&sign_type=RSA2&spaced= x "
	if got := string(n.signedContent(ruleV2)); got != wantV2 {
		t.Errorf("v2\n got %q\nwant %q", got, wantV2)
	}
}

func TestKeyRotation(t *testing.T) {
	params := signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false)
	v := newTestVerifier(t, "alipay2", "alipay")
	_, m, ref := checkBody(t, v, encodeForm(params))
	if ref != nil {
		t.Fatalf("refused: %s", ref.reason)
	}
	if m.key != "alipay_public_key #2" {
		t.Errorf("matched %q, want the second key", m.key)
	}
	_, _, ref = checkBody(t, newTestVerifier(t, "alipay2"), encodeForm(params))
	if ref == nil || ref.status != http.StatusForbidden {
		t.Fatalf("signature by a key not configured: want 403, got %+v", ref)
	}
}

func TestWrongKeyHint(t *testing.T) {
	params := signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false)
	_, _, ref := checkBody(t, newTestVerifier(t, "app"), encodeForm(params))
	if ref == nil || ref.status != http.StatusForbidden || ref.outcome != outcomeBadSignature {
		t.Fatalf("want 403 bad_signature, got %+v", ref)
	}
	if !strings.Contains(ref.reason, "not your app's public key") {
		t.Errorf("reason lacks the wrong-key hint: %s", ref.reason)
	}
	if len(ref.fields) == 0 {
		t.Error("no signed string for the DEBUG log")
	}
}

func TestTampering(t *testing.T) {
	now := time.Now()
	good := signed(t, testKey(t, "alipay"), tradeParams(testAppID, now), false)
	v := newTestVerifier(t, "alipay")
	if _, _, ref := checkBody(t, v, encodeForm(good)); ref != nil {
		t.Fatalf("untampered notification refused: %s", ref.reason)
	}

	// Changing, adding, removing or renaming any signed field must fail.
	var cases []struct {
		name string
		body string
	}
	add := func(name string, params []kv) {
		cases = append(cases, struct{ name, body string }{name, encodeForm(params)})
	}
	for _, p := range good {
		if p.k == "sign" || p.k == "sign_type" {
			continue
		}
		add("change "+p.k, set(good, p.k, p.v+"0"))
		add("remove "+p.k, without(good, p.k))
		add("rename "+p.k, append(without(good, p.k), kv{p.k + "_", p.v}))
		add("pad "+p.k, set(good, p.k, " "+p.v))
	}
	add("unsigned extra parameter", append(good, kv{"refund_fee", "0.10"}))
	add("sign_type RSA2 to RSA", set(good, "sign_type", "RSA"))
	sign := good[len(good)-1].v
	add("sign truncated", set(good, "sign", sign[:len(sign)-4]))
	add("sign of another notification", set(good, "sign", rsaSign(t, testKey(t, "alipay"), "RSA2", "total_amount=100.00")))
	add("sign by another key", signed(t, testKey(t, "app"), tradeParams(testAppID, now), false))
	add("value HTML-escaped", set(good, "fund_bill_list", strings.ReplaceAll(`[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]`, `"`, "&quot;")))

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ref := checkBody(t, v, tc.body)
			if ref == nil {
				t.Fatal("tampered notification accepted")
			}
			if ref.status != http.StatusForbidden && ref.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 403 or 400", ref.status)
			}
		})
	}

	// A '+' sent raw decodes to a space: a different value, so no match.
	plus := signed(t, testKey(t, "alipay"), set(tradeParams(testAppID, now), "body", "a+b"), false)
	raw := strings.Replace(encodeForm(plus), "body=a%2Bb", "body=a+b", 1)
	if _, _, ref := checkBody(t, v, raw); ref == nil || ref.status != http.StatusForbidden {
		t.Fatalf("'+' decoded as space must not verify, got %+v", ref)
	}
}

func TestMalformedRequests(t *testing.T) {
	good := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false))
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
	mt := signed(t, testKey(t, "alipay"), set(tradeParams(testAppID, time.Now()), "notify_time", "yesterday"), false)
	tests["malformed notify_time"] = encodeForm(mt)
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, ref := checkBody(t, v, body)
			if ref == nil || ref.status != http.StatusBadRequest {
				t.Fatalf("want 400, got %+v", ref)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	now := time.Now()
	alipay := testKey(t, "alipay")
	v := newTestVerifier(t, "alipay")
	v.SellerIDs = []string{"2088531891668739"}
	tests := []struct {
		name    string
		params  []kv
		status  int
		outcome string
	}{
		{"allowed", tradeParams(testAppID, now), 0, ""},
		{"other app", tradeParams("2021000000000999", now), http.StatusForbidden, outcomeAppRefused},
		{"no app_id", without(tradeParams(testAppID, now), "app_id"), http.StatusForbidden, outcomeAppRefused},
		{"other seller", set(tradeParams(testAppID, now), "seller_id", "2088000000000000"), http.StatusForbidden, outcomeSellerRefused},
		{"no seller_id passes", without(tradeParams(testAppID, now), "seller_id"), 0, ""},
		{"stale", tradeParams(testAppID, now.Add(-73*time.Hour)), http.StatusForbidden, outcomeStale},
		{"just in time", tradeParams(testAppID, now.Add(-71*time.Hour)), 0, ""},
		{"no notify_time passes", without(tradeParams(testAppID, now), "notify_time"), 0, ""},
		{"stale utc_timestamp", set(without(tradeParams(testAppID, now), "notify_time"), "utc_timestamp",
			strconv.FormatInt(now.Add(-80*time.Hour).UnixMilli(), 10)), http.StatusForbidden, outcomeStale},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ref := checkBody(t, v, encodeForm(signed(t, alipay, tc.params, false)))
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
	old := signed(t, alipay, tradeParams(testAppID, now.Add(-1000*time.Hour)), false)
	if _, _, ref := checkBody(t, off, encodeForm(old)); ref != nil {
		t.Fatalf("max_age off refused an old notification: %s", ref.reason)
	}
}

func TestKeysAPI(t *testing.T) {
	for _, vec := range loadVectors(t) {
		keys, err := NewKeys(vec.Key.AlipayPublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.Verify([]byte(vec.Body)); (err == nil) != vec.Expect.Verified {
			t.Errorf("%s: verified %v, want %v (%v)", vec.Name, err == nil, vec.Expect.Verified, err)
		}
	}
	if _, err := NewKeys("not a key"); err == nil {
		t.Error("NewKeys accepted garbage")
	}
}

// TestSM2VectorFromOpenSSL checks an SM2 signature made by OpenSSL, an
// implementation independent of the one the plugin uses.
func TestSM2VectorFromOpenSSL(t *testing.T) {
	vec := loadVector(t, filepath.Join("testdata", "vectors", "sm2-openssl.json"))
	n, err := newNotification([]byte(vec.Body))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(n.signedContent(ruleV1)); got != vec.Expect.StringToSign {
		t.Fatalf("signed string %q", got)
	}
	keys, err := NewKeys(vec.Key.AlipayPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Verify([]byte(vec.Body)); err != nil {
		t.Fatalf("OpenSSL's SM2 signature does not verify: %v", err)
	}
	tampered := strings.Replace(vec.Body, "total_amount=8.88", "total_amount=9.88", 1)
	if err := keys.Verify([]byte(tampered)); err == nil {
		t.Fatal("tampered SM2 notification verifies")
	}
}
