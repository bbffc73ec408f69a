package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/spf13/cobra"
)

// These tests run the commands in process, as caddy alipay-notify runs
// them: a parent command, the arguments, stdin, and captured output.

type result struct {
	stdout, stderr string
	err            error
}

// run runs alipay-notify <args...> with stdin.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runWith(t, strings.NewReader(stdin), args...)
}

func runWith(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	stdout, stderr, err := Execute(stdin, args...)
	return result{stdout: stdout, stderr: stderr, err: err}
}

// Execute runs alipay-notify <args...> in process with stdin and returns
// what it printed; the tests of package cli_test run the commands with it
// too.
func Execute(stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	root := &cobra.Command{Use: "alipay-notify", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(Commands()...)
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func (r result) String() string {
	return "error: " + errString(r.err) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func (r result) mustSucceed(t *testing.T) result {
	t.Helper()
	if r.err != nil {
		t.Fatalf("want success, got %s", r)
	}
	return r
}

// mustFail fails the test unless the command failed with want in its error.
func (r result) mustFail(t *testing.T, want string) result {
	t.Helper()
	if r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Fatalf("want a failure mentioning %q, got %s", want, r)
	}
	return r
}

// unwrapped joins the lines of wrapped text, for substring checks.
func unwrapped(s string) string {
	return regexp.MustCompile(`\s+`).ReplaceAllString(s, " ")
}

func TestHelp(t *testing.T) {
	names := map[string]bool{}
	for _, cmd := range Commands() {
		names[cmd.Name()] = true
	}
	for _, sub := range []string{"demo", "keygen", "webhook-secret", "sign", "send", "verify", "outbox"} {
		if !names[sub] {
			t.Errorf("Commands() lacks %s", sub)
		}
		help := run(t, "", sub, "--help").mustSucceed(t)
		for _, want := range []string{"Usage:", "alipay-notify " + sub} {
			if !strings.Contains(help.stdout, want) {
				t.Errorf("%s --help lacks %q:\n%s", sub, want, help.stdout)
			}
		}
		if sub != "demo" && !strings.Contains(help.stdout, "Examples:\n  caddy alipay-notify "+sub) {
			t.Errorf("%s --help lacks examples:\n%s", sub, help.stdout)
		}
	}
	if len(names) != 7 {
		t.Errorf("%d commands, want 7", len(names))
	}
}

func TestReadInput(t *testing.T) {
	path := tk.WriteFile(t, "in", "from a file")
	for _, tc := range []struct{ path, want string }{{"-", "from stdin"}, {path, "from a file"}} {
		got, err := readInput(strings.NewReader("from stdin"), tc.path)
		if err != nil || string(got) != tc.want {
			t.Errorf("readInput(%q) = %q, %v", tc.path, got, err)
		}
	}
	if _, err := readInput(nil, "/nonexistent"); err == nil {
		t.Error("no error for a missing file")
	}
	big, err := readInput(io.MultiReader(strings.NewReader(strings.Repeat("x", maxInput)), strings.NewReader("more")), "-")
	if err != nil || len(big) != maxInput {
		t.Errorf("stdin not bounded: %d bytes, %v", len(big), err)
	}
}

func TestIsTerminal(t *testing.T) {
	devNull, err := os.Open(os.DevNull) // a character device, as a terminal is
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	file, err := os.Open(tk.WriteFile(t, "f", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if !isTerminal(devNull) || isTerminal(file) || isTerminal(&bytes.Buffer{}) {
		t.Error("isTerminal")
	}
}
