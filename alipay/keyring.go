package alipay

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/emmansun/gmsm/sm2"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/rsaverify"
)

// signatureAlgorithm is what a notification's sign_type names.
type signatureAlgorithm struct {
	name string
	hash crypto.Hash // RSA's digest; 0 for SM2, which hashes with the key
}

// algorithmFor maps sign_type to its algorithm. The hash must come from
// sign_type: SDKs that hard-code SHA-256 fail on apps that still sign with
// RSA. MD5 (legacy mapi notifications) is checked by an MD5Key instead.
func algorithmFor(signType string) (signatureAlgorithm, error) {
	switch signType {
	case "RSA2":
		return signatureAlgorithm{name: signType, hash: crypto.SHA256}, nil
	case "RSA":
		return signatureAlgorithm{name: signType, hash: crypto.SHA1}, nil
	case "SM2":
		return signatureAlgorithm{name: signType}, nil
	case "":
		return signatureAlgorithm{}, refuse(ErrSignType, "no sign_type")
	default:
		return signatureAlgorithm{}, refuse(ErrSignType, fmt.Sprintf("unsupported sign_type %q (supported: RSA2, RSA, SM2, and MD5 with partner and md5_key)", Truncate(signType)))
	}
}

// CheckSignType reports, as ErrSignType, a sign_type that no KeyRing
// verifies (anything but RSA2, RSA and SM2).
func CheckSignType(signType string) error {
	_, err := algorithmFor(signType)
	return err
}

// digest hashes content for RSA into sum, which the caller keeps on its
// stack, and returns the digest's bytes; nil for SM2, which hashes with the
// key.
func (a signatureAlgorithm) digest(sum *[sha256.Size]byte, content []byte) []byte {
	switch a.hash {
	case crypto.SHA1:
		*(*[sha1.Size]byte)(sum[:sha1.Size]) = sha1.Sum(content)
		return sum[:sha1.Size]
	case crypto.SHA256:
		*sum = sha256.Sum256(content)
		return sum[:]
	}
	return nil
}

// check reports whether sig is k's signature of content, whose digest
// (RSA only) is digest. An RSA key only checks RSA and RSA2, an SM2 key
// only SM2 (SM3withSM2 with the default user ID 1234567812345678, as
// Alipay's Java SDK signs).
func (a signatureAlgorithm) check(k ringKey, content, digest, sig []byte) bool {
	if k.rsa != nil {
		return a.hash != 0 && k.rsa.VerifyPKCS1v15(a.hash, digest, sig)
	}
	if sm2Key, ok := k.key.(*ecdsa.PublicKey); ok {
		// A copy: gmsm's escape analysis lets sig escape, which would move
		// verify's stack buffer for it to the heap for every RSA
		// notification too.
		return a.hash == 0 && sm2.VerifyASN1WithSM2(sm2Key, nil, content, bytes.Clone(sig))
	}
	return false
}

// KeyRing holds Alipay public keys, tried in order, so that a key can be
// rotated by listing the new one next to the old.
type KeyRing struct {
	keys []ringKey
}

// ringKey is one key with the label that names it in logs.
type ringKey struct {
	label string
	key   crypto.PublicKey // *rsa.PublicKey, or *ecdsa.PublicKey on the SM2 curve
	// rsa is an RSA key's modulus prepared once, at Add (internal/rsaverify),
	// so that a verification is one exponentiation; nil for SM2.
	rsa *rsaverify.PublicKey
}

// Match is what a successful verification found: the rule of the signed
// string and the label of the key.
type Match struct {
	Rule Rule
	Key  string
}

