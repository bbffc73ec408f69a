package alipaynotify

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestPublicKeyForms(t *testing.T) {
	dir := t.TempDir()
	pemText, err := os.ReadFile(filepath.Join("testdata", "keys", "alipay.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	line := testPublicKeyLine(t, "alipay")
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rsaKey := testKey(t, "alipay")
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)}))
	valid := map[string]string{
		"one line":                line,
		"one line with breaks":    line[:64] + "\n" + line[64:128] + "\r\n" + line[128:],
		"PEM":                     string(pemText),
		"PKCS#1 PEM":              pkcs1,
		"file with one line":      write("key.txt", line+"\n"),
		"file with PEM":           write("key.pem", string(pemText)),
		"file without extension":  write("alipaykey", line),
		"surrounding white space": "  " + line + "\n",
	}
	for name, value := range valid {
		t.Run(name, func(t *testing.T) {
			key, err := parsePublicKey(value)
			if err != nil {
				t.Fatal(err)
			}
			if !rsaKey.PublicKey.Equal(key) {
				t.Fatal("parsed another key")
			}
		})
	}

	privatePEM, _ := os.ReadFile(filepath.Join("testdata", "keys", "alipay.key.pem"))
	block, _ := pem.Decode(privatePEM)
	invalid := map[string]string{
		"empty":              "",
		"private key PEM":    string(privatePEM),
		"private key base64": string(pemBase64(block.Bytes)),
		"certificate":        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		"garbage base64":     "bm90IGEga2V5",
		"missing file":       filepath.Join(dir, "nope.pem"),
		"truncated key":      line[:len(line)-8],
	}
	wantMessage := map[string]string{
		"private key PEM":    "private key",
		"private key base64": "private key",
		"certificate":        "alipay_cert",
	}
	for name, value := range invalid {
		t.Run(name, func(t *testing.T) {
			_, err := parsePublicKey(value)
			if err == nil {
				t.Fatal("accepted")
			}
			if want := wantMessage[name]; want != "" && !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		})
	}
}

func pemBase64(der []byte) []byte {
	text := pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: der})
	lines := strings.Split(string(text), "\n")
	return []byte(strings.Join(lines[1:len(lines)-2], ""))
}

// testCA issues certificates for certificate-mode tests.
type testCA struct {
	t    *testing.T
	dir  string
	root *x509.Certificate
	key  *rsa.PrivateKey
}

func newTestCA(t *testing.T, keyName, commonName string) *testCA {
	key := testKey(t, keyName)
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
	return &testCA{t: t, dir: t.TempDir(), root: root, key: key}
}

// issue signs a certificate for the named test key.
func (ca *testCA) issue(keyName string, serial int64, notAfter time.Time, isCA bool) *x509.Certificate {
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "支付宝(中国)网络技术有限公司-" + keyName, Country: []string{"CN"}},
		NotBefore:             notAfter.Add(-365 * 24 * time.Hour),
		NotAfter:              notAfter,
		IsCA:                  isCA,
		BasicConstraintsValid: isCA,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.root, &testKey(ca.t, keyName).PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// write stores certificates as one PEM file and returns its path.
