package alipay

import (
	"bytes"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Fuzz targets. Plain `go test` runs only their seeds (and the crashers
// committed under testdata/fuzz/); scripts/fuzz.sh runs each one for a while:
//
//	FUZZTIME=10m scripts/fuzz.sh
//	go test -run '^$' -fuzz '^FuzzParseForm$' -fuzztime 10m -parallel 1 .

// fuzzBodies are the seed bodies: the vectors, the test suite's own signed
// notifications, and malformed shapes.
func fuzzBodies(t testing.TB) []string {
	bodies := []string{
		"", "&", "=", "a", "a=", "=b", "a=1&&b=2&", "a=1&a=2", "a=%", "a=%4", "a=%zz", "%41=%42",
		"a=1+2%2B3", "sign=abc&sign_type=RSA2", "a=1;b=2", "a=\x00&b=\xff", "A=1&a=2",
		"charset=gbk&subject=%B0%D7", "charset=gbk&subject=%FF%FF", "charset=latin1&a=b",
		"k%E4%B8=%AD", "%E4%B8%AD=%E4%B8%AD&%E4=%B8%AD", "a=%F0%9F%98%80&b=%ED%A0%80", "notify_time=1&notify_type=2&notify_id=3&notify=4",
	}
	for _, vec := range testkit.LoadVectors(t) {
		bodies = append(bodies, vec.Body)
	}
	alipay := testkit.Key(t, "alipay")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, testkit.Beijing)
	base := testkit.TradeParams(testkit.AppID, now)
	gbk, _ := simplifiedchinese.GBK.NewEncoder().String("白色杯子")
	for _, params := range [][]testkit.KV{
		base,
		testkit.Set(base, "sign_type", "RSA"),
		testkit.Set(testkit.Set(base, "charset", "gbk"), "subject", gbk),
		testkit.Set(base, "passback_params", "order%3D1%26x%3D%E5%95%86"),
		testkit.Set(base, "body", " \t "),
	} {
		bodies = append(bodies, testkit.EncodeForm(testkit.Signed(t, alipay, params, false)))
	}
	bodies = append(bodies, testkit.EncodeForm(testkit.Signed(t, alipay, testkit.Set(base, "msg_method", "alipay.fund.trans.order.changed"), true)))
	return bodies
}

// FuzzParseForm: parseForm (decodeForm) never panics; its UTF-8 verdict is
// that of every key and value; what it accepts, url.ParseQuery
// reads the same way (the body has no ';', which ParseQuery refuses); what
// ParseQuery reads with one value per key, every key a parameter name,
// parseForm accepts; and
// re-encoding the fields gives a body that parses to the same fields.
func FuzzParseForm(f *testing.F) {
	for _, body := range fuzzBodies(f) {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, facts, err := decodeForm(body)
		validUTF8 := facts.validUTF8
		values, qerr := url.ParseQuery(string(body))
		if err != nil {
			if qerr == nil && !bytes.ContainsRune(body, ';') && singleValued(values) {
				t.Fatalf("parseForm refuses what url.ParseQuery reads with one value per key: %v", err)
			}
			return
		}
		if !slices.IsSortedFunc(fields, func(a, b Param) int { return strings.Compare(a.Key, b.Key) }) {
			t.Fatal("fields not sorted by key")
		}
		everyFieldValid := true
		for _, fl := range fields {
			everyFieldValid = everyFieldValid && utf8.ValidString(fl.Key) && utf8.ValidString(fl.Value)
		}
		if validUTF8 != everyFieldValid {
			t.Fatalf("decodeForm says valid UTF-8 %v, the fields say %v", validUTF8, everyFieldValid)
		}
		for i, fl := range fields {
			if fl.Key == "" {
				t.Fatal("empty key accepted")
			}
			if i > 0 && fields[i-1].Key == fl.Key {
				t.Fatalf("key %q twice", fl.Key)
			}
		}
		if !bytes.ContainsRune(body, ';') {
			if qerr != nil {
				t.Fatalf("parseForm accepts what url.ParseQuery refuses (%v)", qerr)
			}
			if len(values) != len(fields) {
				t.Fatalf("%d fields, url.ParseQuery %d keys", len(fields), len(values))
			}
			for _, fl := range fields {
				if v := values[fl.Key]; len(v) != 1 || v[0] != fl.Value {
					t.Fatalf("%q=%q, url.ParseQuery %q", fl.Key, fl.Value, v)
				}
			}
		}
		var encoded strings.Builder
		for i, fl := range fields {
			if i > 0 {
				encoded.WriteByte('&')
			}
			encoded.WriteString(url.QueryEscape(fl.Key) + "=" + url.QueryEscape(fl.Value))
		}
		again, err := ParseForm([]byte(encoded.String()))
		if err != nil || !slices.Equal(again, []Param(fields)) {
			t.Fatalf("round trip: %v\n got %q\nwant %q", err, again, fields)
		}
	})
}

