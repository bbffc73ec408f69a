package rsaverify

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"
)

// The differential tests: every verdict of this package must equal
// rsa.VerifyPKCS1v15's (true for a nil error) on the same input.
//
// Every single-byte change of a signature is tried on the 2048-bit
// e = 65537 key with SHA-256; a sample elsewhere, unless
// -full, which tries them all on every key (see exhaustive).
var full = flag.Bool("full", false, "try every single-byte change of the signatures of every key")

// pair is one digest to compare a recovered encoding with.
type pair struct {
	hash   crypto.Hash
	digest []byte
}

func (p pair) String() string { return fmt.Sprintf("%v %x", p.hash, p.digest) }

// hashOf returns the digest of msg with h (SHA-1 or SHA-256).
func hashOf(h crypto.Hash, msg []byte) []byte {
	switch h {
	case crypto.SHA1:
		d := sha1.Sum(msg)
		return d[:]
	case crypto.SHA256:
		d := sha256.Sum256(msg)
		return d[:]
	}
	panic("hashOf: " + h.String())
}

// digestInfo is the test's own copy of the DigestInfo prefixes (RFC 8017
// §9.2 note 1), to build encodings independently of the package.
var digestInfo = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
}

// encode returns the k-byte EMSA-PKCS1-v1_5 encoding of digest, with
// however many bytes of FF fit (possibly fewer than 8 or none, for the
// tests of the length rule); nil if not even 00 01 00 T fits.
func encode(k int, h crypto.Hash, digest []byte) []byte {
	t := append(append([]byte(nil), digestInfo[h]...), digest...)
	if k < len(t)+3 {
		return nil
	}
	em := make([]byte, k)
	em[1] = 1
	for i := 2; i < k-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(t):], t)
	return em
}

// signEM signs an arbitrary encoding; ok is false when em is not less
// than the modulus, so has no signature.
func signEM(tk *testKey, em []byte) (sig []byte, ok bool) {
	if len(em) != tk.size || new(big.Int).SetBytes(em).Cmp(tk.pub.N) >= 0 {
		return nil, false
	}
	return rawSign(tk.priv, em), true
}

// prepared returns the package's key for a test key, built once.
var (
	preparedMu sync.Mutex
	preparedBy = map[*testKey]*PublicKey{}
)

func prepared(t testing.TB, tk *testKey) *PublicKey {
	t.Helper()
	preparedMu.Lock()
	defer preparedMu.Unlock()
	if pk, ok := preparedBy[tk]; ok {
		return pk
	}
	pk, err := New(tk.pub)
	if err != nil {
		t.Fatalf("New(%s): %v", tk.name, err)
	}
	if pk.Size() != tk.size {
		t.Fatalf("%s: Size() = %d, want %d", tk.name, pk.Size(), tk.size)
	}
	preparedBy[tk] = pk
	return pk
}

// agree recovers sig once and checks, for each pair, that the package's
// verdict is crypto/rsa's; it returns crypto/rsa's verdicts. With both,
// it also checks the one-call VerifyPKCS1v15.
func agree(t testing.TB, tk *testKey, pk *PublicKey, what string, sig []byte, both bool, pairs ...pair) []bool {
	t.Helper()
	var buf [512]byte
	em, ok := pk.Recover(buf[:0], sig)
	if ok && len(em) != tk.size {
		t.Fatalf("%s %s: Recover returned %d bytes, want %d", tk.name, what, len(em), tk.size)
	}
	verdicts := make([]bool, len(pairs))
	for i, p := range pairs {
		err := rsa.VerifyPKCS1v15(tk.pub, p.hash, p.digest, sig)
		want := err == nil
		verdicts[i] = want
		if got := ok && MatchPKCS1v15(em, p.hash, p.digest); got != want {
			t.Errorf("%s %s, %v: Recover+Match = %v, crypto/rsa = %v (%v); sig %x", tk.name, what, p, got, want, err, sig)
		}
		if both {
			if got := pk.VerifyPKCS1v15(p.hash, p.digest, sig); got != want {
				t.Errorf("%s %s, %v: VerifyPKCS1v15 = %v, crypto/rsa = %v (%v)", tk.name, what, p, got, want, err)
			}
		}
	}
	return verdicts
}

