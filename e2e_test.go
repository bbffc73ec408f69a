package alipaynotify

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

// These tests run the real binary built from ./cmd/caddy, as users run it.

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
	binaryDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// caddyBinary builds ./cmd/caddy once per test run.
func caddyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with the built binary")
	}
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "caddy-alipay-notify-e2e")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "caddy")
		out, err := exec.Command("go", "build", "-o", binaryPath, "./cmd/caddy").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a child process whose output lines are collected.
type process struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

// startProcess runs cmd until the test ends, collecting stdout and stderr lines.
func startProcess(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{cmd: cmd, added: make(chan struct{}, 1)}
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
			t.Logf("output of %s:\n%s", filepath.Base(cmd.Path), strings.Join(p.output(), "\n"))
		}
	})
	return p
}

func (p *process) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitFor waits until a line containing want appears and returns it.
func (p *process) waitFor(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, line := range p.output() {
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

// count returns how many lines contain want.
func (p *process) count(want string) int {
	n := 0
	for _, line := range p.output() {
		if strings.Contains(line, want) {
			n++
		}
	}
	return n
}

// waitListening waits until addr accepts TCP connections.
func waitListening(t *testing.T, addr string, timeout time.Duration) {
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

// runCaddy starts the built binary on a Caddyfile and waits for listen.
func runCaddy(t *testing.T, caddyfile, listen string) *process {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBinary(t), "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "HOME="+dir)
	p := startProcess(t, cmd)
	waitListening(t, listen, 20*time.Second)
	return p
}

// siteConfig is a Caddyfile serving alipay_notify on listen, forwarding to upstream.
func siteConfig(t *testing.T, listen, forward, secret string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	default_bind 127.0.0.1
}
http://%s {
	alipay_notify /alipay/notify {
		app_id %s
		alipay_public_key %s
		forward %s
		webhook_secret %s
	}
}
`, listen, testAppID, absTestdata(t, "keys", "alipay.pub.txt"), forward, secret)
}

func TestBinaryListsModule(t *testing.T) {
	out, err := exec.Command(caddyBinary(t), "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "http.handlers.alipay_notify") {
		t.Fatalf("list-modules lacks http.handlers.alipay_notify:\n%s", out)
	}
}

// TestDemo runs the README's first command in its self-test form.
func TestDemo(t *testing.T) {
	cmd := exec.Command(caddyBinary(t), "alipay-notify", "demo", "--self-test", "--listen", freePort(t), "--upstream", freePort(t))
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "self-test passed") {
		t.Fatalf("demo self-test: %v\n%s", err, out)
	}
	for _, want := range []string{"-> 200 success", "-> 403 fail", "webhook 2019081500222155624068450559358070 verified"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// TestValidateReportsLine checks that caddy validate and adapt --validate
// name the Caddyfile line of a configuration error.
func TestValidateReportsLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	config := siteConfig(t, "127.0.0.1:1", "http://127.0.0.1:2", "whsec_tooshort")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate", "--config", path}, {"adapt", "--validate", "--config", path}} {
		out, err := exec.Command(caddyBinary(t), args...).CombinedOutput()
		if err == nil {
			t.Fatalf("%v accepted a malformed secret", args)
		}
		if !strings.Contains(string(out), "webhook_secret #1") || !strings.Contains(string(out), "Caddyfile:11") {
			t.Errorf("%v: message lacks the subdirective or line:\n%s", args, out)
		}
	}
}

// TestNodeInterop puts the built plugin in front of examples/node, which
// verifies each webhook with the official npm package standardwebhooks.
func TestNodeInterop(t *testing.T) {
	caddyBinary(t)
	requireNodeModules(t)
	nodeAddr := freePort(t)
	_, nodePort, _ := net.SplitHostPort(nodeAddr)
	node := exec.Command("node", "server.js")
	node.Dir = filepath.Join("examples", "node")
	node.Env = append(os.Environ(), "WEBHOOK_SECRET="+testSecret, "PORT="+nodePort)
	receiver := startProcess(t, node)
	receiver.waitFor(t, "listening on", 20*time.Second)

	listen := freePort(t)
	runCaddy(t, siteConfig(t, listen, "http://"+nodeAddr+"/hooks/alipay", testSecret), listen)
	wrongListen := freePort(t)
	runCaddy(t, siteConfig(t, wrongListen, "http://"+nodeAddr+"/hooks/alipay", "whsec_"+strings.Repeat("WFla", 8)), wrongListen)

	params := signed(t, testKey(t, "alipay"), set(tradeParams(testAppID, time.Now()), "notify_id", "node-interop-1"), false)
	body := encodeForm(params)
	notifyURL := "http://" + listen + "/alipay/notify"
	if status, answer, _ := postNotification(t, notifyURL, body); status != 200 || answer != "success" {
		t.Fatalf("answer %d %q", status, answer)
	}
	receiver.waitFor(t, "accepted node-interop-1 alipay.trade_status_sync 20190815155618536-564-57 0.10 TRADE_SUCCESS", 5*time.Second)

	// Alipay's retry: the receiver recognises the webhook-id.
	if status, answer, _ := postNotification(t, notifyURL, body); status != 200 || answer != "success" {
		t.Fatalf("retry answer %d %q", status, answer)
	}
	receiver.waitFor(t, "duplicate node-interop-1", 5*time.Second)

	// A webhook signed with another secret is refused by the receiver, so
	// Alipay is answered fail and will retry.
	if status, answer, _ := postNotification(t, "http://"+wrongListen+"/alipay/notify", body); status != 502 || answer != "fail" {
		t.Fatalf("wrong secret: answer %d %q, want 502 fail", status, answer)
	}
	receiver.waitFor(t, "rejected node-interop-1 bad signature", 5*time.Second)

	// A forged notification never reaches the receiver.
	forged := encodeForm(set(params, "total_amount", "999.00"))
	if status, _, _ := postNotification(t, notifyURL, forged); status != 403 {
		t.Fatalf("forged: status %d", status)
	}
	if n := receiver.count("node-interop-1"); n != 3 {
		t.Errorf("receiver saw node-interop-1 %d times, want 3", n)
	}
}

// requireNodeModules installs examples/node's packages with npm ci when they
// are missing. Without Node the test is skipped, except in CI, which must run
// every test.
func requireNodeModules(t *testing.T) {
	t.Helper()
	dir := filepath.Join("examples", "node")
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