func (ca *testCA) write(name string, certs ...*x509.Certificate) string {
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

func TestCertificateMode(t *testing.T) {
	ca := newTestCA(t, "ca", "Test Alipay Root")
	future := time.Now().Add(365 * 24 * time.Hour)
	// A second CA whose intermediate signs the leaf, as Alipay's Class 2 CA does.
	intermediateCA := &testCA{t: t, dir: ca.dir, key: testKey(t, "alipay2")}
	intermediateCA.root = ca.issue("alipay2", 2, future, true)

	// An unparseable certificate in the root file stands for Alipay's SM2 root.
	sm2Standin := "-----BEGIN CERTIFICATE-----\nMIIBszCCAVegAwIBAgIIaeL+wBcKxnswDAYIKoEcz1UBg3UFADAuMQswCQYDVQQG\n-----END CERTIFICATE-----\n"
	rootFile := ca.write("alipayRootCert.crt", ca.root)
	rootData, _ := os.ReadFile(rootFile)
	if err := os.WriteFile(rootFile, append([]byte(sm2Standin), rootData...), 0o600); err != nil {
		t.Fatal(err)
	}
	otherRoot := newTestCA(t, "app", "Not Alipay Root")

	signedBody := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false))
	tests := []struct {
		name      string
		cert      string
		root      string
		wantErr   string
		wantWarn  bool
		wantLabel string
	}{
		{name: "leaf signed by root", cert: ca.write("direct.crt", ca.issue("alipay", 10, future, false)), root: rootFile},
		{name: "leaf with intermediate", cert: ca.write("chain.crt", intermediateCA.issue("alipay", 11, future, false), intermediateCA.root), root: rootFile},
		{name: "no root check", cert: ca.write("noroot.crt", otherRoot.issue("alipay", 12, future, false))},
		{name: "expired leaf still used", cert: ca.write("expired.crt", ca.issue("alipay", 13, time.Now().Add(-24*time.Hour), false)), root: rootFile, wantWarn: true},
		{name: "wrong root", cert: ca.write("wrong.crt", otherRoot.issue("alipay", 14, future, false)), root: rootFile, wantErr: "not signed by any certificate of alipay_root_cert"},
		{name: "intermediate missing", cert: ca.write("orphan.crt", intermediateCA.issue("alipay", 15, future, false)), root: rootFile, wantErr: "not signed"},
		{name: "not a certificate", cert: filepath.Join("testdata", "keys", "alipay.pub.pem"), wantErr: "no PEM CERTIFICATE"},
		{name: "missing file", cert: filepath.Join(ca.dir, "missing.crt"), wantErr: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			v := &Verifier{AppIDs: []string{testAppID}, KeySource: KeySource{AlipayCerts: []string{tc.cert}, AlipayRootCert: tc.root}}
			err := v.provision(zap.New(core))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if warned := logs.FilterMessageSnippet("expired").Len() > 0; warned != tc.wantWarn {
				t.Errorf("expiry warning %v, want %v", warned, tc.wantWarn)
			}
			_, m, ref := v.check(context.Background(), []byte(signedBody))
			if ref != nil {
				t.Fatalf("refused: %s", ref.reason)
			}
			if !strings.HasPrefix(m.key, "alipay_cert #1 (SN ") {
				t.Errorf("key label %q", m.key)
			}
			forged := encodeForm(signed(t, testKey(t, "app"), tradeParams(testAppID, time.Now()), false))
			if _, _, ref := v.check(context.Background(), []byte(forged)); ref == nil || ref.status != http.StatusForbidden {
				t.Fatalf("forged notification: want 403, got %+v", ref)
			}
		})
	}
}

func TestCertificateSerialNumber(t *testing.T) {
	ca := newTestCA(t, "ca", "Test Alipay Root")
	leaf := ca.issue("alipay", 123456789, time.Now().Add(time.Hour), false)
	sum := md5.Sum([]byte("CN=Test Alipay Root,O=Test Alipay,C=CN" + "123456789"))
	parsed, err := smx509.ParseCertificate(leaf.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := (alipayCert{leaf: parsed}).serialNumber(), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("SN %s, want %s", got, want)
	}
}

func TestCertificateAndKeysTogether(t *testing.T) {
	ca := newTestCA(t, "ca", "Test Alipay Root")
	v := &Verifier{
		AppIDs: []string{testAppID},
		KeySource: KeySource{
			AlipayPublicKeys: []string{testPublicKeyLine(t, "alipay2")},
			AlipayCerts:      []string{ca.write("leaf.crt", ca.issue("alipay", 3, time.Now().Add(time.Hour), false))},
		},
	}
	if err := v.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"alipay", "alipay2"} {
		body := encodeForm(signed(t, testKey(t, key), tradeParams(testAppID, time.Now()), false))
		if _, _, ref := v.check(context.Background(), []byte(body)); ref != nil {
			t.Errorf("signed by %s: refused: %s", key, ref.reason)
		}
	}
}
