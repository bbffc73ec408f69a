package testkit

import (
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
