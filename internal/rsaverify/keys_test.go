package rsaverify

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The test keys live in testdata/keys.pem, generated once with
//
//	go test -run '^TestGenerateKeys$' -update ./internal/rsaverify
//
// because 4096-bit keys take seconds to generate and the tests should not.
var update = flag.Bool("update", false, "regenerate testdata/keys.pem")

const keysFile = "testdata/keys.pem"

// keySpec is one test key: its size in bits and its public exponent.
type keySpec struct {
	bits int
	e    int
}

func (s keySpec) name() string { return fmt.Sprintf("%d-e%d", s.bits, s.e) }

// maxE is the largest exponent crypto/rsa accepts; it is also prime, so
// it makes keys, and its 31 one bits make the longest exponentiation.
const maxE = 1<<31 - 1

// mainSpecs are the keys of the differential tests: every size Alipay or
// Antom may use, with the smallest, the usual and the largest exponent.
var mainSpecs = []keySpec{
	{1024, 3}, {1024, 65537}, {1024, maxE},
	{2048, 3}, {2048, 65537}, {2048, maxE},
	{3072, 3}, {3072, 65537}, {3072, maxE},
	{4096, 3}, {4096, 65537}, {4096, maxE},
	// Odd sizes: the leading byte of the modulus is 0x01 or below 0x80.
	{1025, 65537}, {2047, 65537},
}

// smallSpecs are under crypto/rsa's 1024-bit minimum: refused unless
// GODEBUG has rsa1024min=0. With it, they test the padding's length rule:
// a SHA-256 encoding needs 62 bytes (496 bits: exactly 8 bytes of FF; 488
// bits: one short), a SHA-1 one 46 bytes (368 bits), and 256 bits fit
// neither.
var smallSpecs = []keySpec{
	{256, 3}, {368, 3}, {488, 65537}, {496, 65537}, {504, 3}, {512, 65537}, {1023, 65537},
}

// testKey is a loaded test key.
type testKey struct {
	name string
	priv *rsa.PrivateKey
	pub  *rsa.PublicKey
	size int
}

var (
	keysOnce sync.Once
	keysByID map[string]*testKey
	keysErr  error
)

// loadKeys reads testdata/keys.pem once per test binary.
func loadKeys(tb testing.TB) map[string]*testKey {
	tb.Helper()
	keysOnce.Do(func() { keysByID, keysErr = readKeys(keysFile) })
	if keysErr != nil {
		tb.Fatalf("%v (regenerate with go test -run '^TestGenerateKeys$' -update)", keysErr)
	}
	return keysByID
}

// key returns the test key of spec s.
func key(tb testing.TB, s keySpec) *testKey {
	tb.Helper()
	k, ok := loadKeys(tb)[s.name()]
	if !ok {
		tb.Fatalf("no test key %s in %s", s.name(), keysFile)
	}
	return k
}

// pkcs1 is the PKCS #1 RSAPrivateKey structure (RFC 8017 A.1.2). The keys
// are parsed with it rather than with crypto/x509, whose checks (and
// those of rsa.PrivateKey.Validate) refuse the keys under 1024 bits and
// keys in FIPS 140-only mode, which the tests need all the same.
type pkcs1 struct {
	Version               int
	N                     *big.Int
	E                     int
	D, P, Q, Dp, Dq, Qinv *big.Int
	AdditionalPrimes      []asn1.RawValue `asn1:"optional,omitempty"`
}

func readKeys(path string) (map[string]*testKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys := map[string]*testKey{}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var k pkcs1
		if _, err := asn1.Unmarshal(block.Bytes, &k); err != nil {
			return nil, fmt.Errorf("%s: %v", block.Headers["Name"], err)
		}
		priv := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: k.N, E: k.E},
			D:         k.D,
			Primes:    []*big.Int{k.P, k.Q},
		}
		priv.Precomputed.Dp, priv.Precomputed.Dq, priv.Precomputed.Qinv = k.Dp, k.Dq, k.Qinv
		name := block.Headers["Name"]
		if want := (keySpec{k.N.BitLen(), k.E}).name(); name != want {
			return nil, fmt.Errorf("key %q is a %s key", name, want)
		}
		keys[name] = &testKey{name: name, priv: priv, pub: &priv.PublicKey, size: (k.N.BitLen() + 7) / 8}
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys in " + path)
	}
	return keys, nil
}

