package antom

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// vector is one file of testdata/: a message signed by Antom's sandbox.
type vector struct {
	Method        string `json:"http_method"`
	URI           string `json:"uri"`
	ClientID      string `json:"client_id"`
	RequestTime   string `json:"request_time"`
	Body          string `json:"body"`
	Signature     string `json:"signature_header_value"`
	PublicKey     string `json:"antom_public_key"`
	ContentSHA256 string `json:"signed_content_sha256"`
	ContentLength int    `json:"signed_content_length"`
	Verified      bool   `json:"verified"`
}

func loadVector(tb testing.TB, name string) vector {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(data, &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

const (
	genuine  = "sandbox-response-rsa256.json"
	tampered = "sandbox-response-rsa256-tampered.json"
)

func (v vector) request() *Request {
	return &Request{
		Method:      v.Method,
		URI:         v.URI,
		ClientID:    v.ClientID,
		RequestTime: v.RequestTime,
		Signature:   v.Signature,
		Body:        []byte(v.Body),
	}
}

// vectorRing is the ring of the vector's public key.
func vectorRing(tb testing.TB, v vector) *KeyRing {
	tb.Helper()
	key, err := ParsePublicKey(v.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	ring, err := NewKeyRing(key)
	if err != nil {
		tb.Fatal(err)
	}
	return ring
}

// Test keys, generated once per test binary: signing our own requests is
// the only way to test what the one real vector does not cover.
var (
	testKeysOnce sync.Once
	testKeys     [2]*rsa.PrivateKey
)

func testKey(tb testing.TB, i int) *rsa.PrivateKey {
	tb.Helper()
	testKeysOnce.Do(func() {
		for j := range testKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			testKeys[j] = k
		}
	})
	return testKeys[i]
}

func testRing(tb testing.TB, keys ...int) *KeyRing {
	tb.Helper()
	var pubs []*rsa.PublicKey
	for _, i := range keys {
		pubs = append(pubs, &testKey(tb, i).PublicKey)
	}
	ring, err := NewKeyRing(pubs...)
	if err != nil {
		tb.Fatal(err)
	}
	return ring
}

const testBody = `{"notifyType":"PAYMENT_RESULT","result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},"paymentRequestId":"PAY_1","paymentId":"2025","paymentAmount":{"currency":"USD","value":"100"},"paymentTime":"2025-05-19T01:52:32Z"}`

// signed returns a request signed with test key i.
func signed(tb testing.TB, i int, uri, clientID, requestTime, body string) *Request {
	tb.Helper()
	header, err := Sign(testKey(tb, i), "POST", uri, clientID, requestTime, []byte(body))
	if err != nil {
		tb.Fatal(err)
	}
	return &Request{Method: "POST", URI: uri, ClientID: clientID, RequestTime: requestTime, Signature: header, Body: []byte(body)}
}

func testRequest(tb testing.TB) *Request {
	return signed(tb, 0, "/antom/notify", "SANDBOX_5X00000000000000", "2025-05-19T01:52:32Z", testBody)
}
