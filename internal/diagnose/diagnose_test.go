package diagnose_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/diagnose"
	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// The notifications below are signed by testkit's independent signer and
// damaged the way each cause damages them.

func ring(t *testing.T, names ...string) *alipay.KeyRing {
	t.Helper()
	r := new(alipay.KeyRing)
	for _, name := range names {
		key, err := alipay.ParsePublicKey(tk.PublicKeyLine(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Add(name+" key", key); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func gbk(t *testing.T, s string) string {
	t.Helper()
	out, err := simplifiedchinese.GBK.NewEncoder().String(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withPlusInSign signs params until the signature holds a '+'.
func withPlusInSign(t *testing.T, params []tk.KV) []tk.KV {
	t.Helper()
	for i := 0; ; i++ {
		signed := tk.Signed(t, tk.Key(t, "alipay"), tk.Set(params, "notify_id", fmt.Sprint("diag-", i)), false)
		if strings.Contains(tk.Get(signed, "sign"), "+") {
			return signed
		}
	}
}

func TestCheck(t *testing.T) {
	now := time.Now()
	key := tk.Key(t, "alipay")
	trade := tk.TradeParams(tk.AppID, now)
	v1 := tk.Signed(t, key, trade, false)
	v2 := tk.Signed(t, key, trade, true)
	legacy := tk.MD5Signed(tk.LegacyParams("md5-1", "TRADE_SUCCESS", now), tk.MD5Key)
	gbkParams := tk.Signed(t, key, tk.Set(tk.Set(trade, "charset", "gbk"), "subject", gbk(t, "测试商品")), false)
	// A legacy notification in GBK, which names no charset.
	gbkLegacy := tk.MD5Signed(tk.Set(tk.LegacyParams("md5-2", "TRADE_SUCCESS", now), "subject", gbk(t, "白色杯子")), tk.MD5Key)
	for _, tc := range []struct {
		name      string
		body      string
		ring      *alipay.KeyRing
		md5       alipay.MD5Key
		verified  bool
		malformed bool
		md5Used   bool
		rule      alipay.Rule
		err       error // the sentinel
		reason    string
		signed    string // the signed string, when not empty
		params    int    // -1: nil
	}{
		{name: "V1", body: tk.EncodeForm(v1), ring: ring(t, "alipay2", "alipay"), verified: true, rule: alipay.RuleV1, signed: tk.AlipayString(v1, false), params: len(v1)},
		{name: "V2", body: tk.EncodeForm(v2), ring: ring(t, "alipay"), verified: true, rule: alipay.RuleV2, signed: tk.AlipayString(v2, true), params: len(v2)},
		{name: "GBK", body: tk.EncodeForm(gbkParams), ring: ring(t, "alipay"), verified: true, rule: alipay.RuleV1, signed: tk.AlipayString(gbkParams, false), params: len(gbkParams)},
		{name: "blank values kept in Params", body: tk.EncodeForm(tk.Signed(t, key, tk.Set(trade, "body", " "), false)), ring: ring(t, "alipay"), verified: true, rule: alipay.RuleV1, params: len(v1) + 1},
		{name: "MD5", body: tk.EncodeForm(legacy), md5: alipay.MD5Key(tk.MD5Key), verified: true, md5Used: true, rule: alipay.RuleV1, signed: tk.AlipayString(legacy, false), params: len(legacy)},
		{name: "MD5, wrong key", body: tk.EncodeForm(legacy), md5: alipay.MD5Key("another"), md5Used: true, err: alipay.ErrSignatureMismatch, reason: "MD5 signature does not verify with md5_key", params: len(legacy)},
		{name: "MD5 without an MD5 key", body: tk.EncodeForm(legacy), ring: ring(t, "alipay"), malformed: true, err: alipay.ErrSignType, reason: `unsupported sign_type "MD5"`, params: len(legacy)},
		{name: "RSA2 with an MD5 key given", body: tk.EncodeForm(v1), md5: alipay.MD5Key("x"), err: alipay.ErrSignatureMismatch, reason: "signature does not verify with any configured key", params: len(v1)},
		{name: "MD5 in GBK without a charset", body: tk.EncodeForm(gbkLegacy), md5: alipay.MD5Key(tk.MD5Key), malformed: true, err: alipay.ErrCharset,
			reason: "names no charset (legacy mapi notifications, which name none, are GBK unless the payment request's _input_charset said utf-8: the default charset must then be gbk); read as GBK, it verifies with md5_key: a legacy notification in GBK, which the plugin reads with default_charset gbk", params: len(gbkLegacy)},
		{name: "wrong key", body: tk.EncodeForm(v1), ring: ring(t, "app"), err: alipay.ErrSignatureMismatch, reason: "signature does not verify with any configured key", signed: tk.AlipayString(v1, false), params: len(v1)},
		{name: "no sign", body: "app_id=1&charset=utf-8", ring: ring(t, "alipay"), malformed: true, err: alipay.ErrNoSign, reason: "no sign parameter", params: 2},
		{name: "unparseable", body: "a=%zz", ring: ring(t, "alipay"), malformed: true, err: alipay.ErrEncoding, reason: `malformed notification: parameter "a": malformed percent-escape "%zz"`, params: -1},
		{name: "empty", body: "", malformed: true, err: alipay.ErrEmptyBody, reason: "malformed notification: empty body", params: -1},
		{name: "charset", body: "charset=latin1&body=&sign=x", ring: ring(t, "alipay"), malformed: true, err: alipay.ErrCharset, reason: `malformed notification: unsupported charset "latin1"`, signed: "charset=latin1", params: 3},
		{name: "folded", body: tk.EncodeForm(tk.Signed(t, key, tk.Fold(t, trade, "notify_id", "notify_time"), false)), ring: ring(t, "alipay"), malformed: true, err: alipay.ErrAmbiguous, reason: "a value embeds another parameter", params: len(v1) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := diagnose.Check(tc.ring, tc.md5, []byte(tc.body))
			if v.Verified() != tc.verified || v.Malformed() != tc.malformed || v.MD5 != tc.md5Used {
				t.Fatalf("verified %v malformed %v md5 %v (%v), want %v %v %v", v.Verified(), v.Malformed(), v.MD5, v.Err, tc.verified, tc.malformed, tc.md5Used)
			}
			if tc.verified {
				if v.Match.Rule != tc.rule || v.Notification == nil {
					t.Errorf("match %+v", v.Match)
				}
			} else {
				if !errors.Is(v.Err, tc.err) {
					t.Errorf("error %v, want %v", v.Err, tc.err)
				}
				if !strings.Contains(v.Err.Error(), tc.reason) {
					t.Errorf("reason %q, want %q", v.Err, tc.reason)
				}
			}
			if tc.signed != "" && string(v.SignedString) != tc.signed {
				t.Errorf("signed string\n got %s\nwant %s", v.SignedString, tc.signed)
			}
			if tc.params < 0 {
				if v.Params != nil || v.SignedString != nil {
					t.Errorf("params %v, signed string %q: want nil", v.Params, v.SignedString)
				}
			} else if len(v.Params) != tc.params {
				t.Errorf("%d params, want %d", len(v.Params), tc.params)
			}
		})
	}
}

func TestDiagnose(t *testing.T) {
	now := time.Now()
	key := tk.Key(t, "alipay")
	alipayRing := ring(t, "alipay")
	trade := tk.TradeParams(tk.AppID, now)
	plus := withPlusInSign(t, tk.Set(trade, "passback_params", "a+b=c"))
	body := tk.EncodeForm(plus)

	sha1Signed := append(append([]tk.KV(nil), trade...), tk.KV{K: "sign", V: tk.RSASign(t, key, "RSA", tk.AlipayString(trade, false))})
	rsa := tk.Set(trade, "sign_type", "RSA")
	sha256Signed := append(append([]tk.KV(nil), rsa...), tk.KV{K: "sign", V: tk.RSASign(t, key, "RSA2", tk.AlipayString(rsa, false))})
	noSignType := tk.Signed(t, key, tk.Without(trade, "sign_type"), false)

	// GBK bytes signed, then re-encoded as UTF-8 by a proxy.
	gbkSigned := tk.Signed(t, key, tk.Set(tk.Set(trade, "charset", "gbk"), "subject", gbk(t, "测试商品")), false)
	reencoded := tk.Set(gbkSigned, "subject", "测试商品")
	// UTF-8 bytes signed with charset=gbk, then converted to GBK.
	utf8Signed := tk.Signed(t, key, tk.Set(trade, "charset", "gbk"), false)
	toGBK := tk.Set(utf8Signed, "subject", gbk(t, tk.Get(utf8Signed, "subject")))
	// Valid signature, but the bytes are not UTF-8 as charset says.
	badBytes := tk.Signed(t, key, tk.Set(trade, "subject", "\xff\xfe"), false)
	// A blank parameter Alipay left out of the signed string.
	withBlank := tk.Signed(t, key, tk.Set(trade, "body", "  "), false)

	appSigned := tk.Signed(t, tk.Key(t, "app"), trade, false)
	legacy := tk.MD5Signed(tk.LegacyParams("md5-1", "TRADE_SUCCESS", now), tk.MD5Key)

	for _, tc := range []struct {
		name      string
		body      string
		ring      *alipay.KeyRing
		appRing   *alipay.KeyRing
		cause     string
		repaired  []tk.KV // the parameters whose signed string the repair shows
		v2        bool
		signType  string
		gbk       bool
		noRepair  bool
		explained string
	}{
		{name: "RSA vs RSA2: SHA1 signed, says RSA2", body: tk.EncodeForm(sha1Signed), cause: "RSA vs RSA2: signed with SHA1withRSA (sign_type RSA), but it says sign_type=RSA2", repaired: trade, signType: "RSA"},
		{name: "RSA vs RSA2: SHA256 signed, says RSA", body: tk.EncodeForm(sha256Signed), cause: "RSA vs RSA2: signed with SHA256withRSA (sign_type RSA2), but it says sign_type=RSA", repaired: rsa, signType: "RSA2"},
		{name: "no sign_type", body: tk.EncodeForm(noSignType), cause: "there is no sign_type, but the signature verifies with SHA256withRSA (sign_type RSA2)", repaired: noSignType, signType: "RSA2"},
		{name: "unknown sign_type", body: tk.EncodeForm(tk.Set(noSignType, "sign_type", "XYZ")), cause: `sign_type is "XYZ", but the signature verifies with SHA256withRSA (sign_type RSA2)`, repaired: noSignType, signType: "RSA2"},
		{name: "HTML escape", body: strings.ReplaceAll(body, "%22", "%26quot%3B"), cause: "HTML-escaped values: fund_bill_list hold &quot;", repaired: plus, signType: "RSA2"},
		{name: "HTML escape, and forged", body: strings.Replace(strings.ReplaceAll(body, "%22", "%26quot%3B"), "total_amount=0.10", "total_amount=9.10", 1), cause: "no repair makes it verify", noRepair: true},
		{name: "HTML escape beside a blank value", body: strings.ReplaceAll(tk.EncodeForm(withBlank), "%22", "%26quot%3B"), cause: "HTML-escaped values: fund_bill_list", repaired: withBlank, signType: "RSA2"},
		{name: "plus in sign and a value", body: strings.ReplaceAll(body, "%2B", "+"), cause: "'+' turned into a space in sign, passback_params", repaired: plus, signType: "RSA2"},
		{name: "plus in a value only", body: tk.EncodeForm(tk.Set(plus, "passback_params", "a b=c")), cause: "'+' turned into a space in passback_params", repaired: plus, signType: "RSA2"},
		{name: "spaces that are not a plus", body: strings.Replace(tk.EncodeForm(tk.Set(plus, "passback_params", "a b=c")), "total_amount=0.10", "total_amount=9.10", 1), cause: "no repair makes it verify"},
		{name: "GBK signed, UTF-8 here", body: tk.EncodeForm(reencoded), cause: "wrong charset: Alipay signed the GBK bytes of these values, but they are UTF-8 here (charset gbk)", repaired: gbkSigned, signType: "RSA2", gbk: true},
		{name: "UTF-8 signed, GBK here", body: tk.EncodeForm(toGBK), cause: "wrong charset: Alipay signed the UTF-8 bytes of these values, but they are GBK here (charset gbk)", repaired: utf8Signed, signType: "RSA2"},
		{name: "GBK signed, no charset", body: tk.EncodeForm(tk.Without(tk.Set(gbkSigned, "subject", "测试商品"), "charset")), cause: "no repair makes it verify"},
		{name: "charset that does not describe the bytes", body: tk.EncodeForm(badBytes), cause: "wrong charset parameter: the signature verifies over these bytes, but they are not valid utf-8", repaired: badBytes, signType: "RSA2"},
		{name: "charset missing, bytes not UTF-8", body: tk.EncodeForm(tk.Signed(t, key, tk.Without(tk.Set(trade, "subject", "\xff\xfe"), "charset"), false)), cause: "not valid utf-8 (no charset parameter)", signType: "RSA2", noRepair: false},
		{name: "query mixed in", body: body + "&shop_id=12&from=gateway", cause: "parameters mixed in: it verifies without from, shop_id", repaired: plus, signType: "RSA2"},
		{name: "one unknown parameter", body: body + "&shop_id=12", cause: "parameters mixed in: it verifies without shop_id", repaired: plus, signType: "RSA2"},
		{name: "a known parameter added", body: body + "&body=added", cause: "parameters mixed in: it verifies without body", repaired: plus, signType: "RSA2"},
		{name: "app key given", body: body, ring: ring(t, "app"), appRing: ring(t, "app"), cause: "app key is your app's public key (应用公钥), not Alipay's public key (支付宝公钥)", noRepair: true, explained: alipay.WrongKeyHint},
		{name: "app key given second", body: body, ring: ring(t, "alipay2", "app"), appRing: ring(t, "alipay2"), cause: "alipay2 key is your app's public key", noRepair: true},
		{name: "app key given, not recognised", body: body, ring: ring(t, "app"), cause: "no repair makes it verify", noRepair: true, explained: "About the key: " + alipay.WrongKeyHint},
		{name: "signed with the app key", body: tk.EncodeForm(appSigned), appRing: ring(t, "app"), cause: "signed with your app's private key (app key), not by Alipay", noRepair: true},
		{name: "MD5", body: tk.EncodeForm(legacy), cause: "a legacy MD5 signature (the old mapi gateway)", noRepair: true, explained: "--md5-key"},
		{name: "no sign", body: "app_id=1&charset=utf-8", cause: "there is no sign parameter", noRepair: true},
		{name: "sign not base64", body: "app_id=1&sign=%21%21", cause: "no repair makes it verify", noRepair: true},
		{name: "forged", body: strings.Replace(body, "total_amount=0.10", "total_amount=99.00", 1), cause: "no repair makes it verify: the key is not the one that signed it, or the notification was altered", noRepair: true},
		{name: "no key at all", body: body, ring: new(alipay.KeyRing), cause: "no repair makes it verify", noRepair: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.ring
			if r == nil {
				r = alipayRing
			}
			v := diagnose.Check(r, nil, []byte(tc.body))
			if v.Verified() {
				t.Fatal("the damaged notification verifies")
			}
			f := diagnose.Diagnose(r, tc.appRing, v.Params)
			if !strings.Contains(f.Cause, tc.cause) {
				t.Fatalf("cause %q, want %q", f.Cause, tc.cause)
			}
			if f.Explain == "" || !strings.Contains(f.Explain, tc.explained) {
				t.Errorf("explanation %q lacks %q", f.Explain, tc.explained)
			}
			if tc.noRepair || tc.repaired == nil {
				if tc.noRepair && f.Repair != nil {
					t.Errorf("a repair for %q: %+v", f.Cause, f.Repair)
				}
				return
			}
			if f.Repair == nil {
				t.Fatal("no repair shown")
			}
			if want := tk.AlipayString(tc.repaired, tc.v2); string(f.Repair.SignedString) != want {
				t.Errorf("repaired signed string\n got %s\nwant %s", f.Repair.SignedString, want)
			}
			if f.Repair.SignType != tc.signType || f.Repair.Rule != alipay.RuleV1 || f.Repair.GBK != tc.gbk {
				t.Errorf("repair %+v, want sign type %s, V1, gbk %v", f.Repair, tc.signType, tc.gbk)
			}
			if f.Repair.Key != "alipay key" {
				t.Errorf("repair key %q", f.Repair.Key)
			}
		})
	}
}

// TestDiagnoseV2 repairs a V2 notification: the rule of the repair is V2.
func TestDiagnoseV2(t *testing.T) {
	params := withPlusInSign(t, tk.TradeParams(tk.AppID, time.Now()))
	params = tk.Signed(t, tk.Key(t, "alipay"), tk.Without(params, "sign"), true)
	body := tk.EncodeForm(params) + "&shop_id=1"
	v := diagnose.Check(ring(t, "alipay"), nil, []byte(body))
	f := diagnose.Diagnose(ring(t, "alipay"), nil, v.Params)
	if f.Repair == nil || f.Repair.Rule != alipay.RuleV2 || string(f.Repair.SignedString) != tk.AlipayString(params, true) {
		t.Fatalf("finding %+v", f)
	}
}

// TestDiagnosePlusBounded: with more than ten spaced values, only the
// first ten are tried in every combination, and a nil ring is no key.
func TestDiagnosePlusBounded(t *testing.T) {
	var params []alipay.Param // sorted, as ParseForm returns them
	for i := range 12 {
		params = append(params, alipay.Param{Key: fmt.Sprintf("k%02d", i), Value: "a b"})
	}
	params = append(params, alipay.Param{Key: "sign", Value: "AAAA"})
	if f := diagnose.Diagnose(nil, nil, params); !strings.Contains(f.Cause, "no repair") {
		t.Errorf("cause %q", f.Cause)
	}
}

func TestParams(t *testing.T) {
	params, err := alipay.ParseForm([]byte("charset=GB2312&a=1&b="))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, value string
		has        bool
	}{{"a", "1", true}, {"b", "", true}, {"c", "", false}, {"charset", "GB2312", true}} {
		if got := diagnose.Get(params, tc.key); got != tc.value {
			t.Errorf("Get(%s) = %q", tc.key, got)
		}
		if got := diagnose.Has(params, tc.key); got != tc.has {
			t.Errorf("Has(%s) = %v", tc.key, got)
		}
	}
	if !diagnose.IsGBK(params) || diagnose.IsGBK(nil) {
		t.Error("IsGBK")
	}
}

func TestAlgorithmNames(t *testing.T) {
	for _, tc := range []struct{ signType, hash, algorithm string }{
		{"RSA2", "SHA256", "SHA256withRSA"},
		{"RSA", "SHA1", "SHA1withRSA"},
		{"SM2", "SM3", "SM3withSM2"},
		{"MD5", "", ""},
		{"", "", ""},
	} {
		if got := diagnose.Hash(tc.signType); got != tc.hash {
			t.Errorf("Hash(%q) = %q", tc.signType, got)
		}
		if got := diagnose.Algorithm(tc.signType); got != tc.algorithm {
			t.Errorf("Algorithm(%q) = %q", tc.signType, got)
		}
	}
}
