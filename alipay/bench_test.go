package alipay

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// Benchmarks of the verification hot path. Run them side by side, so that
// the ratio to the floor is measured on the same machine in the same run:
//
//	go test -run '^$' -bench 'BenchmarkVerify' -benchmem -count 10 ./alipay
//
// The floor is what any verifier must do at least: hash the signed string
// and check the RSA signature (the signed string and the signature
// precomputed). BenchmarkVerify/package does everything the handler does to
// a body before the policy: parse, decode the charset, build the signed
// string, decode the signature, verify, check for other readings.

// benchVector loads the real Alipay-signed vector and its key.
func benchVector(b *testing.B) (testkit.Vector, *rsa.PublicKey) {
	b.Helper()
	vec := testkit.LoadVector(b, "trade-rsa2-production.json")
	key, err := ParsePublicKey(vec.Key.AlipayPublicKey)
	if err != nil {
		b.Fatal(err)
	}
	return vec, key.(*rsa.PublicKey)
}

func BenchmarkVerify(b *testing.B) {
	vec, key := benchVector(b)
	body := []byte(vec.Body)

	b.Run("floor", func(b *testing.B) {
		n, err := ParseNotification(body)
		if err != nil {
			b.Fatal(err)
		}
		content := []byte(vec.Expect.StringToSign)
		sig, err := base64.StdEncoding.DecodeString(n.Sign())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			digest := sha256.Sum256(content)
			if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("package", func(b *testing.B) {
		ring := new(KeyRing)
		if err := ring.Add("vector", key); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			var n Notification
			if err := n.parse(body); err != nil {
				b.Fatal(err)
			}
			if _, err := ring.Verify(&n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParse isolates what the package adds to the floor.
func BenchmarkParse(b *testing.B) {
	vec, _ := benchVector(b)
	body := []byte(vec.Body)
	b.Run("form", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseForm(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("notification+content", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, err := ParseNotification(body)
			if err != nil {
				b.Fatal(err)
			}
			_ = n.SignedString(RuleV1)
		}
	})
}
