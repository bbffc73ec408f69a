package alipay

import (
	"crypto"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/ascii"
	"github.com/emmansun/gmsm/smx509"
)

// WrongKeyHint ends the log line of a signature that verifies with no key:
// pasting the app's own public key instead of Alipay's is the most common
// misconfiguration in every SDK's issue tracker.
const WrongKeyHint = "if every notification fails, check that alipay_public_key is Alipay's public key " +
	"(支付宝公钥, open platform console > app > development settings), not your app's public key (应用公钥), " +
	"and that it belongs to the same environment (sandbox or production) as the app_id"

// ParsePublicKey reads a public key as Alipay's open platform console shows
// it (one line of base64 of an X.509 SubjectPublicKeyInfo; line breaks and
// spaces from copying are ignored) or as a PEM "PUBLIC KEY" (or "RSA PUBLIC
// KEY") block. The key is RSA (sign_type RSA and RSA2) or SM2 (sign_type
// SM2). A private key or a certificate is refused with a message that says
// what to give instead.
func ParsePublicKey(text string) (crypto.PublicKey, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, errors.New("empty key")
	}
	if strings.HasPrefix(text, "-----BEGIN") {
		return parsePEMPublicKey([]byte(text))
	}
	der, err := decodeBase64Loose(text)
	if err != nil {
		return nil, errors.New("neither one line of base64 nor a PEM block")
	}
	return parseDERPublicKey(der)
}

// LoadPublicKey reads a key in any form alipay_public_key accepts: what
// ParsePublicKey reads, or the path of a file holding it. A value that
// looks like an inline key but does not decode is reported as damaged,
// not as a missing file.
func LoadPublicKey(value string) (crypto.PublicKey, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, errors.New("empty key")
	}
	if strings.HasPrefix(value, "-----BEGIN") {
		return parsePEMPublicKey([]byte(value))
	}
	if der, err := decodeBase64Loose(value); err == nil && !fileExists(value) {
		key, err := parseDERPublicKey(der)
		if err != nil && len(value) < 128 {
			// Too short for a key: more likely a path to a missing file.
			return nil, fmt.Errorf("%w (if %q is a file path: no such file)", err, value)
		}
		return key, err
	}
	if LooksLikeInlineKey(value) {
		return nil, errors.New("not valid base64: the key was damaged when copied (copy it again, as one line, from where it is shown: Alipay's open platform console, or Antom Dashboard)")
	}
	data, err := os.ReadFile(value)
	if err != nil {
		return nil, fmt.Errorf("neither one line of base64, a PEM block, nor a readable file: %w", err)
	}
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "-----BEGIN") {
		return parsePEMPublicKey([]byte(text))
	}
	der, err := decodeBase64Loose(text)
	if err != nil {
		return nil, fmt.Errorf("file %s holds neither a PEM block nor one line of base64", value)
	}
	return parseDERPublicKey(der)
}

// LooksLikeInlineKey tells an inline base64 key from a file path, so that a
// damaged paste is reported as a malformed key rather than a missing file.
// It is a key when it starts like the base64 of a public key's DER ("MII"
// for RSA, "MFkw" for SM2), or when it is at least 64 characters of the
// base64 alphabet only, not starting like a path ('/' or '.'); and it is
// not an existing file either way.
func LooksLikeInlineKey(value string) bool {
	if strings.HasPrefix(value, "MII") || strings.HasPrefix(value, "MFkw") {
		return !fileExists(value)
	}
	if len(value) < 64 || value[0] == '/' || value[0] == '.' {
		return false
	}
	for i := 0; i < len(value); i++ {
		if !ascii.IsBase64(value[i]) {
			return false
		}
	}
	return !fileExists(value)
}

// decodeBase64Loose decodes standard base64, ignoring the line breaks and
// spaces that copying from a web console adds.
func decodeBase64Loose(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func parsePEMPublicKey(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("malformed PEM block")
	}
	switch {
	case block.Type == "PUBLIC KEY":
		return parseDERPublicKey(block.Bytes)
	case block.Type == "RSA PUBLIC KEY":
		key, err := smx509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("malformed RSA PUBLIC KEY block: %w", err)
		}
		return key, nil
	case block.Type == "CERTIFICATE":
		return nil, errors.New("this is a certificate: give it with alipay_cert instead")
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, errPrivateKey
	default:
		return nil, fmt.Errorf("unexpected PEM block %q, want PUBLIC KEY", block.Type)
	}
}

var errPrivateKey = errors.New("this is a private key, which must never leave your server: " +
	"use Alipay's public key (支付宝公钥) from the open platform console")

func parseDERPublicKey(der []byte) (crypto.PublicKey, error) {
	key, err := smx509.ParsePKIXPublicKey(der)
	if err != nil {
		if _, perr := smx509.ParsePKCS8PrivateKey(der); perr == nil {
			return nil, errPrivateKey
		}
		if _, perr := smx509.ParsePKCS1PrivateKey(der); perr == nil {
			return nil, errPrivateKey
		}
		return nil, fmt.Errorf("not an X.509 public key: %w", err)
	}
	return checkKeyType(key)
}