// NewKeyRing parses keys, each one line of base64 (as Alipay's console
// shows it), a PEM public key, or a PEM certificate (whose key is used, as
// in certificate mode), labelled "key #1", "key #2"... in logs.
func NewKeyRing(keys ...string) (*KeyRing, error) {
	r := new(KeyRing)
	for i, text := range keys {
		key, err := parseKeyOrCertificate(text)
		if err != nil {
			return nil, fmt.Errorf("key #%d: %w", i+1, err)
		}
		if err := r.Add(fmt.Sprintf("key #%d", i+1), key); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// parseKeyOrCertificate reads a public key, or the key of a PEM certificate.
func parseKeyOrCertificate(text string) (crypto.PublicKey, error) {
	if strings.Contains(text, "-----BEGIN CERTIFICATE") {
		cert, err := LoadCertificate(strings.TrimSpace(text))
		if err != nil {
			return nil, err
		}
		return cert.PublicKey(), nil
	}
	return ParsePublicKey(text)
}

// Add appends a key (RSA, or SM2 as an *ecdsa.PublicKey on the SM2 curve)
// under label, which names it in Match and logs; it never shows the key.
// An RSA key that crypto/rsa would refuse to verify with (under 1024 bits,
// an even modulus or exponent...) is refused here, when the configuration
// loads, rather than failing every notification.
func (r *KeyRing) Add(label string, key crypto.PublicKey) error {
	checked, err := checkKeyType(key)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	k := ringKey{label: label, key: checked}
	if pub, ok := checked.(*rsa.PublicKey); ok {
		if k.rsa, err = rsaverify.New(pub); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
	}
	r.keys = append(r.keys, k)
	return nil
}

// Len returns the number of keys.
func (r *KeyRing) Len() int { return len(r.keys) }

// Contains returns the label under which the ring holds key, if it does.
func (r *KeyRing) Contains(key crypto.PublicKey) (string, bool) {
	for _, k := range r.keys {
		if eq, ok := k.key.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(key) {
			return k.label, true
		}
	}
	return "", false
}

// Keys returns the keys in order, for tools that compare rings.
func (r *KeyRing) Keys() []crypto.PublicKey {
	keys := make([]crypto.PublicKey, len(r.keys))
	for i, k := range r.keys {
		keys[i] = k.key
	}
	return keys
}

// Buffers that Verify keeps on its stack, so that a verification allocates
// nothing beyond what crypto/rsa does: the signature (RSA-4096 at most) and
// the signed string of a typical notification (1 to 3 KiB; a longer one
// moves to the heap).
const (
	maxSignatureSize    = 512
	signedContentBuffer = 4 << 10
)

// Verify checks the notification's RSA or SM2 signature (sign_type RSA2,
// RSA or SM2) with every key, under V1 and then V2, and then that the
// signed string that verified has no other reading (DESIGN.md §7). It
// checks the signature only: not app_id, seller_id, age, or whether it is
// a notification (CheckNotification). The error matches ErrMalformed (no
// sign, an unsupported sign_type, sign not canonical base64, an ambiguous
// reading) or ErrNotVerified (ErrSignatureMismatch).
//
// An RSA signature costs one exponentiation per key tried, whatever the
// rule: the encoded message recovered from the signature is compared with
// the digests of both signed strings (see findRSA). So a forgery, which
// fails both rules, costs about what a genuine notification does.
func (r *KeyRing) Verify(n *Notification) (Match, error) {
	sign := n.raw.get("sign")
	if sign == "" {
		return Match{}, refuse(ErrNoSign, "no sign parameter")
	}
	alg, err := algorithmFor(n.raw.get("sign_type"))
	if err != nil {
		return Match{}, err
	}
	var sigBuf [maxSignatureSize]byte
	sig, err := DecodeSign(sigBuf[:0], sign)
	if err != nil {
		return Match{}, err
	}
	if alg.hash != 0 {
		if m, ok := r.findRSA(n, alg, sig); ok {
			return n.unambiguous(m)
		}
		return Match{}, ErrSignatureMismatch
	}
	var contentBuf [signedContentBuffer]byte
	if key, ok := r.find(alg, n.raw.appendSignedString(contentBuf[:0], RuleV1), sig); ok {
		return n.unambiguous(Match{Rule: RuleV1, Key: key})
	}
	if key, ok := r.find(alg, n.raw.appendSignedString(contentBuf[:0], RuleV2), sig); ok {
		return n.unambiguous(Match{Rule: RuleV2, Key: key})
	}
	return Match{}, ErrSignatureMismatch
}

// findRSA finds the key and rule under which sig is an RSA signature (alg
// is RSA or RSA2) of n, with one exponentiation per key: each key recovers
// the encoded message from sig once (rsaverify.PublicKey.Recover), which
// is compared with the encoding of the V1 digest and then of the V2 digest.
// The V2 string is built and hashed only when V1 does not match.
//
// The verdict is the one of trying V1 with every key, then V2 with every
// key: a V1 match with any key wins over a V2 match with an earlier one.
// So after a V2 match the remaining keys are still tried under V1, which
// only a ring of several keys pays, and only for V2 notifications.
func (r *KeyRing) findRSA(n *Notification, alg signatureAlgorithm, sig []byte) (Match, bool) {
	var (
		contentBuf [signedContentBuffer]byte
		sum1, sum2 [sha256.Size]byte
		emBuf      [maxSignatureSize]byte
		digestV2   []byte
		v2         Match
		v2Found    bool
	)
	digestV1 := alg.digest(&sum1, n.raw.appendSignedString(contentBuf[:0], RuleV1))
	for _, k := range r.keys {
		if k.rsa == nil {
			continue
		}
		em, ok := k.rsa.Recover(emBuf[:0], sig)
		if !ok {
			continue
		}
		if rsaverify.MatchPKCS1v15(em, alg.hash, digestV1) {
			return Match{Rule: RuleV1, Key: k.label}, true
		}
		if v2Found {
			continue
		}
		if digestV2 == nil {
			digestV2 = alg.digest(&sum2, n.raw.appendSignedString(contentBuf[:0], RuleV2))
		}
		if rsaverify.MatchPKCS1v15(em, alg.hash, digestV2) {
			v2, v2Found = Match{Rule: RuleV2, Key: k.label}, true
		}
	}
	return v2, v2Found
}

// Check reports the label of the first key whose signature of content,
// under signType (RSA2, RSA or SM2), is sig: for tools that verify repaired
// copies of a notification.
func (r *KeyRing) Check(signType string, content, sig []byte) (string, bool) {
	alg, err := algorithmFor(signType)
	if err != nil {
		return "", false
	}
	return r.find(alg, content, sig)
}

// find returns the label of the first key whose signature over content is sig.
func (r *KeyRing) find(alg signatureAlgorithm, content, sig []byte) (string, bool) {
	var sum [sha256.Size]byte
	digest := alg.digest(&sum, content)
	for _, k := range r.keys {
		if alg.check(k, content, digest, sig) {
			return k.label, true
		}
	}
	return "", false
}

// DecodeSign decodes sign into dst; sign must be canonical standard base64:
// no line breaks or spaces, padding as encoded, zero padding bits. Go's
// decoder would skip line breaks and ignore padding bits, so one signature
// could be spelled many ways, each looking like another notification
// (DESIGN.md §7).
func DecodeSign(dst []byte, sign string) ([]byte, error) {
	// Two IndexByte calls (vectorised) rather than ContainsAny, which
	// looks at a 344-character RSA2 sign one byte at a time.
	if strings.IndexByte(sign, '\n') >= 0 || strings.IndexByte(sign, '\r') >= 0 {
		return nil, refuse(ErrSignEncoding, "sign is not canonical base64: it contains a line break")
	}
	sig, err := base64.StdEncoding.Strict().AppendDecode(dst, []byte(sign))
	if err != nil {
		reason := "sign is not canonical base64"
		if strings.ContainsRune(sign, ' ') {
			reason += ` (it contains spaces: a '+' in it was probably decoded twice, e.g. by a proxy that decodes the body)`
		}
		return nil, refuse(ErrSignEncoding, reason)
	}
	return sig, nil
}

// unambiguous returns m when the signed string that verified under m.Rule
// has one reading; otherwise ErrAmbiguous, with the reason.
func (n *Notification) unambiguous(m Match) (Match, error) {
	if reason := n.foldedParameter(m.Rule); reason != "" {
		return Match{}, refuse(ErrAmbiguous, reason)
	}
	return m, nil
}

// checkKeyType accepts the key types Alipay signs with: RSA, and SM2 (an
// elliptic-curve key on the SM2 curve).
func checkKeyType(key any) (crypto.PublicKey, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k, nil
	case *ecdsa.PublicKey:
		if sm2.IsSM2PublicKey(k) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("a %T, but Alipay signs with RSA or SM2 keys", key)
}