func singleValued(values url.Values) bool {
	for k, v := range values {
		if !isParameterName(k) || len(v) != 1 {
			return false
		}
	}
	return len(values) > 0
}

// fuzzRing holds the keys of the vectors and the test key, as a key ring.
func fuzzRing(t testing.TB) *KeyRing {
	keys := []string{testkit.PublicKeyLine(t, "alipay")}
	for _, vec := range testkit.LoadVectors(t) {
		keys = append(keys, vec.Key.AlipayPublicKey)
	}
	ring, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// FuzzVerify runs the whole verification (parse, charset, signed string,
// signature, other readings) on any body. It must never panic, every error
// must be classified, and whatever verifies must have exactly the signed
// string of one of the genuine seeds: a change to any signed byte (a value,
// a key, a field added or removed, sign_type under V2) never verifies; only
// the unsigned bytes (the encoding of a byte as %XX or not, an unsigned
// blank field) may change.
func FuzzVerify(f *testing.F) {
	ring := fuzzRing(f)
	genuine := map[string]bool{} // rule and signed string of every seed that verifies
	verified := 0
	for _, body := range fuzzBodies(f) {
		f.Add([]byte(body))
		if n, m, err := verifyBody(ring, body); err == nil {
			genuine[string(m.Rule)+"\x00"+string(n.SignedString(m.Rule))] = true
			verified++
		}
	}
	if verified != 8 { // the two valid vectors and the six signed here
		f.Fatalf("%d seeds verify, want 8", verified)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, m, err := verifyBody(ring, string(body))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotVerified) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		content := n.SignedString(m.Rule)
		if !genuine[string(m.Rule)+"\x00"+string(content)] {
			t.Fatalf("verified a signed string no genuine seed has (rule %s):\n%s", m.Rule, content)
		}
		if _, _, err := n.SentAt(); err != nil && !errors.Is(err, ErrTime) {
			t.Fatalf("SentAt: unclassified error %v", err)
		}
		for key, value := range n.Params() {
			if !utf8.ValidString(key) || !utf8.ValidString(value) || IsBlank(value) || key == "sign" {
				t.Fatalf("Params yields %q=%q", key, value)
			}
		}
	})
}

// readingNames are the parameter names a random notification draws from:
// real ones, and short ones that sort between them, so that values can
// hold "&N=" with an N on either side of their key.
var readingNames = []string{"body", "buyer_id", "c", "charset", "gmt_create", "notify_type", "out_trade_no",
	"passback_params", "seller_email", "seller_id", "subject", "total_amount", "trade_no", "trade_status", "z"}

// randomNotification draws a signed notification from seed: app_id,
// notify_id, notify_time and sign_type always, then parameters whose values
// mix letters with '&', '=' and names, so that the signed string has many
// readings. v2 keeps sign_type in the signed string.
func randomNotification(seed []byte) (params []testkit.KV, v2 bool) {
	now := time.Now().In(testkit.Beijing).Format(testkit.TimeLayout)
	params = []testkit.KV{{"app_id", testkit.AppID}, {"notify_id", "2026112900222155624068450559358070"}, {"notify_time", now}, {"sign_type", "RSA2"}}
	if len(seed) > 0 {
		v2, seed = seed[0]&1 == 1, seed[1:]
	}
	used := map[string]bool{"app_id": true, "notify_id": true, "notify_time": true, "sign_type": true}
	for len(seed) >= 2 && len(params) < 9 {
		name := readingNames[int(seed[0])%len(readingNames)]
		value := readingValue(seed[1], readingNames[int(seed[1]>>4)%len(readingNames)])
		seed = seed[2:]
		if used[name] {
			continue
		}
		used[name] = true
		params = append(params, testkit.KV{name, value})
	}
	return params, v2
}

