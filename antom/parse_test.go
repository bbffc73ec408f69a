package antom

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseRequestTime(t *testing.T) {
	ist := time.FixedZone("", 5*3600+30*60)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"1685599933871", time.UnixMilli(1685599933871)},
		{"0", time.UnixMilli(0)},
		{"2019-04-04T12:08:56.253+05:30", time.Date(2019, 4, 4, 12, 8, 56, 253e6, ist)},
		{"2025-05-19T01:52:32Z", time.Date(2025, 5, 19, 1, 52, 32, 0, time.UTC)},
		{"2025-05-19T01:52:32+08:00", time.Date(2025, 5, 18, 17, 52, 32, 0, time.UTC)},
		{"2025-05-18T18:52:32-07:00", time.Date(2025, 5, 19, 1, 52, 32, 0, time.UTC)},
		{"2025-05-19T01:52:32.123456789Z", time.Date(2025, 5, 19, 1, 52, 32, 123456789, time.UTC)},
		{"2025-05-19t01:52:32.5z", time.Date(2025, 5, 19, 1, 52, 32, 5e8, time.UTC)},
	} {
		got, err := ParseRequestTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	// The offset is kept, for a webhook timestamp that names the instant as
	// sent.
	if got, _ := ParseRequestTime("2019-04-04T12:08:56.253+05:30"); got.Format(time.RFC3339Nano) != "2019-04-04T12:08:56.253+05:30" {
		t.Errorf("offset lost: %s", got.Format(time.RFC3339Nano))
	}
	for _, bad := range []string{
		"", " ", "yesterday", "-1685599933871", "+1685599933871", "1685599933871 ", " 1685599933871",
		"1685599933.871", "1234567890123456", "0x1F",
		"2025-05-19", "2025-05-19T01:52:32", "2025-05-19 01:52:32Z", "2025-05-19T01:52Z",
		"2025-05-19T01:52:32,5Z", "2025-05-19T01:52:32.Z", "2025-05-19T01:52:32.1234567891Z",
		"2025-05-19T01:52:32+0530", "2025-05-19T01:52:32+24:00", "2025-05-19T01:52:32+05:60",
		"2025-05-19T01:52:32+5:30", "2025-05-19T01:52:32UTC", "2025-05-19T01:52:32Z ",
		"2025-13-19T01:52:32Z", "2025-02-30T01:52:32Z", "2025-05-19T24:00:00Z", "2025-05-19T01:52:60Z",
		"+2025-05-19T01:52:32Z", "2025-5-19T01:52:32Z", "２０２５-05-19T01:52:32Z",
	} {
		if got, err := ParseRequestTime(bad); !errors.Is(err, ErrBadRequestTime) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v, %v; want ErrBadRequestTime", bad, got, err)
		}
	}
}

