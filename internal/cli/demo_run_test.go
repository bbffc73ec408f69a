package cli_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/caddy-alipay/caddy-alipay-notify" // the alipay_notify module the demo runs
	"github.com/caddy-alipay/caddy-alipay-notify/internal/cli"
	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/spf13/cobra"
)

// The demo runs Caddy in this process, as caddy alipay-notify demo does.

// startsCaddy skips the test under -short and isolates its files.
func startsCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	isolate(t)
}

// isolate keeps the demo's files (the bodies it writes for curl, Caddy's
// autosaved configuration) in the test's directory.
func isolate(t *testing.T) {
	dir := t.TempDir()
	for _, env := range []string{"TMPDIR", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"} {
		t.Setenv(env, dir)
	}
}

func demo(ctx context.Context, out *tk.SyncBuffer, args ...string) error {
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
	isolateTemp(t)
	var out tk.SyncBuffer
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
	tmp := isolateTemp(t)
	listen := tk.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out tk.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- demo(ctx, &out, "--listen", listen, "--upstream", tk.FreePort(t)) }()
	waitForOutput(t, &out, done, "Ctrl-C stops the demo.")
	if !strings.Contains(out.String(), "curl -i --data-binary @") {
		t.Errorf("no curl commands:\n%s", out.String())
	}
	// A notification signed with the test key, for the demo's test app.
	_, res, _ := tk.Post(t, "http://"+listen+"/alipay/notify", tk.Genuine(t, "demo-own-1"))
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
	assertEmpty(t, tmp)
	assertNoAutosave(t)
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
	var out tk.SyncBuffer
	if err := demo(context.Background(), &out, "--self-test", "--upstream", "127.0.0.1:1", "--listen", "127.0.0.1:1"); err == nil || err.Error() != "--listen and --upstream are both 127.0.0.1:1: give them different addresses" {
		t.Errorf("the same address twice: %v", err)
	}
	if err := demo(context.Background(), &out, "--self-test", "--listen", "nohost", "--upstream", tk.FreePort(t)); err == nil || err.Error() != `--listen "nohost": want host:port` {
		t.Errorf("bad --listen: %v", err)
	}
	if err := demo(context.Background(), &out, "extra"); err == nil {
		t.Error("an argument accepted")
	}
}

// TestDemoRefusesBusyAddress: Caddy listens with SO_REUSEPORT and would
// share a port with another server (another Caddy), so a walk-through's
// send could land on the other one. The demo refuses to start instead,
// naming the address and the flag that changes it.
func TestDemoRefusesBusyAddress(t *testing.T) {
	tmp := isolateTemp(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, flag := range []string{"--listen", "--upstream"} {
		other := "--upstream"
		if flag == "--upstream" {
			other = "--listen"
		}
		var out tk.SyncBuffer
		err := demo(context.Background(), &out, "--self-test", flag, addr, other, tk.FreePort(t))
		if err == nil {
			t.Fatalf("%s %s: the demo started on a busy address:\n%s", flag, addr, out.String())
		}
		for _, want := range []string{addr + " already answers", "choose a free address with " + flag} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", flag, want, err)
			}
		}
		if out.String() != "" {
			t.Errorf("%s: the demo printed before refusing:\n%s", flag, out.String())
		}
	}
	assertEmpty(t, tmp)
}

// isolateTemp is isolate, with TMPDIR a directory of its own (returned)
// and Caddy's autosave path under the test's XDG_CONFIG_HOME (Caddy
// computes it once, at start).
func isolateTemp(t *testing.T) string {
	isolate(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	saved := caddy.ConfigAutosavePath
	caddy.ConfigAutosavePath = filepath.Join(caddy.AppConfigDir(), "autosave.json")
	t.Cleanup(func() { caddy.ConfigAutosavePath = saved })
	if !strings.HasPrefix(caddy.ConfigAutosavePath, os.Getenv("XDG_CONFIG_HOME")) {
		t.Fatalf("autosave path %s outside the test's XDG_CONFIG_HOME", caddy.ConfigAutosavePath)
	}
	return tmp
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in %s: %s", dir, e.Name())
	}
}

// assertNoAutosave checks that Caddy's autosave.json was not written, and
// that nothing was written under HOME, XDG_CONFIG_HOME and XDG_DATA_HOME
// (Caddy's data directory: instance.uuid, last_clean.json, locks).
func assertNoAutosave(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(caddy.ConfigAutosavePath); err == nil {
		t.Errorf("the demo wrote %s", caddy.ConfigAutosavePath)
	}
	for _, env := range []string{"HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"} {
		_ = filepath.WalkDir(os.Getenv(env), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				t.Errorf("the demo wrote %s", path)
			}
			return nil
		})
	}
}

// TestDemoLeavesNothing: no autosave.json, no temporary directory, after a
// self-test, after a stop, and after Ctrl-C.
func TestDemoLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	t.Run("self-test", func(t *testing.T) {
		tmp := isolateTemp(t)
		var out tk.SyncBuffer
		if err := demo(context.Background(), &out, "--self-test", "--listen", tk.FreePort(t), "--upstream", tk.FreePort(t)); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		assertEmpty(t, tmp)
		assertNoAutosave(t)
	})
	t.Run("Ctrl-C", func(t *testing.T) {
		tmp := isolateTemp(t)
		var out tk.SyncBuffer
		done := make(chan error, 1)
		go func() {
			done <- demo(context.Background(), &out, "--listen", tk.FreePort(t), "--upstream", tk.FreePort(t))
		}()
		waitForOutput(t, &out, done, "Ctrl-C stops the demo.")
		bodies, _ := os.ReadDir(tmp)
		if len(bodies) != 1 || !strings.HasPrefix(bodies[0].Name(), "caddy-alipay-notify-demo-") {
			t.Errorf("while it runs, %s holds %v, want the demo's directory", tmp, bodies)
		}
		// The demo listens for SIGINT now: the signal goes to it, not to
		// the default handler that would end the test binary.
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the demo did not stop on SIGINT")
		}
		assertEmpty(t, tmp)
		assertNoAutosave(t)
	})
}

// waitForOutput waits until the demo printed want.
func waitForOutput(t *testing.T, out *tk.SyncBuffer, done <-chan error, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not print %q:\n%s", want, out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("the demo stopped: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
