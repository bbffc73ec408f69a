package alipay_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
)

// A real notification, signed by Alipay in 2019 and published in Alipay's
// Node SDK tests, with the Alipay public key that verifies it.
var (
	realBody = func() string {
		data, err := os.ReadFile("../testdata/vectors/trade-rsa2-production.json")
		if err != nil {
			panic(err)
		}
		return jsonField(string(data), "body")
	}()
	realKey = func() string {
		data, err := os.ReadFile("../testdata/vectors/trade-rsa2-production.json")
		if err != nil {
			panic(err)
		}
		return jsonField(string(data), "alipay_public_key")
	}()
)

// Verify a notification exactly as Alipay POSTed it: parse the raw body
// once, verify it with Alipay's public key, check that it is an
// asynchronous notification, then read only what the signature covers.
func Example() {
	ring, err := alipay.NewKeyRing(realKey) // one line of base64, as the console shows it
	if err != nil {
		panic(err)
	}
	n, err := alipay.ParseNotification([]byte(realBody)) // the raw POST body, never r.PostForm
	if err != nil {
		fmt.Println("400:", err)
		return
	}
	match, err := ring.Verify(n)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	if err := n.CheckNotification(); err != nil {
		fmt.Println("400:", err)
		return
	}
	sent, _, _ := n.SentAt()
	fmt.Println("verified with", match.Key, "under", match.Rule)
	fmt.Println(n.Get("out_trade_no"), n.Get("total_amount"), n.Get("trade_status"))
	fmt.Println("sent", sent.Format("2006-01-02 15:04:05 -07:00"))
	// Output:
	// verified with key #1 under v1
	// 20190815155618536-564-57 0.10 TRADE_SUCCESS
	// sent 2019-08-15 15:56:25 +08:00
}

// A captured notification re-posted with notify_time folded into notify_id
// keeps its signed string byte for byte, so its signature verifies; the
// package refuses it as ambiguous instead of taking it for a new
// notification without a time.
func ExampleKeyRing_Verify_reshaped() {
	ring, _ := alipay.NewKeyRing(realKey)
	values, _ := url.ParseQuery(realBody)
	folded := strings.Replace(realBody,
		"&notify_time="+url.QueryEscape(values.Get("notify_time")), "", 1)
	folded = strings.Replace(folded,
		"notify_id="+values.Get("notify_id"),
		"notify_id="+values.Get("notify_id")+url.QueryEscape("&notify_time="+values.Get("notify_time")), 1)
	n, _ := alipay.ParseNotification([]byte(folded))
	_, err := ring.Verify(n)
	fmt.Println(errors.Is(err, alipay.ErrAmbiguous), errors.Is(err, alipay.ErrMalformed))
	fmt.Println(err)
	// Output:
	// true true
	// a value embeds another parameter: notify_id holds "&notify_time=", which reads as a parameter notify_time of its own (a re-shaped notification)
}

// Errors tell a malformed notification (answer 400) from one that does not
// verify (403).
func ExampleErrNotVerified() {
	ring, _ := alipay.NewKeyRing(realKey)
	tampered := strings.Replace(realBody, "total_amount=0.10", "total_amount=9.99", 1)
	n, _ := alipay.ParseNotification([]byte(tampered))
	_, err := ring.Verify(n)
	switch {
	case errors.Is(err, alipay.ErrNotVerified):
		fmt.Println("403:", err)
	case errors.Is(err, alipay.ErrMalformed):
		fmt.Println("400:", err)
	}
	// Output:
	// 403: signature does not verify with any configured key
}

// Sign plays Alipay with a test key: for tests of an endpoint and tools.
func ExampleSign() {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	signed, err := alipay.Sign(key, []alipay.Param{
		{Key: "app_id", Value: "2021000000000000"},
		{Key: "notify_id", Value: "2026112900222155624068450559358070"},
		{Key: "notify_time", Value: "2026-11-29 20:00:00"},
		{Key: "out_trade_no", Value: "order-1"},
		{Key: "sign_type", Value: "RSA2"},
		{Key: "total_amount", Value: "0.01"},
	}, alipay.SignOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(signed.SignedString))

	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	ring, _ := alipay.NewKeyRing(base64.StdEncoding.EncodeToString(der))
	n, _ := alipay.ParseNotification([]byte(signed.Body()))
	_, err = ring.Verify(n)
	fmt.Println("verifies:", err == nil)
	// Output:
	// app_id=2021000000000000&notify_id=2026112900222155624068450559358070&notify_time=2026-11-29 20:00:00&out_trade_no=order-1&total_amount=0.01
	// verifies: true
}

// jsonField is a tiny reader of one string field of the vector files, so
// that the examples need nothing but the standard library.
func jsonField(text, name string) string {
	i := strings.Index(text, `"`+name+`": "`)
	if i < 0 {
		i = strings.Index(text, `"`+name+`":"`)
	}
	rest := text[i+len(name)+3:]
	rest = strings.TrimLeft(rest, ` "`)
	var b strings.Builder
	for j := 0; j < len(rest); j++ {
		switch c := rest[j]; c {
		case '\\':
			j++
			if rest[j] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(rest[j])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
