package antom_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/antom"
)

// Verify a message signed by Antom's sandbox, with the public key Antom
// published for it.
func ExampleKeyRing_Verify() {
	data, err := os.ReadFile("testdata/sandbox-response-rsa256.json")
	if err != nil {
		panic(err)
	}
	var vector struct {
		URI       string `json:"uri"`
		ClientID  string `json:"client_id"`
		Time      string `json:"request_time"`
		Signature string `json:"signature_header_value"`
		Body      string `json:"body"`
		PublicKey string `json:"antom_public_key"`
	}
	if err := json.Unmarshal(data, &vector); err != nil {
		panic(err)
	}

	key, err := antom.ParsePublicKey(vector.PublicKey) // as Antom Dashboard shows it
	if err != nil {
		panic(err)
	}
	ring, err := antom.NewKeyRing(key)
	if err != nil {
		panic(err)
	}
	v, err := ring.Verify(&antom.Request{
		Method:      "POST",
		URI:         vector.URI,
		ClientID:    vector.ClientID,
		RequestTime: vector.Time,
		Signature:   vector.Signature,
		Body:        []byte(vector.Body),
	})
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println("verified with key", v.Key, "sent at", v.RequestTime.Format(time.RFC3339))
	// Output: verified with key 0 sent at 2025-05-19T01:52:32Z
}

// Sign a test notification, then verify it as a receiver would; a changed
// body no longer verifies.
func ExampleSign() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	body := []byte(`{"notifyType":"PAYMENT_RESULT","paymentRequestId":"PAY_1","paymentAmount":{"currency":"USD","value":"100"}}`)
	header, err := antom.Sign(key, "POST", "/antom/notify", "SANDBOX_5X00000000000000", "1685599933871", body)
	if err != nil {
		panic(err)
	}

	ring, _ := antom.NewKeyRing(&key.PublicKey)
	req := &antom.Request{
		Method:      "POST",
		URI:         "/antom/notify",
		ClientID:    "SANDBOX_5X00000000000000",
		RequestTime: "1685599933871",
		Signature:   header,
		Body:        body,
	}
	v, err := ring.Verify(req)
	fmt.Println("webhook type:", "antom."+v.NotifyType, err)

	req.Body = []byte(`{"notifyType":"PAYMENT_RESULT","paymentRequestId":"PAY_1","paymentAmount":{"currency":"USD","value":"900"}}`)
	_, err = ring.Verify(req)
	fmt.Println(errors.Is(err, antom.ErrSignatureMismatch))
	// Output:
	// webhook type: antom.PAYMENT_RESULT <nil>
	// true
}

// Map Verify's errors to the HTTP status of the answer to Antom.
func Example_httpStatus() {
	status := func(err error) int {
		switch {
		case err == nil:
			return http.StatusOK // once the notification is handled
		case errors.Is(err, antom.ErrMalformed):
			return http.StatusBadRequest
		case errors.Is(err, antom.ErrNotVerified):
			return http.StatusForbidden
		}
		return http.StatusInternalServerError
	}

	var unknownClient *antom.KeyRing // no keys configured for this Client-Id
	for _, req := range []*antom.Request{
		{Method: "POST", URI: "/n", ClientID: "C", RequestTime: "1685599933871", Signature: "algorithm=RSA256,signature=AAAA", Body: []byte(`{"a":1,"a":2}`)},
		{Method: "POST", URI: "/n", ClientID: "C", RequestTime: "1685599933871", Signature: "algorithm=RSA256,signature=AAAA", Body: []byte(`{"a":1}`)},
		{Method: "POST", URI: "/n", RequestTime: "1685599933871", Signature: "algorithm=RSA256,signature=AAAA", Body: []byte(`{}`)},
	} {
		_, err := unknownClient.Verify(req)
		fmt.Println(status(err), err)
	}
	// Output:
	// 400 antom: duplicate key in body: "a" in the object at byte 0
	// 403 antom: unknown Client-Id: "C"
	// 400 antom: missing header Client-Id
}

