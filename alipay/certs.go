package alipay

import (
	"crypto"
	"crypto/md5"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/emmansun/gmsm/smx509"
)

// Certificate is a certificate-mode key: the leaf of
// alipayCertPublicKey_RSA2.crt and the intermediates that follow it in the
// same file.
type Certificate struct {
	// Leaf is the certificate whose key verifies notifications.
	Leaf          *smx509.Certificate
	intermediates []*smx509.Certificate
	key           crypto.PublicKey
}

// LoadCertificate reads an alipay_cert value: a path, or PEM text (as a
// {file.*} placeholder yields). The first certificate is the key; the
// others are intermediates.
func LoadCertificate(value string) (*Certificate, error) {
	certs, err := ReadCertificates(value)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate in it")
	}
	key, err := checkKeyType(certs[0].PublicKey)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return &Certificate{Leaf: certs[0], intermediates: certs[1:], key: key}, nil
}

// PublicKey returns the leaf's key, RSA or SM2.
func (c *Certificate) PublicKey() crypto.PublicKey { return c.key }

// ReadCertificates parses every CERTIFICATE block of a path or PEM text (RSA
// and SM2 certificates both parse), skipping blocks that do not parse (such
// as a root in an algorithm this build cannot check).
func ReadCertificates(value string) ([]*smx509.Certificate, error) {
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

// ChainsTo checks by signature, not by date, that the certificate leads to
// one of roots, through its own intermediates if needed. Alipay's roots are
// old and some sign with SHA-1, which Certificate.CheckSignature still
// accepts (CheckSignatureFrom does not).
func (c *Certificate) ChainsTo(roots []*smx509.Certificate) error {
	current := c.Leaf
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
		c.Leaf.Subject.String(), c.Leaf.Issuer.String())
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

// SerialNumber is Alipay's certificate SN, md5_hex(issuer DN + decimal
// serial); logs name certificates by it because that is what the open
// platform console shows.
func (c *Certificate) SerialNumber() string {
	sum := md5.Sum([]byte(c.Leaf.Issuer.String() + c.Leaf.SerialNumber.String()))
	return hex.EncodeToString(sum[:])
}

// Expired reports whether the leaf is past its NotAfter date at now.
// Alipay's SDKs do not check expiry when verifying notifications; callers
// warn rather than refuse.
func (c *Certificate) Expired(now time.Time) bool { return now.After(c.Leaf.NotAfter) }