// readingValue is a value shaped by b: plain, holding '=', or holding
// "&N=" for some name N.
func readingValue(b byte, name string) string {
	switch b % 4 {
	case 0:
		return "x"
	case 1:
		return "a=b"
	case 2:
		return "x&" + name + "=y"
	default:
		return "x&" + name
	}
}

// readings returns every way of cutting s into parameters at '&' (each
// piece a name, '=', and a value), with at most 2^maxCuts of them.
func readings(s string, maxCuts int) [][]testkit.KV {
	var amps []int
	for i := 0; i < len(s); i++ {
		if s[i] == '&' {
			amps = append(amps, i)
		}
	}
	if len(amps) > maxCuts {
		return nil
	}
	var out [][]testkit.KV
	for mask := 0; mask < 1<<len(amps); mask++ {
		var pieces []testkit.KV
		start := 0
		for i, at := range amps {
			if mask&(1<<i) != 0 {
				k, v, _ := strings.Cut(s[start:at], "=")
				pieces = append(pieces, testkit.KV{k, v})
				start = at + 1
			}
		}
		k, v, _ := strings.Cut(s[start:], "=")
		out = append(out, append(pieces, testkit.KV{k, v}))
	}
	return out
}

// FuzzOtherReadings is the property of DESIGN.md §7: a signed string has
// one accepted reading at most (verified, and a notification). For a random signed notification, every
// reading of its signed string (the same signature over other parameters)
// is posted with that signature; when the original is accepted, every other
// reading is refused; when the original itself looks like a fold (a value
// holding "&N=" with N between its key and the next) and is refused, at
// most one other reading, the unfolded one, is accepted.
func FuzzOtherReadings(f *testing.F) {
	ring := fuzzRing(f)
	key := testkit.Key(f, "alipay")
	f.Add([]byte{0, 11, 2, 9, 6})                 // notify_type "x&seller_id=y"...
	f.Add([]byte{1, 3, 0x92, 12, 0xa2, 2, 1})     // V2
	f.Add([]byte{0, 0, 0x22, 4, 0xb2, 13, 0x42})  // folds into body and trade_no
	f.Add([]byte{0, 14, 0x02, 10, 0x81, 5, 0x33}) // the last parameter
	f.Fuzz(func(t *testing.T, seed []byte) {
		params, v2 := randomNotification(seed)
		content := testkit.AlipayString(params, v2)
		all := readings(content, 9)
		if all == nil {
			return
		}
		sign := testkit.RSASign(t, key, "RSA2", content)
		var accepted []string
		originalAccepted := false
		for _, reading := range all {
			body := testkit.EncodeForm(reading)
			if !v2 {
				body += "&sign_type=RSA2"
			}
			body += "&sign=" + url.QueryEscape(sign)
			if n, _, err := verifyBody(ring, body); err == nil && n.CheckNotification() == nil {
				accepted = append(accepted, body)
				originalAccepted = originalAccepted || sameParams(reading, params, v2)
			}
		}
		if len(accepted) > 1 || len(accepted) == 1 && !originalAccepted && isPlainReading(params, v2) {
			t.Fatalf("%d readings of one signed string accepted:\n%s", len(accepted), strings.Join(accepted, "\n"))
		}
	})
}

// isPlainReading reports whether no value of params holds '&': then the
// original is the one reading that may be accepted.
func isPlainReading(params []testkit.KV, v2 bool) bool {
	for _, p := range params {
		if strings.Contains(p.V, "&") && (p.K != "sign_type" || v2) {
			return false
		}
	}
	return true
}

// sortedParams is params in key order.
func sortedParams(params []testkit.KV) []testkit.KV {
	out := append([]testkit.KV(nil), params...)
	slices.SortFunc(out, func(a, b testkit.KV) int { return strings.Compare(a.K, b.K) })
	return out
}

// sameParams reports whether reading is the signed part of params.
func sameParams(reading, params []testkit.KV, v2 bool) bool {
	var signed []testkit.KV
	for _, p := range params {
		if p.K != "sign_type" || v2 {
			signed = append(signed, p)
		}
	}
	return slices.Equal(sortedParams(reading), sortedParams(signed))
}
