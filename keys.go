package alipaynotify

import (
	"crypto/md5"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// wrongKeyHint ends the log line of a signature that verifies with no key:
// pasting the app's own public key instead of Alipay's is the most common
// misconfiguration in every SDK's issue tracker.
const wrongKeyHint = "if every notification fails, check that alipay_public_key is Alipay's public key " +
	"(支付宝公钥, open platform console > app > development settings), not your app's public key (应用公钥), " +
	"and that it belongs to the same environment (sandbox or production) as the app_id"

// parsePublicKey reads an alipay_public_key value: one line of base64 as the
// open platform console shows it, a PEM block, or the path of a file holding
// either.
func parsePublicKey(value string) (*rsa.PublicKey, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, errors.New("empty key")
	}
	if strings.HasPrefix(value, "-----BEGIN") {
		return parsePEMPublicKey([]byte(value))
	}
	if der, err := decodeBase64Loose(value); err == nil && !fileExists(value) {
		return parseDERPublicKey(der)
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

// decodeBase64Loose decodes standard base64, ignoring the line breaks and
// spaces that copying from a web console adds.
func decodeBase64Loose(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func parsePEMPublicKey(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("malformed PEM block")
	}
	switch {
	case block.Type == "PUBLIC KEY":
		return parseDERPublicKey(block.Bytes)
	case block.Type == "RSA PUBLIC KEY":
		key, err := x509.ParsePKCS1PublicKey(block.Bytes)
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

func parseDERPublicKey(der []byte) (*rsa.PublicKey, error) {
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		if _, perr := x509.ParsePKCS8PrivateKey(der); perr == nil {
			return nil, errPrivateKey
		}
		if _, perr := x509.ParsePKCS1PrivateKey(der); perr == nil {
			return nil, errPrivateKey
		}
		return nil, fmt.Errorf("not an X.509 public key: %w", err)
	}
	rsaKey, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, but Alipay signs with RSA keys", key)
	}
	return rsaKey, nil
}

// alipayCert is a certificate-mode key: the leaf of alipayCertPublicKey_RSA2.crt
// and the intermediates that follow it in the same file.
type alipayCert struct {
	leaf          *x509.Certificate
	intermediates []*x509.Certificate
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
	if _, ok := certs[0].PublicKey.(*rsa.PublicKey); !ok {
		return alipayCert{}, fmt.Errorf("certificate %q holds a %T, want an RSA key", certs[0].Subject.CommonName, certs[0].PublicKey)
	}
	return alipayCert{leaf: certs[0], intermediates: certs[1:]}, nil
}

// readCertificates parses every CERTIFICATE block of a path or PEM text,
// skipping those Go cannot parse: alipayRootCert.crt holds an SM2 root.
func readCertificates(value string) ([]*x509.Certificate, error) {
	data := []byte(value)
	if !strings.HasPrefix(strings.TrimSpace(value), "-----BEGIN") {
		var err error
		if data, err = os.ReadFile(value); err != nil {
			return nil, err
		}
	}
	var certs []*x509.Certificate
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
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue // e.g. the SM2 root in alipayRootCert.crt
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
func (c alipayCert) chainsTo(roots []*x509.Certificate) error {
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

func findIssuer(cert *x509.Certificate, candidates []*x509.Certificate) *x509.Certificate {
	for _, candidate := range candidates {
		if candidate != cert && signedBy(cert, candidate) {
			return candidate
		}
	}
	return nil
}

func signedBy(cert, parent *x509.Certificate) bool {
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