// TestDifferential compares verdicts on valid signatures and everything
// near them, for every main test key and both hashes.
func TestDifferential(t *testing.T) {
	for _, s := range mainSpecs {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
			t.Run(s.name()+"/"+h.String(), func(t *testing.T) {
				t.Parallel()
				tk := key(t, s)
				differential(t, tk, prepared(t, tk), h, s)
			})
		}
	}
}

// exhaustive reports whether the differential test tries every bit flip,
// every byte change and every wrong digest bit on key s with hash h. By
// default on the 2048-bit, e = 65537 key with SHA-256, Alipay's RSA2 and
// Antom's: 65,280 byte changes, about 3 seconds of CPU; crypto/rsa's cost
// grows with the size and the exponent (e = 2³¹−1 costs 3.3 times e =
// 65537), so the others get a sample, unless -full (about 15 minutes of
// CPU, every key and both hashes: 2.2 million signatures).
func exhaustive(s keySpec, h crypto.Hash) bool {
	return *full || (s == keySpec{2048, 65537} && h == crypto.SHA256 && !testing.Short())
}

func differential(t *testing.T, tk *testKey, pk *PublicKey, h crypto.Hash, s keySpec) {
	msg := []byte("notify_id=" + tk.name + "&hash=" + h.String())
	digest := hashOf(h, msg)
	sig, err := rsa.SignPKCS1v15(nil, tk.priv, h, digest)
	if err != nil {
		t.Fatal(err)
	}
	// The signature that signEM makes is the one crypto/rsa makes
	// (PKCS #1 v1.5 is deterministic), so the test's encoder is right.
	if raw, _ := signEM(tk, encode(tk.size, h, digest)); !bytes.Equal(raw, sig) {
		t.Fatalf("%s: rawSign differs from rsa.SignPKCS1v15", tk.name)
	}
	k := tk.size
	other := crypto.SHA1
	if h == crypto.SHA1 {
		other = crypto.SHA256
	}
	good := pair{h, digest}
	// The other hash's digest of the same message, as the domestic path
	// tries a second digest with the same encoding.
	second := pair{other, hashOf(other, msg)}
	pairs := []pair{good, second}
	all := exhaustive(s, h)
	small := k <= 256 && s.e != maxE // cheap enough for everything but byte changes
	rng := rand.New(rand.NewPCG(uint64(k), uint64(s.e)<<8|uint64(h)))

	if v := agree(t, tk, pk, "valid", sig, true, pairs...); !v[0] || v[1] {
		t.Fatalf("%s: crypto/rsa's verdicts on the valid signature: %v", tk.name, v)
	}

	// Wrong digests with the valid signature: bit flips, wrong lengths,
	// the other hash, another message.
	var wrong []pair
	for i := range len(digest) * 8 {
		if all || small || rng.IntN(8) == 0 {
			d := bytes.Clone(digest)
			d[i/8] ^= 1 << (i % 8)
			wrong = append(wrong, pair{h, d})
		}
	}
	wrong = append(wrong,
		pair{h, nil}, pair{h, []byte{}},
		pair{h, digest[:len(digest)-1]}, pair{h, append(bytes.Clone(digest), 0)},
		pair{other, digest[:min(len(digest), other.Size())]},
		pair{other, append(bytes.Clone(digest), make([]byte, max(0, other.Size()-len(digest)))...)},
		pair{h, hashOf(h, append(msg, '!'))},
	)
	for _, p := range wrong {
		agree(t, tk, pk, "wrong digest", sig, true, p)
	}

	// Wrong lengths.
	lengths := map[string][]byte{
		"empty":            {},
		"nil":              nil,
		"first byte cut":   sig[1:],
		"last byte cut":    sig[:k-1],
		"leading zero":     append([]byte{0}, sig...),
		"trailing zero":    append(bytes.Clone(sig), 0),
		"twice":            append(bytes.Clone(sig), sig...),
		"one byte":         {1},
		"512 zero bytes":   make([]byte, 512),
		"k+8 bytes, value": append(make([]byte, 8), sig...),
	}
	for name, s := range lengths {
		agree(t, tk, pk, "length: "+name, s, true, pairs...)
	}
	// A valid signature whose leading byte is zero must be sent whole:
	// find one (by signing other messages) and cut it. On the larger
	// keys the search is long, and the length check is the same.
	for i := 0; i < 2048 && (all || k <= 256); i++ {
		m := append(bytes.Clone(msg), fmt.Sprint(i)...)
		d := hashOf(h, m)
		s, _ := signEM(tk, encode(k, h, d))
		if s[0] == 0 {
			p := pair{h, d}
			if v := agree(t, tk, pk, "leading zero byte, whole", s, true, p); !v[0] {
				t.Fatalf("%s: crypto/rsa refuses a valid signature", tk.name)
			}
			agree(t, tk, pk, "leading zero byte, cut", s[1:], true, p)
			break
		}
	}

	// Values out of range, and the edges of the range.
	n := tk.pub.N
	sigInt := new(big.Int).SetBytes(sig)
	one := big.NewInt(1)
	values := map[string]*big.Int{
		"zero":       big.NewInt(0),
		"one":        one,
		"two":        big.NewInt(2),
		"N-1":        new(big.Int).Sub(n, one),
		"N":          new(big.Int).Set(n),
		"N+1":        new(big.Int).Add(n, one),
		"sig+N":      new(big.Int).Add(sigInt, n), // ≡ sig: must be refused
		"2N":         new(big.Int).Lsh(n, 1),
		"all FF":     new(big.Int).Sub(new(big.Int).Lsh(one, uint(8*k)), one),
		"2^(8k-1)":   new(big.Int).Lsh(one, uint(8*k-1)),
		"2^(bits-1)": new(big.Int).Lsh(one, uint(n.BitLen()-1)),
		"2^bits":     new(big.Int).Lsh(one, uint(n.BitLen())),
	}
	for name, x := range values {
		if x.BitLen() <= 8*k {
			agree(t, tk, pk, "value "+name, x.FillBytes(make([]byte, k)), true, pairs...)
		}
	}

	// Single-bit flips.
	for i := range k * 8 {
		if all || small || rng.IntN(k/8) == 0 {
			s := bytes.Clone(sig)
			s[i/8] ^= 1 << (i % 8)
			agree(t, tk, pk, fmt.Sprintf("bit %d flipped", i), s, false, good)
		}
	}

	// Single-byte changes: all 255 other values at every position, or a
	// sample: the leading byte (which decides sig < N) gets more.
	for pos := range k {
		for v := range 256 {
			if byte(v) == sig[pos] {
				continue
			}
			if !all && !(pos == 0 && v%16 == 0) && !(pos == 0 && v == int(n.Bytes()[0])) && rng.IntN(4*255) != 0 {
				continue
			}
			s := bytes.Clone(sig)
			s[pos] = byte(v)
			agree(t, tk, pk, fmt.Sprintf("byte %d = %#x", pos, v), s, false, good)
		}
	}
}

