package alipaynotify

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file plays Alipay: it signs notifications with the test keys in
// testdata/keys. Its signed-string builder is written independently of
// verify.go (plain sort and join), so that a bug in the plugin's builder
// cannot be mirrored here and cancel out.

// kv is one notification parameter, as raw bytes in the body's charset.
type kv struct{ k, v string }

var (
	keyCache   = map[string]*rsa.PrivateKey{}
	keyCacheMu sync.Mutex
)

// testKey loads testdata/keys/<name>.key.pem.
func testKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	if k, ok := keyCache[name]; ok {
		return k
	}
	data, err := os.ReadFile(filepath.Join("testdata", "keys", name+".key.pem"))
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

// testPublicKeyLine is the one-line base64 form of a test key, as Alipay's
// console shows it.
func testPublicKeyLine(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "keys", name+".pub.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// alipayString builds the string Alipay signs: parameters sorted by key,
// blank values and sign left out, sign_type left out unless v2.
func alipayString(params []kv, v2 bool) string {
	var kept []kv
	for _, p := range params {
		if p.k == "sign" || (p.k == "sign_type" && !v2) || strings.TrimSpace(p.v) == "" {
			continue
		}
		kept = append(kept, p)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].k < kept[j].k })
	parts := make([]string, len(kept))
	for i, p := range kept {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// rsaSign signs content the way Alipay does for sign_type.
func rsaSign(t testing.TB, key *rsa.PrivateKey, signType, content string) string {
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

// encodeForm encodes params as Alipay posts them: '+' for spaces, %XX for the
// rest, in the given order.
func encodeForm(params []kv) string {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.v))
	}
	return b.String()
}

// signed returns params with sign appended, signed by key.
func signed(t testing.TB, key *rsa.PrivateKey, params []kv, v2 bool) []kv {
	t.Helper()
	signType := "RSA2"
	for _, p := range params {
		if p.k == "sign_type" {
			signType = p.v
		}
	}
	sign := rsaSign(t, key, signType, alipayString(params, v2))
	return append(append([]kv(nil), params...), kv{"sign", sign})
}

// tradeParams is a typical trade notification, sent now.
func tradeParams(appID string, now time.Time) []kv {
	return []kv{
		{"gmt_create", now.In(beijing).Add(-5 * time.Second).Format(alipayTimeLayout)},
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
		{"seller_id", "2088531891668739"},
		{"notify_time", now.In(beijing).Format(alipayTimeLayout)},
		{"version", "1.0"},
		{"out_trade_no", "20190815155618536-564-57"},
		{"total_amount", "0.10"},
		{"trade_no", "2019081522001468450512505578"},
	}
}

// set returns a copy of params with key set to value (appended if absent).
func set(params []kv, key, value string) []kv {
	out := append([]kv(nil), params...)
	for i := range out {
		if out[i].k == key {
			out[i].v = value
			return out
		}
	}
	return append(out, kv{key, value})
}

// without returns a copy of params without key.
func without(params []kv, key string) []kv {
	var out []kv
	for _, p := range params {
		if p.k != key {
			out = append(out, p)
		}
	}
	return out
}

// vector is one file of testdata/vectors (copied from ../shared/vectors/alipay).
type vector struct {
	Name  string `json:"name"`
	Body  string `json:"body"`
	AppID string `json:"app_id"`
	Key   struct {
		AlipayPublicKey string `json:"alipay_public_key"`
	} `json:"key"`
	Expect struct {
		Verified     bool   `json:"verified"`
		ContentRule  string `json:"content_rule"`
		SignType     string `json:"sign_type"`
		StringToSign string `json:"string_to_sign"`
	} `json:"expect"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "vectors", "*rsa2*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	var vectors []vector
	for _, f := range files {
		vectors = append(vectors, loadVector(t, f))
	}
	return vectors
}

func loadVector(t testing.TB, path string) vector {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}
