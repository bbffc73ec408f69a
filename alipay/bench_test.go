package alipay

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/rsaverify"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// Benchmarks of the verification hot path. Run them side by side, so that
// the ratios are measured on the same machine in the same run (bench/verify.sh
// runs them in rounds and prints the ratios with bench/ratios):
//
//	go test -run '^$' -bench '^BenchmarkVerify$' -benchmem -count 10 ./alipay
//
// Two floors, the signed string and the signature precomputed, same key:
//
//   - floor: SHA-256 and rsa.VerifyPKCS1v15, what any verifier over
//     crypto/rsa must do at least (it rebuilds the key's modulus every call);
//   - floor-precomputed: SHA-256 and one Recover and Match of a key prepared
//     once (internal/rsaverify), what this package's verifier must do at
//     least.
//
// package does everything the handler does to a body before the policy:
// parse, decode the charset, build the signed string, decode the signature,
// verify, check for other readings. forged is the tampered vector, which
// carries sign_type: V1 fails, then V2 (its string built and hashed too),
// with the one exponentiation of the key.

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
	forged := []byte(testkit.LoadVector(b, "trade-rsa2-production-tampered-amount.json").Body)
	n, err := ParseNotification(body)
	if err != nil {
		b.Fatal(err)
	}
	content := []byte(vec.Expect.StringToSign)
	sig, err := base64.StdEncoding.DecodeString(n.Sign())
	if err != nil {
		b.Fatal(err)
	}

	b.Run("floor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			digest := sha256.Sum256(content)
			if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("floor-precomputed", func(b *testing.B) {
		pk, err := rsaverify.New(key)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			digest := sha256.Sum256(content)
			var buf [maxSignatureSize]byte
			em, ok := pk.Recover(buf[:0], sig)
			if !ok || !rsaverify.MatchPKCS1v15(em, crypto.SHA256, digest[:]) {
				b.Fatal("not verified")
			}
		}
	})

	ring := new(KeyRing)
	if err := ring.Add("vector", key); err != nil {
		b.Fatal(err)
	}
	b.Run("package", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var n Notification
			if err := n.parse(body, ""); err != nil {
				b.Fatal(err)
			}
			if _, err := ring.Verify(&n); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("forged", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var n Notification
			if err := n.parse(forged, ""); err != nil {
				b.Fatal(err)
			}
			if _, err := ring.Verify(&n); !errors.Is(err, ErrSignatureMismatch) {
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
