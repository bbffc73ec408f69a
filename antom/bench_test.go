package antom

import "testing"

// BenchmarkVerify verifies the real vector: Signature header parsing,
// signature decoding, Request-Time parsing, the body rules, hashing the
// signed content and one 2048-bit RSA verification. Compare with the
// domestic path's BenchmarkVerify in the root package.
func BenchmarkVerify(b *testing.B) {
	v := loadVector(b, genuine)
	ring := vectorRing(b, v)
	req := v.request()
	b.SetBytes(int64(len(req.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.Verify(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyStructure is Verify up to the RSA check (a nil ring stops
// there): the cost of this package's own work.
func BenchmarkVerifyStructure(b *testing.B) {
	v := loadVector(b, genuine)
	req := v.request()
	var unknown *KeyRing
	b.SetBytes(int64(len(req.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unknown.Verify(req); err == nil {
			b.Fatal("verified")
		}
	}
}

// BenchmarkParseNotification is the body rules alone.
func BenchmarkParseNotification(b *testing.B) {
	body := []byte(loadVector(b, genuine).Body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNotification(body); err != nil {
			b.Fatal(err)
		}
	}
}