// makeKey builds an RSA key of exactly bits bits with exponent e from two
// primes. rsa.GenerateKey only makes e = 65537 keys of at least 1024 bits.
func makeKey(bits, e int) (*rsa.PrivateKey, error) {
	E := big.NewInt(int64(e))
	one := big.NewInt(1)
	prime := func(n int) (*big.Int, error) {
		for {
			// rand.Prime sets the two top bits, so the product of a
			// ⌈bits/2⌉-bit and a ⌊bits/2⌋-bit prime has exactly bits bits.
			p, err := rand.Prime(rand.Reader, n)
			if err != nil {
				return nil, err
			}
			if new(big.Int).GCD(nil, nil, E, new(big.Int).Sub(p, one)).Cmp(one) == 0 {
				return p, nil
			}
		}
	}
	for {
		p, err := prime((bits + 1) / 2)
		if err != nil {
			return nil, err
		}
		q, err := prime(bits / 2)
		if err != nil {
			return nil, err
		}
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			return nil, fmt.Errorf("%d-bit modulus, want %d", n.BitLen(), bits)
		}
		pm1, qm1 := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
		lambda := new(big.Int).Mul(pm1, qm1)
		lambda.Div(lambda, new(big.Int).GCD(nil, nil, pm1, qm1))
		d := new(big.Int).ModInverse(E, lambda)
		if d == nil {
			continue
		}
		priv := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
		priv.Precomputed.Dp = new(big.Int).Mod(d, pm1)
		priv.Precomputed.Dq = new(big.Int).Mod(d, qm1)
		priv.Precomputed.Qinv = new(big.Int).ModInverse(q, p)
		return priv, nil
	}
}

// TestGenerateKeys writes testdata/keys.pem with -update; otherwise it
// checks that the file holds every key the tests use, each consistent.
func TestGenerateKeys(t *testing.T) {
	specs := append(append([]keySpec(nil), mainSpecs...), smallSpecs...)
	if *update {
		var out []byte
		for _, s := range specs {
			var priv *rsa.PrivateKey
			var err error
			if s.e == 65537 && s.bits >= 1024 && s.bits%2 == 0 {
				priv, err = rsa.GenerateKey(rand.Reader, s.bits)
			} else {
				priv, err = makeKey(s.bits, s.e)
			}
			if err != nil {
				t.Fatalf("%s: %v", s.name(), err)
			}
			if s.bits >= 1024 {
				if err := priv.Validate(); err != nil {
					t.Fatalf("%s: %v", s.name(), err)
				}
			}
			der, err := asn1.Marshal(pkcs1{
				N: priv.N, E: priv.E, D: priv.D, P: priv.Primes[0], Q: priv.Primes[1],
				Dp: priv.Precomputed.Dp, Dq: priv.Precomputed.Dq, Qinv: priv.Precomputed.Qinv,
			})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pem.EncodeToMemory(&pem.Block{
				Type:    "RSA PRIVATE KEY",
				Headers: map[string]string{"Name": s.name()},
				Bytes:   der,
			})...)
			t.Logf("generated %s", s.name())
		}
		if err := os.MkdirAll(filepath.Dir(keysFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keysFile, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range specs {
		k := key(t, s)
		// Consistency, whatever crypto/rsa's size policy: e·d ≡ 1 on
		// a random message, and the CRT values agree.
		m, _ := rand.Int(rand.Reader, k.pub.N)
		c := new(big.Int).Exp(m, big.NewInt(int64(k.pub.E)), k.pub.N)
		if new(big.Int).Exp(c, k.priv.D, k.pub.N).Cmp(m) != 0 {
			t.Errorf("%s: d is not the inverse of e", s.name())
		}
		if !bytes.Equal(rawSign(k.priv, c.FillBytes(make([]byte, k.size))), m.FillBytes(make([]byte, k.size))) {
			t.Errorf("%s: the CRT values are wrong", s.name())
		}
		if s.bits >= 1024 {
			// crypto/x509 checks the keys it parses.
			if _, err := x509.ParsePKCS1PrivateKey(x509.MarshalPKCS1PrivateKey(k.priv)); err != nil {
				t.Errorf("%s: %v", s.name(), err)
			}
		}
	}
}

// rawSign returns em^d mod n as a signature of the key's size: the RSA
// signing primitive on an arbitrary encoded message (which crypto/rsa
// does not offer), so that the tests can sign malformed encodings. It uses
// the CRT values, to keep the fuzz target fast.
func rawSign(priv *rsa.PrivateKey, em []byte) []byte {
	c := new(big.Int).SetBytes(em)
	p, q := priv.Primes[0], priv.Primes[1]
	m1 := new(big.Int).Exp(c, priv.Precomputed.Dp, p)
	m2 := new(big.Int).Exp(c, priv.Precomputed.Dq, q)
	h := m1.Sub(m1, m2)
	h.Mul(h, priv.Precomputed.Qinv).Mod(h, p)
	s := h.Mul(h, q).Add(h, m2)
	return s.FillBytes(make([]byte, (priv.N.BitLen()+7)/8))
}
