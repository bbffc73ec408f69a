package alipay

import (
	"crypto/md5"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

func TestPublicKeyForms(t *testing.T) {
	dir := t.TempDir()
	pemText, err := os.ReadFile(testkit.Testdata("keys", "alipay.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	line := testkit.PublicKeyLine(t, "alipay")
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rsaKey := testkit.Key(t, "alipay")
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
			key, err := LoadPublicKey(value)
			if err != nil {
				t.Fatal(err)
			}
			if !rsaKey.PublicKey.Equal(key) {
				t.Fatal("parsed another key")
			}
		})
	}

	privatePEM, _ := os.ReadFile(testkit.Testdata("keys", "alipay.key.pem"))
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
			_, err := LoadPublicKey(value)
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

func TestCertificateSerialNumber(t *testing.T) {
	ca := testkit.NewCA(t, "ca", "Test Alipay Root")
	leaf := ca.Issue("alipay", 123456789, time.Now().Add(time.Hour), false)
	sum := md5.Sum([]byte("CN=Test Alipay Root,O=Test Alipay,C=CN" + "123456789"))
	parsed, err := smx509.ParseCertificate(leaf.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := (&Certificate{Leaf: parsed}).SerialNumber(), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("SN %s, want %s", got, want)
	}
}

func TestNewKeyRingForms(t *testing.T) {
	ca := testkit.NewCA(t, "ca", "Test Alipay Root")
	certPEM, err := os.ReadFile(ca.Write("leaf.crt", ca.Issue("alipay", 7, time.Now().Add(time.Hour), false)))
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := os.ReadFile(testkit.Testdata("keys", "alipay.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, testkit.Now()), false))
	for name, key := range map[string]string{
		"one line":        testkit.PublicKeyLine(t, "alipay"),
		"PEM public key":  string(pemKey),
		"PEM certificate": string(certPEM),
	} {
		t.Run(name, func(t *testing.T) {
			// The other test key first: rotation tries every key in order.
			ring, err := NewKeyRing(testkit.PublicKeyLine(t, "alipay2"), key)
			if err != nil {
				t.Fatal(err)
			}
			if _, m, err := verifyBody(ring, body); err != nil || m.Key != "key #2" {
				t.Fatalf("match %+v, %v", m, err)
			}
		})
	}
	if _, err := NewKeyRing("not a key"); err == nil || !strings.Contains(err.Error(), "key #1") {
		t.Errorf("NewKeyRing accepted garbage, or did not name it: %v", err)
	}
}
