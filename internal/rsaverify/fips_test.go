package rsaverify

import (
	"crypto"
	"crypto/fips140"
	"crypto/rsa"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestFIPS140Only runs the test binary again with GODEBUG=fips140=only, in
// which crypto/rsa refuses keys under 2048 bits, of an odd size or with
// e ≤ 2¹⁶, and SHA-1, on every call unless the goroutine is inside
// fips140.WithoutEnforcement. The child checks that New and the verdicts
// follow.
func TestFIPS140Only(t *testing.T) {
	if os.Getenv("RSAVERIFY_FIPS_CHILD") == "1" {
		fipsChild(t)
		return
	}
	if testing.Short() {
		t.Skip("runs the test binary again")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPS140Only$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=only", "RSAVERIFY_FIPS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFIPS140Only") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func fipsChild(t *testing.T) {
	if !fips140.Enforced() {
		t.Fatal("the child is not in FIPS 140-only mode")
	}
	for _, c := range []struct {
		spec     keySpec
		approved bool
	}{
		{keySpec{2048, 65537}, true},
		{keySpec{3072, maxE}, true},
		{keySpec{4096, 65537}, true},
		{keySpec{2048, 3}, false},     // e ≤ 2¹⁶
		{keySpec{2047, 65537}, false}, // odd size
		{keySpec{1024, 65537}, false}, // under 2048 bits
		{keySpec{1025, 65537}, false}, // both
		{keySpec{4096, 3}, false},     // e ≤ 2¹⁶
	} {
		tk := key(t, c.spec)
		err := rsa.VerifyPKCS1v15(tk.pub, crypto.SHA256, make([]byte, 32), make([]byte, tk.size))
		if errors.Is(err, rsa.ErrVerification) != c.approved {
			t.Fatalf("%s: crypto/rsa: %v, the test expects approved = %v", tk.name, err, c.approved)
		}
		pk, nerr := New(tk.pub)
		if (nerr == nil) != c.approved {
			t.Errorf("%s: New: %v; crypto/rsa: %v", tk.name, nerr, err)
		}
		// Loaded inside WithoutEnforcement, every key is accepted; then
		// the verdicts follow crypto/rsa's inside and outside.
		fips140.WithoutEnforcement(func() { pk, nerr = New(tk.pub) })
		if nerr != nil {
			t.Fatalf("%s: New without enforcement: %v", tk.name, nerr)
		}
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
			var digest []byte // sha1 panics in FIPS 140-only mode
			fips140.WithoutEnforcement(func() { digest = hashOf(h, []byte("fips "+tk.name)) })
			sig, _ := signEM(tk, encode(tk.size, h, digest))
			p := pair{h, digest}
			v := agree(t, tk, pk, h.String()+" enforced", sig, true, p)
			if want := c.approved && h == crypto.SHA256; v[0] != want {
				t.Errorf("%s %v: crypto/rsa's verdict %v, the test expects %v", tk.name, h, v[0], want)
			}
			fips140.WithoutEnforcement(func() {
				if v := agree(t, tk, pk, h.String()+" without enforcement", sig, true, p); !v[0] {
					t.Errorf("%s %v: crypto/rsa refuses without enforcement", tk.name, h)
				}
			})
			sig[len(sig)/2] ^= 0x40
			agree(t, tk, pk, h.String()+" changed", sig, true, p)
		}
	}
}