// TestEncodings signs malformed encodings with the private key, so that
// the comparison itself is tested on numbers the exponentiation does
// recover: the padding, the separator, DigestInfo and the digest, each
// changed.
func TestEncodings(t *testing.T) {
	for _, s := range []keySpec{{2048, 65537}, {1024, 3}, {1025, 65537}, {2047, 65537}, {1024, maxE}} {
		t.Run(s.name(), func(t *testing.T) {
			t.Parallel()
			tk := key(t, s)
			pk := prepared(t, tk)
			for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
				encodings(t, tk, pk, h)
			}
		})
	}
}

func encodings(t *testing.T, tk *testKey, pk *PublicKey, h crypto.Hash) {
	k := tk.size
	digest := hashOf(h, []byte("encodings "+tk.name))
	good := pair{h, digest}
	em := encode(k, h, digest)
	try := func(what string, em []byte) {
		t.Helper()
		if sig, ok := signEM(tk, em); ok {
			agree(t, tk, pk, h.String()+" "+what, sig, false, good)
		}
	}
	if sig, ok := signEM(tk, em); !ok || !agree(t, tk, pk, "valid", sig, true, good)[0] {
		t.Fatalf("%s %v: the valid encoding does not verify", tk.name, h)
	}
	prefix := digestInfo[h]
	tLen := len(prefix) + len(digest)
	sep := k - tLen - 1
	// Every byte of the encoding but the run of FF changed, two ways.
	for i := range k {
		if i >= 2 && i < sep {
			continue
		}
		for _, x := range []byte{0x01, 0x80} {
			e := bytes.Clone(em)
			e[i] ^= x
			try(fmt.Sprintf("byte %d ^ %#x", i, x), e)
		}
	}
	// The run of FF: its ends and a sample, to FE and to 00.
	for i := 2; i < sep; i++ {
		if i > 4 && i < sep-3 && i%23 != 0 {
			continue
		}
		for _, v := range []byte{0xfe, 0x00} {
			e := bytes.Clone(em)
			e[i] = v
			try(fmt.Sprintf("padding %d = %#x", i, v), e)
		}
	}
	// A shorter padding with a byte after the digest; a longer one with
	// the digest cut.
	try("padding shorter, trailing byte", append(append(bytes.Clone(em[:sep-1]), em[sep:]...), 0))
	try("padding longer, digest cut", append(append(bytes.Clone(em[:sep]), 0xff), em[sep:k-1]...))
	// DigestInfo without the NULL parameters (05 00), which some
	// verifiers accept and crypto/rsa does not; padding two bytes longer.
	noNull := append([]byte{prefix[0], prefix[1] - 2, prefix[2], prefix[3] - 2}, prefix[4:len(prefix)-4]...)
	noNull = append(noNull, prefix[len(prefix)-2:]...)
	e := bytes.Clone(em[:sep])
	e = append(e, 0xff, 0xff, 0)
	e = append(e, noNull...)
	e = append(e, digest...)
	try("DigestInfo without NULL", e)
	// Block type 02 (encryption padding) and 00.
	for _, bt := range []byte{0, 2} {
		e := bytes.Clone(em)
		e[1] = bt
		try(fmt.Sprintf("block type %d", bt), e)
	}
	// The wrong hash's DigestInfo with this digest length.
	for _, oh := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		if oh != h {
			try("other DigestInfo", encode(k, oh, append(bytes.Clone(digest), make([]byte, 32)...)[:oh.Size()]))
		}
	}
}

