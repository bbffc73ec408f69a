package testkit

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// CaddyBinary builds ./cmd/caddy (Caddy with the standard modules and the
// plugin) once per test binary, into a directory removed by Cleanup. -short
// skips the tests that need it.
func CaddyBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with the built binary")
	}
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caddy-alipay-notify-bin")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", binaryPath, "./cmd/caddy")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// Cleanup removes the binary CaddyBinary built; call it from TestMain.
func Cleanup() {
	if binaryPath != "" {
		os.RemoveAll(filepath.Dir(binaryPath))
	}
}

// FreePort returns a loopback address nothing listens on.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ClosedURL returns an http:// URL of a loopback port that nothing listens
// on any more: a connection there is refused.
func ClosedURL(t testing.TB) string {
	return "http://" + FreePort(t)
}

// Process is a child process whose output lines are collected.
type Process struct {
	Cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

// StartProcess runs cmd until the test ends, collecting stdout and stderr
// lines, and prints them when the test failed.
func StartProcess(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, added: make(chan struct{}, 1)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		scanner := bufio.NewScanner(stdout)
		scanner.Buffer(make([]byte, 64<<10), 1<<20)
		for scanner.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, scanner.Text())
			p.mu.Unlock()
			select {
			case p.added <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(cmd.Path), strings.Join(p.Output(), "\n"))
		}
	})
	return p
}

// Output returns the lines so far.
func (p *Process) Output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// WaitFor waits until a line containing want appears and returns it.
func (p *Process) WaitFor(t testing.TB, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, line := range p.Output() {
			if strings.Contains(line, want) {
				return line
			}
		}
		select {
		case <-p.added:
		case <-deadline:
			t.Fatalf("no line containing %q within %s", want, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Count returns how many lines contain want.
func (p *Process) Count(want string) int {
	n := 0
	for _, line := range p.Output() {
		if strings.Contains(line, want) {
			n++
		}
	}
	return n
}

// WaitListening waits until addr accepts TCP connections.
func WaitListening(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not start listening within %s", addr, timeout)
}

// RunCaddy starts the built binary on a Caddyfile, with its config and
// data directories in a temporary folder, and waits until listen accepts.
func RunCaddy(t testing.TB, caddyfile, listen string) *Process {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(CaddyBinary(t), "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "HOME="+dir)
	p := StartProcess(t, cmd)
	WaitListening(t, listen, 20*time.Second)
	return p
}

// Eventually polls cond every 10 ms until it holds, and fails the test when
// it still does not after within (a liveness bound, not a timing claim).
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