func TestParseNotification(t *testing.T) {
	n, err := ParseNotification([]byte(" \r\n\t" + testBody + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n.NotifyType != "PAYMENT_RESULT" {
		t.Fatalf("NotifyType %q", n.NotifyType)
	}
	for _, tc := range []struct {
		body, notifyType string
	}{
		{`{}`, ""},
		{`{"notifyType":""}`, ""},
		{`{"notifyType":"REFUND_RESULT"}`, "REFUND_RESULT"},
		{`{"notifyType":"A\u005fB\n\"x\"\ud83d\ude00"}`, "A_B\n\"x\"😀"},
		{`{"a":{"notifyType":1},"notifyType":"X"}`, "X"},     // only the top level counts
		{`{"a":[{"notifyType":null}],"b":"notifyType"}`, ""}, // nested, and a value
		{`{"paymentAmount":{"value":100.10,"big":123456789012345678901234567890,"e":-1.5E+300}}`, ""},
		{`{"a":[],"b":{},"c":[1,"x",true,false,null,{"d":[[]]}],"e":"\/\\\b\f\r\t"}`, ""},
		{`{"a":1,"b":{"a":1},"c":[{"a":1},{"a":1}]}`, ""}, // the same key in different objects
		{`{"é":1,"e\u0301":2}`, ""},                       // not the same key (no normalization)
		{`{"a":1,"A":2}`, ""},                             // nor different case
	} {
		n, err := ParseNotification([]byte(tc.body))
		if err != nil || n.NotifyType != tc.notifyType || string(n.Body) != tc.body {
			t.Errorf("%s: %+v, %v; want notifyType %q", tc.body, n, err, tc.notifyType)
		}
	}
}

func TestParseNotificationRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"empty", ``, ErrMalformedBody},
		{"white space", " \n", ErrMalformedBody},
		{"array", `[{"a":1}]`, ErrMalformedBody},
		{"string", `"{}"`, ErrMalformedBody},
		{"number", `1`, ErrMalformedBody},
		{"null", `null`, ErrMalformedBody},
		{"two objects", `{"a":1}{"b":2}`, ErrMalformedBody},
		{"two objects, spaced", `{"a":1} {"b":2}`, ErrMalformedBody},
		{"trailing garbage", `{"a":1}x`, ErrMalformedBody},
		{"trailing comma", `{"a":1},`, ErrMalformedBody},
		{"trailing NUL", "{\"a\":1}\x00", ErrMalformedBody},
		{"BOM", "\uFEFF{}", ErrMalformedBody},
		{"unterminated", `{"a":1`, ErrMalformedBody},
		{"comma before }", `{"a":1,}`, ErrMalformedBody},
		{"single quotes", `{'a':1}`, ErrMalformedBody},
		{"bare key", `{a:1}`, ErrMalformedBody},
		{"comment", `{"a":1/*x*/}`, ErrMalformedBody},
		{"leading zero", `{"a":01}`, ErrMalformedBody},
		{"plus sign", `{"a":+1}`, ErrMalformedBody},
		{"bare dot", `{"a":1.}`, ErrMalformedBody},
		{"NaN", `{"a":NaN}`, ErrMalformedBody},
		{"hex", `{"a":0x1}`, ErrMalformedBody},
		{"True", `{"a":True}`, ErrMalformedBody},
		{"control character", "{\"a\":\"x\ty\"}", ErrMalformedBody},
		{"bad escape", `{"a":"\x"}`, ErrMalformedBody},
		{"short \\u", `{"a":"\u12"}`, ErrMalformedBody},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", ErrMalformedBody},
		{"invalid UTF-8 in a key", "{\"\xc3\":1}", ErrMalformedBody},
		{"overlong UTF-8", "{\"a\":\"\xc0\xaf\"}", ErrMalformedBody},
		{"UTF-8 surrogate", "{\"a\":\"\xed\xa0\x80\"}", ErrMalformedBody},
		{"lone high surrogate", `{"a":"\ud800"}`, ErrMalformedBody},
		{"lone low surrogate", `{"a":"\udc00x"}`, ErrMalformedBody},
		{"high then not low", `{"a":"\ud800\u0041"}`, ErrMalformedBody},
		{"notifyType number", `{"notifyType":1}`, ErrMalformedBody},
		{"notifyType null", `{"notifyType":null}`, ErrMalformedBody},
		{"notifyType object", `{"notifyType":{"a":"b"}}`, ErrMalformedBody},
		{"too deep", `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, ErrMalformedBody},

		{"duplicate at depth 0", `{"a":1,"b":2,"a":3}`, ErrDuplicateKey},
		{"duplicate notifyType", `{"notifyType":"A","notifyType":"B"}`, ErrDuplicateKey},
		{"duplicate at depth 1", `{"a":{"x":1,"x":1}}`, ErrDuplicateKey},
		{"duplicate at depth 3", `{"a":{"b":{"c":{"x":1,"y":2,"x":3}}}}`, ErrDuplicateKey},
		{"duplicate in an array of objects", `{"list":[{"x":1},{"x":1,"y":2,"y":3}]}`, ErrDuplicateKey},
		{"duplicate after an inner object", `{"a":{"b":1},"c":{"b":1},"a":2}`, ErrDuplicateKey},
		{"duplicate by escape", `{"a":1,"\u0061":2}`, ErrDuplicateKey},
		{"duplicate by escape, nested", `{"o":{"\/":1,"/":2}}`, ErrDuplicateKey},
		{"duplicate by surrogate pair", `{"😀":1,"\ud83d\ude00":2}`, ErrDuplicateKey},
		{"duplicate by upper-case hex", `{"\u00e9":1,"\u00E9":2}`, ErrDuplicateKey},
		{"duplicate empty key", `{"":1,"":2}`, ErrDuplicateKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNotification([]byte(tc.body))
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) || n != nil {
				t.Fatalf("%.80s: %+v, %v; want %v", tc.body, n, err, tc.want)
			}
		})
	}
}

// TestParseNotificationManyKeys: duplicates are found among many keys (the
// sort path), and a large object is fast.
func TestParseNotificationManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{`)
	for i := range 20000 {
		if i > 0 {
			b.WriteString(`,`)
		}
		b.WriteString(`"k` + strings.Repeat("x", i%7) + strconv.Itoa(i) + `":1`)
	}
	ok := b.String() + `}`
	if _, err := ParseNotification([]byte(ok)); err != nil {
		t.Fatal(err)
	}
	dup := b.String() + `,"k7":2}`
	if _, err := ParseNotification([]byte(dup)); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("duplicate among 20000 keys: %v", err)
	}
}

