package alipaynotify

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"path/filepath"
	"testing"
)

// Benchmarks of the verification hot path. Run them side by side, so that
// the ratio to the floor is measured on the same machine in the same run:
//
//	go test -run '^$' -bench 'BenchmarkVerify' -benchmem -count 10 .
//
// The floor is what any verifier must do at least: hash the signed string
// and check the RSA signature (the signed string and the signature
// precomputed). BenchmarkVerify/plugin does everything the handler does to a
// body before the policy: parse, decode the charset, build the signed string,
// decode the signature, verify.

// benchVector loads the real Alipay-signed vector.
func benchVector(b *testing.B) (vec vector, key *rsa.PublicKey) {
	b.Helper()
	vec = loadVector(b, filepath.Join("testdata", "vectors", "trade-rsa2-production.json"))
	key, err := parsePublicKey(vec.Key.AlipayPublicKey)
	if err != nil {
		b.Fatal(err)
	}
	return vec, key
}

func BenchmarkVerify(b *testing.B) {
	vec, key := benchVector(b)
	body := []byte(vec.Body)

	b.Run("floor", func(b *testing.B) {
		n, err := newNotification(body)
		if err != nil {
			b.Fatal(err)
		}
		content := []byte(vec.Expect.StringToSign)
		sig, err := base64.StdEncoding.DecodeString(n.raw.get("sign"))
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

	b.Run("plugin", func(b *testing.B) {
		keys := &Keys{ring: keyRing{{label: "vector", rsa: key}}}
		b.ReportAllocs()
		for b.Loop() {
			if err := keys.Verify(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParse isolates what the plugin adds to the floor.
func BenchmarkParse(b *testing.B) {
	vec, _ := benchVector(b)
	body := []byte(vec.Body)
	b.Run("form", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseForm(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("notification+content", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, err := newNotification(body)
			if err != nil {
				b.Fatal(err)
			}
			_ = n.signedContent(ruleV1)
		}
	})
}
