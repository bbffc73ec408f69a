package testkit

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA issues certificates for the test keys, for certificate-mode tests.
type CA struct {
	t    testing.TB
	dir  string
	Root *x509.Certificate
	key  *rsa.PrivateKey
}

// NewCA makes a self-signed root with the named test key.
func NewCA(t testing.TB, keyName, commonName string) *CA {
	t.Helper()
	key := Key(t, keyName)
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Test Alipay"}, Country: []string{"CN"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	return &CA{t: t, dir: t.TempDir(), Root: root, key: key}
}

// Intermediate returns a CA whose certificate ca issued for the named key,
// as Alipay's Class 2 CA signs leaves under its root.
func (ca *CA) Intermediate(keyName string, serial int64, notAfter time.Time) *CA {
	return &CA{t: ca.t, dir: ca.dir, Root: ca.Issue(keyName, serial, notAfter, true), key: Key(ca.t, keyName)}
}

// Issue signs a certificate for the named test key.
func (ca *CA) Issue(keyName string, serial int64, notAfter time.Time, isCA bool) *x509.Certificate {
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "支付宝(中国)网络技术有限公司-" + keyName, Country: []string{"CN"}},
		NotBefore:             notAfter.Add(-365 * 24 * time.Hour),
		NotAfter:              notAfter,
		IsCA:                  isCA,
		BasicConstraintsValid: isCA,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.Root, &Key(ca.t, keyName).PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// Write stores certificates as one PEM file and returns its path.
func (ca *CA) Write(name string, certs ...*x509.Certificate) string {
	var text []byte
	for _, c := range certs {
		text = append(text, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, text, 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return path
}

// Dir is where Write stores files.
func (ca *CA) Dir() string { return ca.dir }