func ExampleParseSignatureHeader() {
	h, err := antom.ParseSignatureHeader("signature=f%2FdWS%2B9CG8IZe%3D%3D, algorithm=RSA256")
	fmt.Println(h.Algorithm, h.KeyVersion, h.Signature, err)
	fmt.Println(h.String())

	_, err = antom.ParseSignatureHeader("algorithm=RSA512,keyVersion=1,signature=AAAA")
	fmt.Println(errors.Is(err, antom.ErrUnsupportedAlgorithm))
	// Output:
	// RSA256 1 f%2FdWS%2B9CG8IZe%3D%3D <nil>
	// algorithm=RSA256,keyVersion=1,signature=f%2FdWS%2B9CG8IZe%3D%3D
	// true
}

func ExampleDecodeSignature() {
	for _, s := range []string{"%2B%2F8%3D", "+/8=", " /8="} {
		sig, err := antom.DecodeSignature(s)
		fmt.Printf("sig=%x err=%v\n", sig, err)
	}
	// Output:
	// sig=fbff err=<nil>
	// sig=fbff err=<nil>
	// sig= err=antom: signature is not percent-encoded base64: it contains a space (a '+' decoded as a space?)
}

func ExampleParseRequestTime() {
	for _, s := range []string{"1685599933871", "2019-04-04T12:08:56.253+05:30", "2025-05-19T01:52:32Z", "2025-05-19 01:52:32"} {
		t, err := antom.ParseRequestTime(s)
		if err != nil {
			fmt.Println(errors.Is(err, antom.ErrBadRequestTime))
			continue
		}
		fmt.Println(t.UTC().Format(time.RFC3339Nano))
	}
	// Output:
	// 2023-06-01T06:12:13.871Z
	// 2019-04-04T06:38:56.253Z
	// 2025-05-19T01:52:32Z
	// true
}

func ExampleParseNotification() {
	body := []byte(`{"notifyType":"REFUND_RESULT","refundAmount":{"currency":"USD","value":"100"},"fee":0.10000000000000000001}`)
	n, err := antom.ParseNotification(body)
	fmt.Println(n.NotifyType, err, string(n.Body) == string(body))

	_, err = antom.ParseNotification([]byte(`{"notifyType":"REFUND_RESULT","result":{"resultStatus":"S","resultStatus":"F"}}`))
	fmt.Println(err)
	// Output:
	// REFUND_RESULT <nil> true
	// antom: duplicate key in body: "resultStatus" in the object at byte 39
}

// Build the Request from the HTTP request a handler received: the URI as
// received, the three headers each once, the exact body.
func ExampleNewRequest() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	body := []byte(`{"notifyType":"PAYMENT_RESULT","paymentRequestId":"PAY_1","paymentAmount":{"currency":"USD","value":"100"}}`)
	signature, _ := antom.Sign(key, "POST", "/antom/notify?shop=1", "SANDBOX_5X00000000000000", "1685599933871", body)
	r := httptest.NewRequest("POST", "/antom/notify?shop=1", bytes.NewReader(body))
	r.Header.Set("Client-Id", "SANDBOX_5X00000000000000")
	r.Header.Set("Request-Time", "1685599933871")
	r.Header.Set("Signature", signature)

	received, _ := io.ReadAll(r.Body)
	req, err := antom.NewRequest(r.Method, r.RequestURI, r.Header, received)
	if err != nil {
		panic(err)
	}
	ring, _ := antom.NewKeyRing(&key.PublicKey)
	_, err = ring.Verify(req)
	fmt.Println("verified:", err == nil)

	// A signed header sent twice is refused before anything is verified.
	r.Header.Add("Request-Time", "1685599999999")
	_, err = antom.NewRequest(r.Method, r.RequestURI, r.Header, received)
	fmt.Println(err, errors.Is(err, antom.ErrMalformed))
	// Output:
	// verified: true
	// antom: header sent more than once: Request-Time, 2 times true
}
