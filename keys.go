package alipaynotify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/md5"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// wrongKeyHint ends the log line of a signature that verifies with no key:
// pasting the app's own public key instead of Alipay's is the most common
// misconfiguration in every SDK's issue tracker.
const wrongKeyHint = "if every notification fails, check that alipay_public_key is Alipay's public key " +
	"(支付宝公钥, open platform console > app > development settings), not your app's public key (应用公钥), " +
	"and that it belongs to the same environment (sandbox or production) as the app_id"

// parsePublicKey reads an alipay_public_key value: one line of base64 as the
// open platform console shows it, a PEM block, or the path of a file holding
// either. The key is RSA (sign_type RSA and RSA2) or SM2 (sign_type SM2).
func parsePublicKey(value string) (crypto.PublicKey, error) {
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
	if looksLikeInlineKey(value) {
		return nil, errors.New("not valid base64: the key was damaged when copied (copy Alipay's public key again from the open platform console, as one line)")
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

// looksLikeInlineKey tells an inline base64 key from a file path, so that a
// damaged paste is reported as a malformed key rather than a missing file.
// It is a key when it starts like the base64 of a public key's DER ("MII"
// for RSA, "MFkw" for SM2), or when it is at least 64 characters of the
// base64 alphabet only, not starting like a path ('/' or '.'); and it is
// not an existing file either way.
func looksLikeInlineKey(value string) bool {
	if strings.HasPrefix(value, "MII") || strings.HasPrefix(value, "MFkw") {
		return !fileExists(value)
	}
	if len(value) < 64 || value[0] == '/' || value[0] == '.' {
		return false
	}
	for i := 0; i < len(value); i++ {
		if !isBase64Byte(value[i]) {
			return false
		}
	}
	return !fileExists(value)
}

func isBase64Byte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
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

// alipayCert is a certificate-mode key: the leaf of alipayCertPublicKey_RSA2.crt
// and the intermediates that follow it in the same file.
type alipayCert struct {
	leaf          *smx509.Certificate
	intermediates []*smx509.Certificate
	key           crypto.PublicKey
}

// loadAlipayCert reads an alipay_cert value: a path, or PEM text (as a
// {file.*} placeholder yields).
func loadAlipayCert(value string) (alipayCert, error) {
	certs, err := readCertificates(value)
	if err != nil {
		return alipayCert{}, err
	}
	if len(certs) == 0 {
		return alipayCert{}, errors.New("no certificate in it")
	}
	key, err := checkKeyType(certs[0].PublicKey)
	if err != nil {
		return alipayCert{}, fmt.Errorf("certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return alipayCert{leaf: certs[0], intermediates: certs[1:], key: key}, nil
}

// readCertificates parses every CERTIFICATE block of a path or PEM text (RSA
// and SM2 certificates both parse), skipping blocks that do not parse.
func readCertificates(value string) ([]*smx509.Certificate, error) {
	data := []byte(value)
	if !strings.HasPrefix(strings.TrimSpace(value), "-----BEGIN") {
		var err error
		if data, err = os.ReadFile(value); err != nil {
			return nil, err
		}
	}
	var certs []*smx509.Certificate
	blocks := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		blocks++
		cert, err := smx509.ParseCertificate(block.Bytes)
		if err != nil {
			continue // a root in an algorithm this build cannot check
		}
		certs = append(certs, cert)
	}
	if blocks == 0 {
		return nil, errors.New("no PEM CERTIFICATE block in it")
	}
	return certs, nil
}

// chainsTo checks by signature, not by date, that the certificate leads to
// one of roots, through its own intermediates if needed. Alipay's roots are
// old and some sign with SHA-1, which Certificate.CheckSignature still
// accepts (CheckSignatureFrom does not).
func (c alipayCert) chainsTo(roots []*smx509.Certificate) error {
	current := c.leaf
	for range len(c.intermediates) + 1 {
		for _, root := range roots {
			if signedBy(current, root) {
				return nil
			}
		}
		next := findIssuer(current, c.intermediates)
		if next == nil {
			break
		}
		current = next
	}
	return fmt.Errorf("certificate %q (issuer %q) is not signed by any certificate of alipay_root_cert",
		c.leaf.Subject.String(), c.leaf.Issuer.String())
}

func findIssuer(cert *smx509.Certificate, candidates []*smx509.Certificate) *smx509.Certificate {
	for _, candidate := range candidates {
		if candidate != cert && signedBy(cert, candidate) {
			return candidate
		}
	}
	return nil
}

func signedBy(cert, parent *smx509.Certificate) bool {
	return parent.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
}

// serialNumber is Alipay's certificate SN, md5_hex(issuer DN + decimal
// serial); logs name certificates by it because that is what the open
// platform console shows.
func (c alipayCert) serialNumber() string {
	sum := md5.Sum([]byte(c.leaf.Issuer.String() + c.leaf.SerialNumber.String()))
	return hex.EncodeToString(sum[:])
}

// expired reports whether the leaf is past its NotAfter date at now.
func (c alipayCert) expired(now time.Time) bool { return now.After(c.leaf.NotAfter) }
