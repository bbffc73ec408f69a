package antom

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/rsaverify"
)

// MinKeyBits is the smallest RSA key NewKeyRing accepts. Antom's keys are
// 2048-bit; a shorter key configured by mistake (a test key) would make
// forgery cheaper, so it is refused at load time rather
// than trusted.
const MinKeyBits = 2048

// ParsePublicKey reads an Antom public key as Antom Dashboard shows it: one
// line of standard base64 of an X.509 SubjectPublicKeyInfo (the line breaks
// and spaces that copying from a web page adds are ignored), or a PEM block
// of type "PUBLIC KEY" with nothing but white space around it. The key must
// be RSA. Reading a file is left to the caller.
func ParsePublicKey(text string) (*rsa.PublicKey, error) {
	text = strings.TrimSpace(text)
	var der []byte
	if strings.HasPrefix(text, "-----BEGIN") {
		block, rest := pem.Decode([]byte(text))
		switch {
		case block == nil:
			return nil, errors.New("antom: malformed PEM block")
		case block.Type != "PUBLIC KEY":
			return nil, fmt.Errorf("antom: PEM block is %q, want \"PUBLIC KEY\"", block.Type)
		case len(bytes.TrimSpace(rest)) != 0:
			// A second block: which key was meant would be a guess.
			return nil, errors.New("antom: data after the PEM block")
		}
		der = block.Bytes
	} else {
		var err error
		der, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
		if err != nil {
			return nil, fmt.Errorf("antom: public key is neither PEM nor base64: %v", err)
		}
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("antom: public key: %v", err)
	}
	rsaKey, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("antom: public key is %T, want RSA", key)
	}
	return rsaKey, nil
}

// KeyRing holds the Antom public keys of one client, in the order they are
// tried. The Signature header's keyVersion does not pick the key (the
// header is not signed, so the version could not be trusted), so during a
// rotation the old and the new key are both configured and the first that
// verifies wins. A KeyRing is immutable and safe for concurrent
// use.
type KeyRing struct {
	// keys are prepared once for verification (internal/rsaverify: the
	// modulus in the form the exponentiation needs), so that a
	// notification costs one exponentiation per key tried.
	keys []*rsaverify.PublicKey
}

// NewKeyRing returns a ring of the given keys, tried in that order. It needs
// at least one key; every key must be RSA of at least MinKeyBits bits, and
// one that crypto/rsa accepts for verification (an odd modulus, an odd
// exponent from 3 to 2³¹−1).
func NewKeyRing(keys ...*rsa.PublicKey) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("antom: a key ring needs at least one key")
	}
	// Prepared keys, not the caller's: the caller's keys and slice may
	// change, the ring may not.
	prepared := make([]*rsaverify.PublicKey, len(keys))
	for i, k := range keys {
		if k == nil || k.N == nil {
			return nil, fmt.Errorf("antom: key %d is nil", i)
		}
		if bits := k.N.BitLen(); bits < MinKeyBits {
			return nil, fmt.Errorf("antom: key %d is %d-bit RSA, want at least %d", i, bits, MinKeyBits)
		}
		var err error
		if prepared[i], err = rsaverify.New(k); err != nil {
			return nil, fmt.Errorf("antom: key %d: %v", i, err)
		}
	}
	return &KeyRing{keys: prepared}, nil
}

// Len returns the number of keys in the ring (0 for a nil ring).
func (r *KeyRing) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// find returns the index of the first key under which sig is a signature of
// the SHA-256 digest, or -1.
func (r *KeyRing) find(digest, sig []byte) int {
	for i, k := range r.keys {
		if verifySHA256(k, digest, sig) {
			return i
		}
	}
	return -1
}

// verifySHA256 is the one place that checks an RSA signature: one
// exponentiation with the key's precomputed modulus and a comparison with
// the encoding of digest, the verdict rsa.VerifyPKCS1v15 gives
// (internal/rsaverify).
func verifySHA256(key *rsaverify.PublicKey, digest, sig []byte) bool {
	return key.VerifyPKCS1v15(crypto.SHA256, digest, sig)
}
