package cli_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/caddy-alipay/caddy-alipay-notify" // the alipay_notify module the demo runs
	"github.com/caddy-alipay/caddy-alipay-notify/internal/cli"
	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/spf13/cobra"
)

// The demo runs Caddy in this process, as caddy alipay-notify demo does.

// isolate keeps the demo's files (the bodies it writes for curl, Caddy's
// autosaved configuration) in the test's directory.
func isolate(t *testing.T) {
	dir := t.TempDir()
	for _, env := range []string{"TMPDIR", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"} {
		t.Setenv(env, dir)
	}
}

// syncBuffer is written by the demo and its upstream at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func demo(ctx context.Context, out *syncBuffer, args ...string) error {
	root := &cobra.Command{Use: "alipay-notify", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(cli.Commands()...)
	root.SetArgs(append([]string{"demo"}, args...))
	root.SetOut(out)
	root.SetErr(out)
	return root.ExecuteContext(ctx)
}

func TestDemoSelfTest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	isolate(t)
	var out syncBuffer
	if err := demo(context.Background(), &out, "--self-test", "--listen", tk.FreePort(t), "--upstream", tk.FreePort(t)); err != nil {
		t.Fatalf("demo self-test: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"  real notification signed by Alipay         -> 200 success\n",
		"  same notification, total_amount changed    -> 403 fail\n",
		"upstream: webhook 2019081500222155624068450559358070 verified: ",
		"self-test passed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDemoRuns runs the demo until it is stopped, and sends it a
// notification of one's own, as its output suggests.
func TestDemoRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	isolate(t)
	listen := tk.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- demo(ctx, &out, "--listen", listen, "--upstream", tk.FreePort(t)) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops the demo.") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not start:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("the demo stopped: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !strings.Contains(out.String(), "curl -i --data-binary @") {
		t.Errorf("no curl commands:\n%s", out.String())
	}
	// A notification signed with the test key, for the demo's test app.
	res := sendTo(t, "http://"+listen+"/alipay/notify", tk.Genuine(t, "demo-own-1"))
	if res != "success" {
		t.Errorf("own notification answered %q", res)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not stop")
	}
	if !strings.Contains(out.String(), "webhook demo-own-1 verified") {
		t.Errorf("the upstream did not verify the own notification:\n%s", out.String())
	}
	// Stopped: nothing listens any more.
	if conn, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		conn.Close()
		t.Error("the demo still listens after it stopped")
	}
}

func TestDemoErrors(t *testing.T) {
	isolate(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var out syncBuffer
	if err := demo(context.Background(), &out, "--self-test", "--upstream", busy.Addr().String()); err == nil || !strings.Contains(err.Error(), "demo upstream: ") || !strings.Contains(err.Error(), "(choose another --upstream)") {
		t.Errorf("busy upstream address: %v", err)
	}
	if err := demo(context.Background(), &out, "--self-test", "--listen", "nohost", "--upstream", tk.FreePort(t)); err == nil || err.Error() != `--listen "nohost": want host:port` {
		t.Errorf("bad --listen: %v", err)
	}
	if err := demo(context.Background(), &out, "extra"); err == nil {
		t.Error("an argument accepted")
	}
}

func sendTo(t *testing.T, url, body string) string {
	t.Helper()
	resp, err := http.Post(url, "application/x-www-form-urlencoded; text/html; charset=UTF-8", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return string(answer)
}
