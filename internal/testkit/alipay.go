// Package testkit holds what the tests of every layer share: an Alipay
// signer written independently of the plugin's (plain sort and join, so
// that a bug in the plugin's signed-string builder cannot be mirrored here
// and cancel out), the test keys and real vectors of testdata/, a recording
// upstream that checks every webhook with the official Standard Webhooks
// library, and helpers to build and run the Caddy binary.
package testkit

import (
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test configuration's constants.
const (
	// AppID is the app the test keys serve.
	AppID = "2021000000000001"
	// Secret is the Standard Webhooks secret of the test upstreams.
	Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	// Partner and MD5Key sign legacy mapi notifications.
	Partner = "2088012362182973"
	MD5Key  = "ma5ujpv6v2h6wt0ax6o4f3i0ypnwhjko"
	// Seller is the seller_id of TradeParams.
	Seller = "2088531891668739"
)

// ContentType is the Content-Type Alipay really sends: malformed, on
// purpose here.
const ContentType = "application/x-www-form-urlencoded; text/html; charset=UTF-8"

// Beijing and TimeLayout are Alipay's zone and timestamp layout.
var Beijing = time.FixedZone("CST", 8*60*60)

const TimeLayout = "2006-01-02 15:04:05"

// Now is the current time in Beijing, as Alipay's timestamps read.
func Now() time.Time { return time.Now().In(Beijing) }

// Root returns the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Testdata returns the absolute path of a file under testdata/.
func Testdata(parts ...string) string {
	return filepath.Join(append([]string{Root(), "testdata"}, parts...)...)
}

// KV is one notification parameter, as raw bytes in the body's charset.
// An alias of an unnamed struct, so that tests in other packages can write
// KV{"k", "v"} (go vet flags unkeyed literals of other packages' named
// struct types).
type KV = struct{ K, V string }

var (
	keyCache   = map[string]*rsa.PrivateKey{}
	keyCacheMu sync.Mutex
)

// Key loads testdata/keys/<name>.key.pem: "alipay" and "alipay2" play
// Alipay, "app" is a merchant app's own key (the wrong one to configure).
func Key(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	if k, ok := keyCache[name]; ok {
		return k
	}
	data, err := os.ReadFile(Testdata("keys", name+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	keyCache[name] = k.(*rsa.PrivateKey)
	return keyCache[name]
}

// PublicKeyLine is the one-line base64 form of a test key, as Alipay's
// console shows it.
func PublicKeyLine(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(Testdata("keys", name+".pub.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// AlipayString builds the string Alipay signs: parameters sorted by key,
// blank values and sign left out, sign_type left out unless v2.
func AlipayString(params []KV, v2 bool) string {
	var kept []KV
	for _, p := range params {
		if p.K == "sign" || (p.K == "sign_type" && !v2) || strings.TrimSpace(p.V) == "" {
			continue
		}
		kept = append(kept, p)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].K < kept[j].K })
	parts := make([]string, len(kept))
	for i, p := range kept {
		parts[i] = p.K + "=" + p.V
	}
	return strings.Join(parts, "&")
}

// RSASign signs content the way Alipay does for sign_type (RSA: SHA-1,
// anything else SHA-256).
func RSASign(t testing.TB, key *rsa.PrivateKey, signType, content string) string {
	t.Helper()
	var digest []byte
	hash := crypto.SHA256
	if signType == "RSA" {
		hash = crypto.SHA1
		sum := sha1.Sum([]byte(content))
		digest = sum[:]
	} else {
		sum := sha256.Sum256([]byte(content))
		digest = sum[:]
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, hash, digest)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// EncodeForm encodes params as Alipay posts them: '+' for spaces, %XX for
// the rest, in the given order.
func EncodeForm(params []KV) string {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.K))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.V))
	}
	return b.String()
}

// Signed returns params with sign appended, signed by key under the
// sign_type the params carry (RSA2 when none).
func Signed(t testing.TB, key *rsa.PrivateKey, params []KV, v2 bool) []KV {
	t.Helper()
	signType := "RSA2"
	for _, p := range params {
		if p.K == "sign_type" {
			signType = p.V
		}
	}
	sign := RSASign(t, key, signType, AlipayString(params, v2))
	return append(append([]KV(nil), params...), KV{"sign", sign})
}

// MD5Signed signs params the legacy way: md5_hex(signed string + key).
func MD5Signed(params []KV, key string) []KV {
	sum := md5.Sum([]byte(AlipayString(params, false) + key))
	return append(append([]KV(nil), params...), KV{"sign", hex.EncodeToString(sum[:])})
}

