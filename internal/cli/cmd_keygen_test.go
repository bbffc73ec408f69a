package cli

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
)

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys") // created
	res := run(t, "", "keygen", "--dir", dir).mustSucceed(t)
	keyFile, pubTxt, pubPEM := filepath.Join(dir, "alipay-test.key.pem"), filepath.Join(dir, "alipay-test.pub.txt"), filepath.Join(dir, "alipay-test.pub.pem")
	for _, want := range []string{"alipay_public_key " + pubTxt, "send --key " + keyFile + " --app-id <one of your app_id>", pubPEM} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("keygen output lacks %q:\n%s", want, res.stdout)
		}
	}

	// The three files hold one key pair, in the announced forms.
	private, err := alipay.LoadPrivateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if private.N.BitLen() != 2048 {
		t.Errorf("key size %d, want 2048", private.N.BitLen())
	}
	keyPEM, _ := os.ReadFile(keyFile)
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("private key is not PKCS#8 PEM:\n%s", keyPEM)
	}
	for path, mode := range map[string]os.FileMode{keyFile: 0o600, pubTxt: 0o644, pubPEM: 0o644} {
		if st, _ := os.Stat(path); st.Mode().Perm() != mode&^umask() {
			t.Errorf("%s mode %v, want %v", path, st.Mode().Perm(), mode)
		}
	}
	line, _ := os.ReadFile(pubTxt)
	if n := strings.Count(strings.TrimSpace(string(line)), "\n"); n != 0 || strings.HasPrefix(string(line), "-----") {
		t.Errorf("pub.txt is not one line of base64:\n%s", line)
	}
	for _, path := range []string{pubTxt, pubPEM} {
		pub, err := alipay.LoadPublicKey(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !private.PublicKey.Equal(pub) {
			t.Errorf("%s is not the private key's public key", path)
		}
	}

	// No overwriting without --force, whichever file exists.
	before, _ := os.ReadFile(keyFile)
	run(t, "", "keygen", "--dir", dir).mustFail(t, keyFile+" already exists: not overwriting it (--force overwrites, --dir or --prefix writes elsewhere)")
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	run(t, "", "keygen", "--dir", dir).mustFail(t, pubTxt+" already exists")
	run(t, "", "keygen", "--dir", dir, "--force").mustSucceed(t)
	if after, _ := os.ReadFile(keyFile); bytes.Equal(before, after) {
		t.Fatal("keygen --force did not write a new key")
	}
	// Another prefix writes beside them.
	run(t, "", "keygen", "--dir", dir, "--prefix", "sandbox").mustSucceed(t)
	if _, err := os.Stat(filepath.Join(dir, "sandbox.pub.pem")); err != nil {
		t.Error(err)
	}
}

func umask() os.FileMode {
	dir, err := os.MkdirTemp("", "umask")
	if err != nil {
		return 0
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, nil, 0o777); err != nil {
		return 0
	}
	st, _ := os.Stat(path)
	return 0o777 &^ st.Mode().Perm()
}

func TestKeygenErrors(t *testing.T) {
	file := tk.WriteFile(t, "file", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keygen", "--prefix", ""}, `--prefix "": want a file name prefix without a directory (use --dir)`},
		{[]string{"keygen", "--prefix", "a/b"}, `--prefix "a/b"`},
		{[]string{"keygen", "--prefix", `a\b`}, `--prefix "a\\b"`},
		{[]string{"keygen", "extra"}, `unknown command "extra"`},
		{[]string{"keygen", "--dir", filepath.Join(file, "sub")}, "not a directory"},
		{[]string{"keygen", "--dir", file, "--force"}, "--dir: mkdir"},
	} {
		run(t, "", tc.args...).mustFail(t, tc.want)
	}
}

func TestWebhookSecret(t *testing.T) {
	first := run(t, "", "webhook-secret").mustSucceed(t).stdout
	second := run(t, "", "webhook-secret").mustSucceed(t).stdout
	if !regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=\n$`).MatchString(first) || first == second {
		t.Fatalf("secrets %q, %q", first, second)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(first), "whsec_"))
	if err != nil || len(key) != 32 {
		t.Fatalf("%q decodes to %d bytes: %v", first, len(key), err)
	}
	run(t, "", "webhook-secret", "x").mustFail(t, "unknown command")
}
