package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	tk.Cleanup()
	os.Exit(code)
}

// toolResult is what one run of the binary printed.
type toolResult struct {
	stdout, stderr string
	code           int
}

// runTool runs caddy alipay-notify <args...> with stdin, its config and
// data directories in a temporary folder.
func runTool(t *testing.T, stdin string, args ...string) toolResult {
	t.Helper()
	return runToolEnv(t, nil, stdin, args...)
}

// runToolEnv is runTool with extra environment variables.
func runToolEnv(t *testing.T, env []string, stdin string, args ...string) toolResult {
	t.Helper()
	cmd := exec.Command(tk.CaddyBinary(t), append([]string{"alipay-notify"}, args...)...)
	dir := t.TempDir()
	cmd.Env = append(append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return toolResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func (r toolResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// mustSucceed fails the test unless the run exited 0.
func (r toolResult) mustSucceed(t *testing.T) toolResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("want exit 0, got %s", r)
	}
	return r
}

// mustFail fails the test unless the run exited non-zero with want on stderr.
func (r toolResult) mustFail(t *testing.T, want string) toolResult {
	t.Helper()
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("want a failure mentioning %q, got %s", want, r)
	}
	return r
}

// siteConfig is a Caddyfile serving alipay_notify on listen, forwarding to
// forward, for the test app and key.
func siteConfig(listen, forward, secret string) string {
	return adminOffSite(listen, tk.NotifyBlock{Path: "/alipay/notify", Forward: forward, Secret: secret})
}

// adminOffSite is a Caddyfile without admin API serving the alipay_notify
// blocks on listen.
func adminOffSite(listen string, blocks ...tk.NotifyBlock) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n}\nhttp://%s {\n", listen)
	for _, block := range blocks {
		b.WriteString(block.String())
	}
	b.WriteString("}\n")
	return b.String()
}

// examples is the path of a directory of examples/.
func examples(name string) string {
	return filepath.Join(tk.Root(), "examples", name)
}

// requireNodeModules installs examples/node's packages with npm ci when they
// are missing. Without Node the test is skipped, except in CI, which must run
// every test.
func requireNodeModules(t *testing.T) {
	t.Helper()
	dir := examples("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err == nil {
		return
	}
	skipOrFail := t.Skipf
	if os.Getenv("CI") != "" {
		skipOrFail = t.Fatalf
	}
	if _, err := exec.LookPath("npm"); err != nil {
		skipOrFail("Node interop test needs node and npm: %v", err)
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		skipOrFail("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// requireRuntime skips the test when a command is missing, except in CI,
// which must run every example.
func requireRuntime(t *testing.T, what string, commands ...string) {
	t.Helper()
	for _, name := range commands {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("this example's test needs %s: %v (install it in .ci/run)", what, err)
			}
			t.Skipf("this example's test needs %s: %v", what, err)
		}
	}
}
