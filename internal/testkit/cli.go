package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SignedString returns the line after the first line of out starting with
// label: the signed string that sign --verbose and verify print under it.
func SignedString(t testing.TB, out, label string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, label) && i+1 < len(lines) {
			return lines[i+1]
		}
	}
	t.Fatalf("no %q in:\n%s", label, out)
	return ""
}

// WriteFile writes content to a file name in a temporary folder of the
// test's and returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// NotifyBlock is an alipay_notify handler block of a Caddyfile site, for
// the test app and key unless told otherwise.
type NotifyBlock struct {
	Path    string
	AppID   string // default AppID
	Key     string // alipay_public_key; default testdata/keys/alipay.pub.txt
	Forward string
	Secret  string // webhook_secret; default Secret
	Extra   string // more lines of the block, e.g. an outbox block
}

// String is the block, indented for a site block.
func (b NotifyBlock) String() string {
	appID, key, secret := b.AppID, b.Key, b.Secret
	if appID == "" {
		appID = AppID
	}
	if key == "" {
		key = Testdata("keys", "alipay.pub.txt")
	}
	if secret == "" {
		secret = Secret
	}
	var s strings.Builder
	fmt.Fprintf(&s, "\talipay_notify %s {\n\t\tapp_id %s\n\t\talipay_public_key %s\n\t\tforward %s\n\t\twebhook_secret %s\n", b.Path, appID, key, b.Forward, secret)
	if b.Extra != "" {
		for _, line := range strings.Split(b.Extra, "\n") {
			s.WriteString("\t\t" + line + "\n")
		}
	}
	s.WriteString("\t}\n")
	return s.String()
}
