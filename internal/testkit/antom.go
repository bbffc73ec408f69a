package testkit

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Antom (DESIGN.md §10) test helpers: a signer written from antom-protocol.md
// alone, independently of the plugin's antom.Sign, so that a bug in the
// plugin's signed-content builder or signature encoding cannot be mirrored
// here and cancel out.

// The test Antom clients.
const (
	// AntomClient is the client of the test configuration (keys "alipay2"
	// then "app": rotation).
	AntomClient = "SANDBOX_5Y00000000000001"
	// AntomClient2 is a second configured client, with another key ("ca").
	AntomClient2 = "SANDBOX_5Y00000000000002"
)

// AntomSignature returns the signature field Antom would send for a request
// to uri: SHA256withRSA (PKCS #1 v1.5) over
//
//	POST <uri>\n<clientID>.<requestTime>.<body>
//
// in standard base64, percent-encoded as Java's URLEncoder encodes base64
// ('+' %2B, '/' %2F, '=' %3D; letters and digits as they are).
func AntomSignature(t testing.TB, key *rsa.PrivateKey, uri, clientID, requestTime string, body []byte) string {
	t.Helper()
	content := "POST " + uri + "\n" + clientID + "." + requestTime + "." + string(body)
	sum := sha256.Sum256([]byte(content))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return javaURLEncoder.Replace(base64.StdEncoding.EncodeToString(sig))
}

// javaURLEncoder is java.net.URLEncoder on the base64 alphabet.
var javaURLEncoder = strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D")

// AntomSign returns the Signature header value Antom's SDKs send:
// algorithm=RSA256,keyVersion=1,signature=<AntomSignature>.
func AntomSign(t testing.TB, key *rsa.PrivateKey, uri, clientID, requestTime string, body []byte) string {
	t.Helper()
	return "algorithm=RSA256,keyVersion=1,signature=" + AntomSignature(t, key, uri, clientID, requestTime, body)
}

// AntomMillis is a Request-Time in epoch milliseconds, the form Antom's
// notifications carry.
func AntomMillis(at time.Time) string { return fmt.Sprint(at.UnixMilli()) }

// AntomPayment is a typical notifyPayment body (compact, as Antom sends
// it): a PAYMENT_RESULT for paymentRequestID, amount "100" (minor units) in
// USD, created a few seconds before at.
func AntomPayment(paymentRequestID string, at time.Time) []byte {
	created := at.Add(-5 * time.Second).UTC().Format(time.RFC3339)
	paid := at.UTC().Format(time.RFC3339)
	return []byte(`{"notifyType":"PAYMENT_RESULT","result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},` +
		`"paymentRequestId":"` + paymentRequestID + `","paymentId":"20250519194010800100188000000000001",` +
		`"paymentAmount":{"currency":"USD","value":"100"},"paymentCreateTime":"` + created + `","paymentTime":"` + paid + `"}`)
}

// AntomHeaders are the headers of an Antom notification.
func AntomHeaders(clientID, requestTime, signature string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Client-Id", clientID)
	h.Set("Request-Time", requestTime)
	h.Set("Signature", signature)
	return h
}

// AntomVector is one file of testdata/vectors/antom: a real Antom-signed
// message (copied from ../shared/vectors/antom), with its key and verdict.
type AntomVector struct {
	Description         string `json:"description"`
	Method              string `json:"http_method"`
	URI                 string `json:"uri"`
	ClientID            string `json:"client_id"`
	RequestTime         string `json:"request_time"`
	Body                string `json:"body"`
	SignatureHeader     string `json:"signature_header_value"`
	AntomPublicKey      string `json:"antom_public_key"`
	SignedContentSHA256 string `json:"signed_content_sha256"`
	SignedContentLength int    `json:"signed_content_length"`
	Verified            bool   `json:"verified"`
}

// LoadAntomVector loads testdata/vectors/antom/<name>.
func LoadAntomVector(t testing.TB, name string) AntomVector {
	t.Helper()
	var v AntomVector
	loadJSON(t, Testdata("vectors", "antom", name), &v)
	return v
}