// TestSmallKeys: with GODEBUG rsa1024min=0 crypto/rsa accepts keys under
// 1024 bits, and so must New; then the padding's length rule decides
// (at least 8 bytes of FF): the tests keys are sized at its edges.
func TestSmallKeys(t *testing.T) {
	t.Setenv("GODEBUG", "rsa1024min=0")
	for _, s := range smallSpecs {
		tk := key(t, s)
		pk, err := New(tk.pub)
		if err != nil {
			t.Fatalf("%s: New with rsa1024min=0: %v", s.name(), err)
		}
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
			digest := hashOf(h, []byte(s.name()))
			good := pair{h, digest}
			tLen := len(digestInfo[h]) + len(digest)
			// crypto/rsa's own signature when the encoding fits.
			if sig, err := rsa.SignPKCS1v15(nil, tk.priv, h, digest); err == nil {
				if v := agree(t, tk, pk, h.String()+" valid", sig, true, good); !v[0] {
					t.Errorf("%s: crypto/rsa refuses its own signature", s.name())
				}
			} else if tk.size >= tLen+11 {
				t.Errorf("%s %v: crypto/rsa cannot sign: %v", s.name(), h, err)
			}
			// The encoding with as many FF as fit, even fewer than 8.
			if sig, ok := signEM(tk, encode(tk.size, h, digest)); ok {
				v := agree(t, tk, pk, h.String()+" short padding", sig, true, good)
				if v[0] != (tk.size >= tLen+11) {
					t.Errorf("%s %v: crypto/rsa says %v with %d bytes of FF", s.name(), h, v[0], tk.size-tLen-3)
				}
			}
			for i := 0; i < tk.size*8; i++ {
				if sig, ok := signEM(tk, encode(tk.size, h, digest)); ok {
					sig[i/8] ^= 1 << (i % 8)
					agree(t, tk, pk, fmt.Sprintf("%v bit %d", h, i), sig, false, good)
				}
			}
		}
	}
}

