package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// TestDemoEmbedsTestdata keeps the demo's copies of the vectors and the
// test key equal to testdata's.
func TestDemoEmbedsTestdata(t *testing.T) {
	for _, tc := range []struct {
		embedded []byte
		path     string
	}{
		{demoVector, tk.Testdata("vectors", "trade-rsa2-production.json")},
		{demoForgedVector, tk.Testdata("vectors", "trade-rsa2-production-tampered-amount.json")},
		{[]byte(demoTestKey), tk.Testdata("keys", "alipay.pub.txt")},
	} {
		want, err := os.ReadFile(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if string(tc.embedded) != string(want) {
			t.Errorf("the demo's copy of %s differs: copy it into internal/cli/demo/ again", tc.path)
		}
	}
}

func TestDemoConfig(t *testing.T) {
	config, err := demoConfig("127.0.0.2:9000", "127.0.0.3:9001")
	if err != nil {
		t.Fatal(err)
	}
	vec := tk.LoadVector(t, "trade-rsa2-production.json")
	for _, want := range []string{
		"default_bind 127.0.0.2\n", "http://127.0.0.2:9000 {", "forward http://127.0.0.3:9001/hooks/alipay",
		"alipay_public_key " + vec.Key.AlipayPublicKey + "\n", "alipay_public_key " + tk.PublicKeyLine(t, "alipay") + "\n",
		"webhook_secret " + demoSecret + "\n", "\tpersist_config off\n", "\tstorage_check off\n", "\tstorage_clean_interval off\n",
	} {
		if !strings.Contains(config, want) {
			t.Errorf("demo configuration lacks %q:\n%s", want, config)
		}
	}
	if strings.Contains(config, "{{") {
		t.Errorf("a placeholder is left:\n%s", config)
	}
	if _, err := demoConfig("no-port", "127.0.0.1:1"); err == nil || err.Error() != `--listen "no-port": want host:port` {
		t.Errorf("bad --listen: %v", err)
	}
}

func TestWriteDemoBodies(t *testing.T) {
	dir := t.TempDir()
	paths, err := writeDemoBodies(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"trade-rsa2-production", "trade-rsa2-production-tampered-amount"} {
		want := tk.LoadVector(t, name+".json").Body
		if got, err := os.ReadFile(paths[i]); err != nil || string(got) != want || paths[i] != filepath.Join(dir, name+".body") {
			t.Errorf("%s: %q, %v", paths[i], got, err)
		}
	}
}

func TestCheckAddressFree(t *testing.T) {
	if err := checkAddressFree(tk.FreePort(t), "--listen", "x"); err != nil {
		t.Errorf("a free address: %v", err)
	}
	if err := checkAddressFree("no-such-host.invalid:80", "--listen", "x"); err != nil {
		t.Errorf("an address that does not resolve: %v (the listen error comes later)", err)
	}
}