func TestParsePublicKey(t *testing.T) {
	v := loadVector(t, genuine)
	oneLine := v.PublicKey
	key, err := ParsePublicKey(oneLine)
	if err != nil {
		t.Fatal(err)
	}
	if key.N.BitLen() != 2048 {
		t.Fatalf("%d bits", key.N.BitLen())
	}
	der, _ := base64.StdEncoding.DecodeString(oneLine)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	var wrapped strings.Builder
	for i := 0; i < len(oneLine); i += 64 {
		wrapped.WriteString(oneLine[i:min(i+64, len(oneLine))] + "\r\n")
	}
	for name, text := range map[string]string{
		"one line with spaces around": "  " + oneLine + "\n",
		"wrapped":                     wrapped.String(),
		"PEM":                         pemText,
		"PEM indented":                "\n  " + pemText + "\n",
	} {
		got, err := ParsePublicKey(text)
		if err != nil || !got.Equal(key) {
			t.Errorf("%s: %v", name, err)
		}
	}

	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	pkcs1 := x509.MarshalPKCS1PublicKey(key)
	for name, text := range map[string]string{
		"empty":             "",
		"garbage":           "not a key",
		"truncated":         oneLine[:100],
		"EC key":            base64.StdEncoding.EncodeToString(ecDER),
		"PKCS #1 as base64": base64.StdEncoding.EncodeToString(pkcs1),
		"RSA PUBLIC KEY":    string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})),
		"two PEM blocks":    pemText + pemText,
		"broken PEM":        "-----BEGIN PUBLIC KEY-----\n" + oneLine,
	} {
		if _, err := ParsePublicKey(text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNewKeyRing(t *testing.T) {
	if _, err := NewKeyRing(); err == nil {
		t.Error("no keys accepted")
	}
	if _, err := NewKeyRing(nil); err == nil {
		t.Error("nil key accepted")
	}
	if _, err := NewKeyRing(&rsa.PublicKey{}); err == nil {
		t.Error("empty key accepted")
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeyRing(&small.PublicKey); err == nil {
		t.Error("1024-bit key accepted")
	}
	// Keys with which crypto/rsa refuses every signature are refused here,
	// not at the first notification.
	good := testKey(t, 0).PublicKey
	for name, key := range map[string]*rsa.PublicKey{
		"even exponent": {N: good.N, E: 65536},
		"exponent 1":    {N: good.N, E: 1},
		"even modulus":  {N: new(big.Int).Add(good.N, big.NewInt(1)), E: good.E},
	} {
		if _, err := NewKeyRing(&good, key); err == nil || !strings.Contains(err.Error(), "key 1") {
			t.Errorf("%s: %v, want an error naming key 1", name, err)
		}
	}
	keys := []*rsa.PublicKey{&testKey(t, 0).PublicKey, &testKey(t, 1).PublicKey}
	ring, err := NewKeyRing(keys...)
	if err != nil || ring.Len() != 2 {
		t.Fatalf("%v, %d keys", err, ring.Len())
	}
	keys[0] = keys[1] // the ring keeps its own copy
	if _, err := ring.Verify(testRequest(t)); err != nil {
		t.Fatalf("the ring changed with the caller's slice: %v", err)
	}
}