// refusedKeys are keys crypto/rsa refuses to verify with, by design of
// the test (want is the refusal's reason in crypto/rsa's words).
func TestNewRefusesWhatCryptoRSARefuses(t *testing.T) {
	base := key(t, keySpec{2048, 65537}).pub
	n := base.N
	mod := func(f func(*big.Int) *big.Int) *big.Int { return f(new(big.Int).Set(n)) }
	cases := []struct {
		name string
		pub  *rsa.PublicKey
		ok   bool // crypto/rsa accepts it (answers "verification error")
	}{
		{"the key", &rsa.PublicKey{N: n, E: 65537}, true},
		{"E = 3", &rsa.PublicKey{N: n, E: 3}, true},
		{"E = 2^31-1", &rsa.PublicKey{N: n, E: maxE}, true},
		{"E = 2^31+1", &rsa.PublicKey{N: n, E: 1<<31 + 1}, false},
		{"E = 2^31", &rsa.PublicKey{N: n, E: 1 << 31}, false},
		{"E = 2^62+1", &rsa.PublicKey{N: n, E: 1<<62 + 1}, false},
		{"E = 65536", &rsa.PublicKey{N: n, E: 65536}, false},
		{"E = 2", &rsa.PublicKey{N: n, E: 2}, false},
		{"E = 1", &rsa.PublicKey{N: n, E: 1}, false},
		{"E = 0", &rsa.PublicKey{N: n, E: 0}, false},
		{"E = -1", &rsa.PublicKey{N: n, E: -1}, false},
		{"E = -65537", &rsa.PublicKey{N: n, E: -65537}, false},
		{"N nil", &rsa.PublicKey{E: 65537}, false},
		{"N = 0", &rsa.PublicKey{N: big.NewInt(0), E: 65537}, false},
		{"N = 1", &rsa.PublicKey{N: big.NewInt(1), E: 65537}, false},
		{"N = 3", &rsa.PublicKey{N: big.NewInt(3), E: 3}, false},
		{"N even", &rsa.PublicKey{N: mod(func(x *big.Int) *big.Int { return x.Add(x, big.NewInt(1)) }), E: 65537}, false},
		{"N = 2^2048", &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2048), E: 65537}, false},
		{"N = 2^1023+1 (1024 bits)", &rsa.PublicKey{N: new(big.Int).SetBit(big.NewInt(1), 1023, 1), E: 65537}, true},
		{"N = 2^1022+1 (1023 bits)", &rsa.PublicKey{N: new(big.Int).SetBit(big.NewInt(1), 1022, 1), E: 65537}, false},
		{"N = 2^4096-1 (4096 bits)", &rsa.PublicKey{N: new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 4096), big.NewInt(1)), E: 65537}, true},
		{"N = 2^8192-1 (8192 bits)", &rsa.PublicKey{N: new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 8192), big.NewInt(1)), E: 3}, true},
	}
	for _, s := range smallSpecs {
		cases = append(cases, struct {
			name string
			pub  *rsa.PublicKey
			ok   bool
		}{s.name(), key(t, s).pub, false})
	}
	for _, c := range cases {
		size := 0
		if c.pub.N != nil {
			size = (c.pub.N.BitLen() + 7) / 8
		}
		err := rsa.VerifyPKCS1v15(c.pub, crypto.SHA256, make([]byte, 32), make([]byte, size))
		if accepted := errors.Is(err, rsa.ErrVerification); accepted != c.ok {
			t.Errorf("%s: crypto/rsa: %v; the test expects accepted = %v", c.name, err, c.ok)
		}
		pk, nerr := New(c.pub)
		if (nerr == nil) != c.ok {
			t.Errorf("%s: New: %v; crypto/rsa: %v", c.name, nerr, err)
		}
		if nerr == nil && pk.Size() != size {
			t.Errorf("%s: Size() = %d, want %d", c.name, pk.Size(), size)
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) accepted")
	}

	// A negative modulus: crypto/rsa uses its absolute value; New refuses
	// it (crypto/x509 never makes one).
	tk := key(t, keySpec{2048, 65537})
	digest := hashOf(crypto.SHA256, []byte("negative"))
	sig, _ := rsa.SignPKCS1v15(nil, tk.priv, crypto.SHA256, digest)
	neg := &rsa.PublicKey{N: new(big.Int).Neg(n), E: 65537}
	t.Logf("crypto/rsa with -N: %v", rsa.VerifyPKCS1v15(neg, crypto.SHA256, digest, sig))
	if _, err := New(neg); err == nil {
		t.Error("New accepted a negative modulus")
	}
}

// TestGODEBUGDecidesAtNew: the size minimum follows the GODEBUG setting
// in force when New is called, as crypto/rsa's does on each call.
func TestGODEBUGDecidesAtNew(t *testing.T) {
	pub := key(t, keySpec{512, 65537}).pub
	if _, err := New(pub); err == nil {
		t.Fatal("New accepted a 512-bit key by default")
	}
	t.Setenv("GODEBUG", "rsa1024min=0")
	if _, err := New(pub); err != nil {
		t.Fatalf("New refused a 512-bit key with rsa1024min=0: %v", err)
	}
}

