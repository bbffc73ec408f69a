package alipaynotify

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestCertificateMode(t *testing.T) {
	ca := testkit.NewCA(t, "ca", "Test Alipay Root")
	future := time.Now().Add(365 * 24 * time.Hour)
	// A second CA whose intermediate signs the leaf, as Alipay's Class 2 CA does.
	intermediateCA := ca.Intermediate("alipay2", 2, future)

	// An unparseable certificate in the root file stands for Alipay's SM2 root.
	sm2Standin := "-----BEGIN CERTIFICATE-----\nMIIBszCCAVegAwIBAgIIaeL+wBcKxnswDAYIKoEcz1UBg3UFADAuMQswCQYDVQQG\n-----END CERTIFICATE-----\n"
	rootFile := ca.Write("alipayRootCert.crt", ca.Root)
	rootData, _ := os.ReadFile(rootFile)
	if err := os.WriteFile(rootFile, append([]byte(sm2Standin), rootData...), 0o600); err != nil {
		t.Fatal(err)
	}
	otherRoot := testkit.NewCA(t, "app", "Not Alipay Root")

	signedBody := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false))
	tests := []struct {
		name      string
		cert      string
		root      string
		wantErr   string
		wantWarn  bool
		wantLabel string
	}{
		{name: "leaf signed by root", cert: ca.Write("direct.crt", ca.Issue("alipay", 10, future, false)), root: rootFile},
		{name: "leaf with intermediate", cert: ca.Write("chain.crt", intermediateCA.Issue("alipay", 11, future, false), intermediateCA.Root), root: rootFile},
		{name: "no root check", cert: ca.Write("noroot.crt", otherRoot.Issue("alipay", 12, future, false))},
		{name: "expired leaf still used", cert: ca.Write("expired.crt", ca.Issue("alipay", 13, time.Now().Add(-24*time.Hour), false)), root: rootFile, wantWarn: true},
		{name: "wrong root", cert: ca.Write("wrong.crt", otherRoot.Issue("alipay", 14, future, false)), root: rootFile, wantErr: "not signed by any certificate of alipay_root_cert"},
		{name: "intermediate missing", cert: ca.Write("orphan.crt", intermediateCA.Issue("alipay", 15, future, false)), root: rootFile, wantErr: "not signed"},
		{name: "not a certificate", cert: testkit.Testdata("keys", "alipay.pub.pem"), wantErr: "no PEM CERTIFICATE"},
		{name: "missing file", cert: filepath.Join(ca.Dir(), "missing.crt"), wantErr: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			v := &Verifier{AppIDs: []string{testkit.AppID}, KeySource: KeySource{AlipayCerts: []string{tc.cert}, AlipayRootCert: tc.root}}
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
			res, ref := v.check(context.Background(), []byte(signedBody))
			if ref != nil {
				t.Fatalf("refused: %s", ref.reason)
			}
			if !strings.HasPrefix(res.match.Key, "alipay_cert #1 (SN ") {
				t.Errorf("key label %q", res.match.Key)
			}
			forged := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "app"), testkit.TradeParams(testkit.AppID, time.Now()), false))
			if _, ref := v.check(context.Background(), []byte(forged)); ref == nil || ref.status != http.StatusForbidden {
				t.Fatalf("forged notification: want 403, got %+v", ref)
			}
		})
	}
}

func TestCertificateAndKeysTogether(t *testing.T) {
	ca := testkit.NewCA(t, "ca", "Test Alipay Root")
	v := &Verifier{
		AppIDs: []string{testkit.AppID},
		KeySource: KeySource{
			AlipayPublicKeys: []string{testkit.PublicKeyLine(t, "alipay2")},
			AlipayCerts:      []string{ca.Write("leaf.crt", ca.Issue("alipay", 3, time.Now().Add(time.Hour), false))},
		},
	}
	if err := v.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"alipay", "alipay2"} {
		body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, key), testkit.TradeParams(testkit.AppID, time.Now()), false))
		if _, ref := v.check(context.Background(), []byte(body)); ref != nil {
			t.Errorf("signed by %s: refused: %s", key, ref.reason)
		}
	}
}
