package rsaverify

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"
)

// Benchmarks of a 2048-bit RSA2 (SHA256withRSA) verification, the common
// Alipay and Antom case, side by side so that the ratios are measured in
// the same run:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./internal/rsaverify
//
// The message is the size of a real trade notification's signed string.

// benchSetup returns the key, two messages (Alipay's V1 and V2 signed
// strings differ by sign_type) and the signature of the second.
func benchSetup(b *testing.B) (k *testKey, pk *PublicKey, v1, v2, sig []byte) {
	b.Helper()
	k = key(b, keySpec{2048, 65537})
	base := "app_id=2021000000000000&auth_app_id=2021000000000000&body=" + strings.Repeat("x", 120) +
		"&buyer_id=2088000000000000&buyer_pay_amount=88.88&charset=utf-8&fund_bill_list=[{\"amount\":\"88.88\",\"fundChannel\":\"ALIPAYACCOUNT\"}]" +
		"&gmt_create=2026-01-01 12:00:00&gmt_payment=2026-01-01 12:00:05&invoice_amount=88.88&notify_id=2026010100222120005000000000000000" +
		"&notify_time=2026-01-01 12:00:06&notify_type=trade_status_sync&out_trade_no=ORDER-20260101-000001&point_amount=0.00" +
		"&receipt_amount=88.88&seller_id=2088000000000001"
	v1 = []byte(base + "&subject=Order 000001&total_amount=88.88&trade_no=2026010122001400000000000000&trade_status=TRADE_SUCCESS&version=1.0")
	v2 = []byte(base + "&sign_type=RSA2&subject=Order 000001&total_amount=88.88&trade_no=2026010122001400000000000000&trade_status=TRADE_SUCCESS&version=1.0")
	digest := sha256.Sum256(v2)
	sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	pk, err = New(k.pub)
	if err != nil {
		b.Fatal(err)
	}
	return k, pk, v1, v2, sig
}

// BenchmarkCryptoRSAFloor is what the handler does today for one signed
// string: hash it, then rsa.VerifyPKCS1v15.
func BenchmarkCryptoRSAFloor(b *testing.B) {
	k, _, _, v2, sig := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		digest := sha256.Sum256(v2)
		if rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, digest[:], sig) != nil {
			b.Fatal("not verified")
		}
	}
}

// BenchmarkCryptoRSATwoDigests is today's domestic path when the V1
// string does not verify: two rsa.VerifyPKCS1v15 calls.
func BenchmarkCryptoRSATwoDigests(b *testing.B) {
	k, _, v1, v2, sig := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		d1 := sha256.Sum256(v1)
		if rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, d1[:], sig) == nil {
			b.Fatal("V1 verified")
		}
		d2 := sha256.Sum256(v2)
		if rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, d2[:], sig) != nil {
			b.Fatal("not verified")
		}
	}
}

// BenchmarkPrecomputed is the same check with this package: hash, one
// Recover, one Match.
func BenchmarkPrecomputed(b *testing.B) {
	_, pk, _, v2, sig := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		digest := sha256.Sum256(v2)
		var buf [512]byte
		em, ok := pk.Recover(buf[:0], sig)
		if !ok || !MatchPKCS1v15(em, crypto.SHA256, digest[:]) {
			b.Fatal("not verified")
		}
	}
}

// BenchmarkPrecomputedTwoDigests is the domestic path with this package:
// both signed strings hashed, one Recover, two Matches.
func BenchmarkPrecomputedTwoDigests(b *testing.B) {
	_, pk, v1, v2, sig := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		d1 := sha256.Sum256(v1)
		d2 := sha256.Sum256(v2)
		var buf [512]byte
		em, ok := pk.Recover(buf[:0], sig)
		if !ok || MatchPKCS1v15(em, crypto.SHA256, d1[:]) || !MatchPKCS1v15(em, crypto.SHA256, d2[:]) {
			b.Fatal("wrong verdict")
		}
	}
}

// BenchmarkRecover isolates the exponentiation.
func BenchmarkRecover(b *testing.B) {
	_, pk, _, _, sig := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		var buf [512]byte
		if _, ok := pk.Recover(buf[:0], sig); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkNew is the per-key cost paid once at load (crypto/rsa pays the
// modulus part of it on every verification).
func BenchmarkNew(b *testing.B) {
	k, _, _, _, _ := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(k.pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecoverSizes compares Recover with rsa.VerifyPKCS1v15 across
// key sizes (e = 65537). Above 2048 bits bigmod allocates its scratch
// space on every multiplication, in both.
func BenchmarkRecoverSizes(b *testing.B) {
	for _, bits := range []int{1024, 2048, 3072, 4096} {
		k := key(b, keySpec{bits, 65537})
		pk, err := New(k.pub)
		if err != nil {
			b.Fatal(err)
		}
		digest := sha256.Sum256([]byte("sizes"))
		sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, digest[:])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(k.name+"/crypto-rsa", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, digest[:], sig) != nil {
					b.Fatal("not verified")
				}
			}
		})
		b.Run(k.name+"/precomputed", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !pk.VerifyPKCS1v15(crypto.SHA256, digest[:], sig) {
					b.Fatal("not verified")
				}
			}
		})
	}
}
