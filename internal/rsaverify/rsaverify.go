// Package rsaverify verifies RSASSA-PKCS1-v1_5 signatures (RFC 8017 §8.2)
// with a public key whose Montgomery form is computed once, when the key is
// loaded, instead of on every call as [rsa.VerifyPKCS1v15] does.
//
// Alipay (RSA2 = SHA256withRSA, RSA = SHA1withRSA) and Antom
// (SHA256withRSA) sign with PKCS #1 v1.5. For a 2048-bit key, rebuilding the
// modulus (bigmod.NewModulus) is about a third of crypto/rsa's verification,
// and a notification is verified against up to two signed strings (Alipay's
// V1 leaves sign_type out, V2 keeps it). So the work is split in two steps:
// [PublicKey.Recover] does the single RSA operation, s^e mod n, and
// [MatchPKCS1v15] compares the encoded message it recovered with the
// expected encoding of one digest, as many times as there are digests.
//
// The verdict is the one [rsa.VerifyPKCS1v15] gives for SHA-1 and SHA-256
// on every input: the package's tests compare the two on valid signatures,
// every bit flip and byte change of them, out-of-range values, wrong
// lengths and wrong digests, and a fuzz target does the same on arbitrary
// inputs and on arbitrary encodings signed with the private key. The
// differences are on purpose and at the edges: other hashes never match
// (neither Alipay nor Antom uses them), a negative modulus is refused, and
// the GODEBUG size minimum is read when the key is loaded, not per call.
//
// Nothing here is secret: signatures, digests and public keys may leak
// through timing, as in crypto/rsa's verification.
package rsaverify

import (
	"crypto"
	"crypto/fips140"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/bits"

	"filippo.io/bigmod"
)

// PublicKey is an RSA public key prepared for verification: its modulus is
// already in the form the modular exponentiation needs. It is safe for
// concurrent use; nothing in it changes after [New].
type PublicKey struct {
	n *bigmod.Modulus
	e uint
	// size is the length in bytes of n, and so of every valid signature
	// and of the encoded message Recover writes.
	size int
	// fipsApproved records whether the key also passes the checks that
	// crypto/rsa adds in FIPS 140-only mode (GODEBUG=fips140=only), which
	// it applies on every call, because a goroutine may leave the mode
	// with crypto/fips140.WithoutEnforcement.
	fipsApproved bool
}

// New prepares pub for verification. It refuses every key that
// crypto/rsa's VerifyPKCS1v15 refuses (rather than answering "verification
// error" for every signature), so that a key that would never verify is
// reported when it is loaded and not at the first notification:
//
//   - no modulus, or a modulus that is not positive;
//   - an even modulus;
//   - a modulus under 1024 bits, unless GODEBUG has rsa1024min=0
//     (the setting in force when New is called decides);
//   - a public exponent under 2, even, or over 2³¹−1;
//   - in FIPS 140-only mode, a key that mode refuses (under 2048 bits,
//     an odd number of bits, or an exponent of 2¹⁶ or less).
//
// crypto/rsa takes the absolute value of a negative modulus; New refuses it,
// as crypto/x509 does when it parses a key: it cannot come from a real key.
func New(pub *rsa.PublicKey) (*PublicKey, error) {
	if pub == nil || pub.N == nil {
		return nil, errors.New("rsaverify: missing public modulus")
	}
	if pub.N.Sign() <= 0 {
		return nil, errors.New("rsaverify: public modulus is not positive")
	}
	if pub.N.Bit(0) == 0 {
		return nil, errors.New("rsaverify: public modulus is even")
	}
	if pub.E < 2 {
		return nil, errors.New("rsaverify: public exponent too small or negative")
	}
	if pub.E&1 == 0 {
		return nil, errors.New("rsaverify: public exponent is even")
	}
	// The same bound as crypto/rsa, so that a key does not verify on
	// 64-bit platforms and fail on 32-bit ones.
	if pub.E > 1<<31-1 {
		return nil, errors.New("rsaverify: public exponent too large")
	}
	// The size minimum and FIPS 140-only mode depend on GODEBUG settings
	// that only the standard library can read (an environment variable,
	// //go:debug lines and the go.mod's godebug block). So ask crypto/rsa
	// itself: with an all-zero signature (0^e = 0, never a valid encoding)
	// it answers ErrVerification for a key it accepts, and another error,
	// the reason, for a key it refuses.
	size := (pub.N.BitLen() + 7) / 8
	var zeroDigest [32]byte
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, zeroDigest[:], make([]byte, size)); !errors.Is(err, rsa.ErrVerification) {
		if err == nil {
			// Impossible (the encoding never starts 00 00 ...); do not
			// trust a key with which it happened.
			err = errors.New("crypto/rsa accepted a zero signature")
		}
		return nil, fmt.Errorf("rsaverify: key refused: %w", err)
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, fmt.Errorf("rsaverify: %w", err)
	}
	bitLen := pub.N.BitLen()
	return &PublicKey{
		n:            n,
		e:            uint(pub.E),
		size:         size,
		fipsApproved: bitLen >= 2048 && bitLen%2 == 0 && pub.E > 1<<16,
	}, nil
}