// TradeParams is a typical trade notification, sent at now.
func TradeParams(appID string, now time.Time) []KV {
	return []KV{
		{"gmt_create", now.In(Beijing).Add(-5 * time.Second).Format(TimeLayout)},
		{"charset", "utf-8"},
		{"seller_email", "shop@example.com"},
		{"subject", "测试商品 500人规模"},
		{"buyer_id", "2088102534368455"},
		{"invoice_amount", "0.10"},
		{"notify_id", "2019081500222155624068450559358070"},
		{"fund_bill_list", `[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]`},
		{"notify_type", "trade_status_sync"},
		{"trade_status", "TRADE_SUCCESS"},
		{"receipt_amount", "0.10"},
		{"sign_type", "RSA2"},
		{"app_id", appID},
		{"seller_id", Seller},
		{"notify_time", now.In(Beijing).Format(TimeLayout)},
		{"version", "1.0"},
		{"out_trade_no", "20190815155618536-564-57"},
		{"total_amount", "0.10"},
		{"trade_no", "2019081522001468450512505578"},
	}
}

// LegacyParams is a mapi trade notification like those in seed 000.
func LegacyParams(notifyID, status string, now time.Time) []KV {
	return []KV{
		{"discount", "0.00"}, {"payment_type", "1"}, {"subject", "白色杯子"},
		{"trade_no", "2015070200001000110058805905"}, {"buyer_email", "buyer@example.com"},
		{"gmt_create", now.In(Beijing).Format(TimeLayout)}, {"notify_type", "trade_status_sync"},
		{"quantity", "1"}, {"out_trade_no", "1435804253"}, {"seller_id", Partner},
		{"notify_time", now.In(Beijing).Format(TimeLayout)}, {"trade_status", status},
		{"is_total_fee_adjust", "N"}, {"total_fee", "4.50"}, {"seller_email", "shop@example.com"},
		{"price", "4.50"}, {"buyer_id", "2088402465245110"}, {"notify_id", notifyID},
		{"use_coupon", "N"}, {"sign_type", "MD5"},
	}
}

// ReturnURLParams is a return_url redirect's parameter set, signed like a
// notification (V1) but without notify_id or notify_time.
func ReturnURLParams(now time.Time) []KV {
	return []KV{
		{"charset", "utf-8"}, {"out_trade_no", "20190815155618536-564-57"},
		{"method", "alipay.trade.page.pay.return"}, {"total_amount", "0.10"},
		{"sign_type", "RSA2"}, {"trade_no", "2019081522001468450512505578"},
		{"auth_app_id", AppID}, {"version", "1.0"}, {"app_id", AppID},
		{"seller_id", Seller}, {"timestamp", now.In(Beijing).Format(TimeLayout)},
	}
}

// Genuine is a genuine trade notification for AppID with its own notify_id.
func Genuine(t testing.TB, notifyID string) string {
	t.Helper()
	return EncodeForm(Signed(t, Key(t, "alipay"), Set(TradeParams(AppID, time.Now()), "notify_id", notifyID), false))
}

// Set returns a copy of params with key set to value (appended if absent).
func Set(params []KV, key, value string) []KV {
	out := append([]KV(nil), params...)
	for i := range out {
		if out[i].K == key {
			out[i].V = value
			return out
		}
	}
	return append(out, KV{key, value})
}

// Without returns a copy of params without key.
func Without(params []KV, key string) []KV {
	var out []KV
	for _, p := range params {
		if p.K != key {
			out = append(out, p)
		}
	}
	return out
}

// Get returns the value of key in params.
func Get(params []KV, key string) string {
	for _, p := range params {
		if p.K == key {
			return p.V
		}
	}
	return ""
}

// ParseBody splits a form body into its parameters, in order, decoded once.
func ParseBody(t testing.TB, body string) []KV {
	t.Helper()
	var params []KV
	for _, pair := range strings.Split(body, "&") {
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			t.Fatalf("form body: %v %v", err1, err2)
		}
		params = append(params, KV{key, value})
	}
	return params
}

// Fold re-shapes params as an attacker would: name's parameter is moved
// into the value of into, "<value>&name=<its value>", which leaves the
// signed string byte for byte as it was.
func Fold(t testing.TB, params []KV, into, name string) []KV {
	t.Helper()
	value := Get(params, name)
	if value == "" {
		t.Fatalf("fold: no %s", name)
	}
	out := Without(params, name)
	for i := range out {
		if out[i].K == into {
			out[i].V += "&" + name + "=" + value
			return out
		}
	}
	t.Fatalf("fold: no %s", into)
	return nil
}
