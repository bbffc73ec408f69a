// Package cli is the command line of the plugin: the subcommands of
// caddy alipay-notify (demo, keygen, webhook-secret, sign, send, verify,
// outbox), over the alipay and antom packages. The root package registers
// them with Caddy.
package cli

import (
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Commands returns the subcommands of caddy alipay-notify, new each time.
func Commands() []*cobra.Command {
	return []*cobra.Command{demoCommand(), keygenCommand(), webhookSecretCommand(), signCommand(), sendCommand(), verifyCommand(), outboxCommand()}
}

// The answers of alipay_notify: Alipay stops retrying on "success" only.
const (
	answerSuccess = "success"
	answerFail    = "fail"
)

// maxInput bounds what a command reads from stdin.
const maxInput = 16 << 20

// readInput reads the file at path, or stdin when path is "-" (the
// --json, --body and verify's capture arguments).
func readInput(stdin io.Reader, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(stdin, maxInput))
	}
	return os.ReadFile(path)
}

// isTerminal reports whether stdin or stdout is a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