// Size returns the length in bytes of the modulus: the length every valid
// signature has, and the length of the encoded message [PublicKey.Recover]
// appends.
func (k *PublicKey) Size() int {
	return k.size
}

// Recover performs the RSA verification primitive (RFC 8017 §5.2.2,
// RSAVP1): it appends to dst the encoded message sig^e mod n, Size() bytes
// big-endian, and reports true. It reports false, and returns dst
// unchanged, when sig is not exactly Size() bytes or is not a number less
// than the modulus, as crypto/rsa refuses them (a signature with its
// leading zero bytes removed is refused too).
//
// In FIPS 140-only mode it also reports false, on every call, for a key
// that mode refuses but that was loaded inside
// crypto/fips140.WithoutEnforcement, as crypto/rsa does, unless the caller
// is inside it too.
//
// Pass a buffer on the caller's stack, such as buf[:0] of a [512]byte
// (enough for 4096-bit keys), and Recover makes no allocation for keys of
// up to 2048 bits. (Above that, bigmod allocates its scratch space for
// every multiplication, as it does in crypto/rsa.) Compare the result with
// each expected digest with [MatchPKCS1v15].
func (k *PublicKey) Recover(dst, sig []byte) ([]byte, bool) {
	if len(sig) != k.size {
		return dst, false
	}
	// In FIPS 140-only mode crypto/rsa refuses such a key on every call.
	if !k.fipsApproved && fips140.Enforced() {
		return dst, false
	}
	s, err := bigmod.NewNat().SetBytes(sig, k.n)
	if err != nil {
		// sig >= n.
		return dst, false
	}
	m := bigmod.NewNat().ExpShortVarTime(s, k.e, k.n)

	out := grow(dst, k.size)
	em := out[len(dst):]
	// m < n, so its limbs (little-endian words) hold no bits beyond the
	// modulus's size; write them big-endian from the end of em. bigmod's
	// Bytes would allocate the slice.
	i := len(em)
	for _, limb := range m.Bits() {
		for j := 0; j < bits.UintSize/8 && i > 0; j++ {
			i--
			em[i] = byte(limb)
			limb >>= 8
		}
	}
	clear(em[:i])
	return out, true
}

// grow returns dst extended by n bytes, reallocating only when its
// capacity is short.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst[:len(dst)+n]
	}
	out := make([]byte, len(dst)+n)
	copy(out, dst)
	return out
}

// The DER encoding of DigestInfo (RFC 8017 §9.2, note 1) up to the digest:
// SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING (digest) }.
var (
	sha1Prefix   = []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}
	sha256Prefix = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
)

// MatchPKCS1v15 reports whether em, an encoded message returned by
// [PublicKey.Recover], is exactly the EMSA-PKCS1-v1_5 encoding (RFC 8017
// §9.2) of digest:
//
//	00 01 FF … FF 00 || DigestInfo(hash) || digest
//
// filling all of em, with at least 8 bytes of FF. This is the comparison
// crypto/rsa makes: it builds the one valid encoding and compares whole, so
// there is no parsing of em and no other encoding (a shorter padding,
// DigestInfo with absent NULL parameters, trailing bytes) is accepted.
//
// hash is crypto.SHA256 or crypto.SHA1, the hashes of Alipay and Antom;
// MatchPKCS1v15 reports false for every other hash, and for a digest whose
// length is not hash.Size(). In FIPS 140-only mode it reports false for
// SHA-1, as crypto/rsa refuses SHA-1 there.
func MatchPKCS1v15(em []byte, hash crypto.Hash, digest []byte) bool {
	var prefix []byte
	switch hash {
	case crypto.SHA256:
		prefix = sha256Prefix
	case crypto.SHA1:
		if fips140.Enforced() {
			return false
		}
		prefix = sha1Prefix
	default:
		return false
	}
	if len(digest) != hash.Size() {
		return false
	}
	// T = DigestInfo || digest; the padding takes the rest: 00 01, at
	// least 8 bytes of FF, 00.
	tLen := len(prefix) + len(digest)
	if len(em) < tLen+11 {
		return false
	}
	sep := len(em) - tLen - 1 // the 00 between the padding and T
	// Accumulate differences without an early exit: it costs nothing and
	// makes the time independent of where a forgery attempt goes wrong.
	diff := em[0] | (em[1] ^ 0x01) | em[sep]
	for _, b := range em[2:sep] {
		diff |= ^b
	}
	for i, b := range prefix {
		diff |= em[sep+1+i] ^ b
	}
	for i, b := range digest {
		diff |= em[sep+1+len(prefix)+i] ^ b
	}
	return diff == 0
}

// VerifyPKCS1v15 reports whether sig is a valid PKCS #1 v1.5 signature by
// k of digest, the hash (crypto.SHA256 or crypto.SHA1) of the signed
// message: the verdict of rsa.VerifyPKCS1v15 (true for a nil error) in one
// call, for when there is only one digest to try.
func (k *PublicKey) VerifyPKCS1v15(hash crypto.Hash, digest, sig []byte) bool {
	var buf [512]byte
	em, ok := k.Recover(buf[:0], sig)
	return ok && MatchPKCS1v15(em, hash, digest)
}
