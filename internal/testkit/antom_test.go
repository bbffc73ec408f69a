package testkit_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/antom"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// The independent signer must agree with Antom itself: the real vector's
// signature verifies over the content the signer builds (same layout,
// same hash as the vector records), decoded the way the signer encodes.
func TestAntomSignerMatchesTheRealVector(t *testing.T) {
	for _, name := range []string{"sandbox-response-rsa256.json", "sandbox-response-rsa256-tampered.json"} {
		t.Run(name, func(t *testing.T) {
			v := testkit.LoadAntomVector(t, name)
			content := "POST " + v.URI + "\n" + v.ClientID + "." + v.RequestTime + "." + v.Body
			sum := sha256.Sum256([]byte(content))
			if hex.EncodeToString(sum[:]) != v.SignedContentSHA256 || len(content) != v.SignedContentLength {
				t.Fatalf("signed content differs from the vector's: %x (%d bytes)", sum, len(content))
			}
			encoded, ok := strings.CutPrefix(v.SignatureHeader, "algorithm=RSA256,keyVersion=1,signature=")
			if !ok {
				t.Fatalf("header %q", v.SignatureHeader)
			}
			unescaped, err := url.PathUnescape(encoded)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := base64.StdEncoding.DecodeString(unescaped)
			if err != nil {
				t.Fatal(err)
			}
			der, _ := base64.StdEncoding.DecodeString(v.AntomPublicKey)
			pub, err := x509.ParsePKIXPublicKey(der)
			if err != nil {
				t.Fatal(err)
			}
			err = rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, sum[:], sig)
			if (err == nil) != v.Verified {
				t.Fatalf("verifies: %v, vector says %v", err == nil, v.Verified)
			}
		})
	}
}

// The plugin's own signer (antom.Sign) and the independent one give the
// same header: PKCS #1 v1.5 is deterministic, so equal bytes mean the same
// content and the same encoding.
func TestAntomSignerAgreesWithAntomSign(t *testing.T) {
	key := testkit.Key(t, "alipay2")
	now := time.Now()
	for _, uri := range []string{"/antom/notify", "/antom/notify?a=%41&b=c", "/"} {
		for _, rt := range []string{testkit.AntomMillis(now), now.UTC().Format(time.RFC3339), now.Format("2006-01-02T15:04:05.000-07:00")} {
			body := testkit.AntomPayment("PAY_"+rt, now)
			want := testkit.AntomSign(t, key, uri, testkit.AntomClient, rt, body)
			got, err := antom.Sign(key, "POST", uri, testkit.AntomClient, rt, body)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s %s:\nantom.Sign   %s\ntestkit      %s", uri, rt, got, want)
			}
		}
	}
}

func TestAntomPaymentIsOneObject(t *testing.T) {
	body := testkit.AntomPayment("PAY_1", time.Now())
	var payment struct {
		NotifyType    string `json:"notifyType"`
		PaymentAmount struct {
			Currency, Value string
		} `json:"paymentAmount"`
	}
	if err := json.Unmarshal(body, &payment); err != nil {
		t.Fatal(err)
	}
	if payment.NotifyType != "PAYMENT_RESULT" || payment.PaymentAmount.Value != "100" {
		t.Errorf("%+v", payment)
	}
	if _, err := antom.ParseNotification(body); err != nil {
		t.Error(err)
	}
}