// TestOtherHashes: only SHA-1 and SHA-256 are matched; a valid SHA-512
// signature or a raw (unhashed) one does not verify here, though
// crypto/rsa verifies it. Neither Alipay nor Antom signs with them.
func TestOtherHashes(t *testing.T) {
	tk := key(t, keySpec{2048, 65537})
	pk := prepared(t, tk)
	d := sha512.Sum512([]byte("other"))
	sig, err := rsa.SignPKCS1v15(nil, tk.priv, crypto.SHA512, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if rsa.VerifyPKCS1v15(tk.pub, crypto.SHA512, d[:], sig) != nil {
		t.Fatal("crypto/rsa refuses its SHA-512 signature")
	}
	if pk.VerifyPKCS1v15(crypto.SHA512, d[:], sig) {
		t.Error("SHA-512 verified")
	}
	raw, err := rsa.SignPKCS1v15(nil, tk.priv, 0, d[:32])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []crypto.Hash{0, crypto.MD5, crypto.SHA224, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, 99} {
		var buf [512]byte
		em, _ := pk.Recover(buf[:0], raw)
		size := 32
		if h.Available() {
			size = h.Size()
		}
		if MatchPKCS1v15(em, h, d[:size]) {
			t.Errorf("%v matched", h)
		}
	}
}

// TestRecoverBuffer: Recover appends to dst, keeps what dst held, grows
// it when short, and leaves it alone on failure.
func TestRecoverBuffer(t *testing.T) {
	for _, s := range []keySpec{{2048, 65537}, {4096, 65537}, {1025, 65537}} {
		tk := key(t, s)
		pk := prepared(t, tk)
		digest := hashOf(crypto.SHA256, []byte("buffer"))
		sig, _ := rsa.SignPKCS1v15(nil, tk.priv, crypto.SHA256, digest)
		want := encode(tk.size, crypto.SHA256, digest)

		var stack [512]byte
		em, ok := pk.Recover(stack[:0], sig)
		if !ok || !bytes.Equal(em, want) || &em[0] != &stack[0] {
			t.Errorf("%s: into a [512]byte: ok %v, in place %v", s.name(), ok, ok && &em[0] == &stack[0])
		}
		out, ok := pk.Recover([]byte("head"), sig)
		if !ok || string(out[:4]) != "head" || !bytes.Equal(out[4:], want) {
			t.Errorf("%s: appending to a short slice: %q…", s.name(), out[:min(8, len(out))])
		}
		dst := []byte("head")
		if out, ok := pk.Recover(dst, sig[1:]); ok || string(out) != "head" {
			t.Errorf("%s: a refused signature changed dst: %q", s.name(), out)
		}
		// The encoding starts 00 01: the limbs' zero top bytes are written.
		dirty := bytes.Repeat([]byte{0xaa}, 512)
		if em, ok := pk.Recover(dirty[:0], sig); !ok || !bytes.Equal(em, want) {
			t.Errorf("%s: into a dirty buffer: %x", s.name(), em[:8])
		}
	}
}

// TestAllocations: for keys up to 2048 bits, Recover with a buffer on
// the stack and Match allocate nothing.
func TestAllocations(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	tk := key(t, keySpec{2048, 65537})
	pk := prepared(t, tk)
	digest := hashOf(crypto.SHA256, []byte("allocations"))
	sig, _ := rsa.SignPKCS1v15(nil, tk.priv, crypto.SHA256, digest)
	allocs := testing.AllocsPerRun(100, func() {
		if !pk.VerifyPKCS1v15(crypto.SHA256, digest, sig) {
			t.Fatal("not verified")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per verification", allocs)
	}
}

// TestConcurrent: one PublicKey verifies from many goroutines (run with
// -race).
func TestConcurrent(t *testing.T) {
	tk := key(t, keySpec{2048, 65537})
	pk := prepared(t, tk)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				digest := hashOf(crypto.SHA256, fmt.Appendf(nil, "%d/%d", g, i))
				sig, _ := signEM(tk, encode(tk.size, crypto.SHA256, digest))
				if !pk.VerifyPKCS1v15(crypto.SHA256, digest, sig) {
					t.Errorf("goroutine %d: %d not verified", g, i)
				}
				sig[len(sig)-1] ^= 1
				if pk.VerifyPKCS1v15(crypto.SHA256, digest, sig) {
					t.Errorf("goroutine %d: %d verified changed", g, i)
				}
			}
		})
	}
	wg.Wait()
}
