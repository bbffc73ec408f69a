package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// The outbox, Antom and demo commands through the built binary; what each
// does in detail is tested in process in internal/cli.

func TestNewCommandsHelp(t *testing.T) {
	res := runTool(t, "", "--help").mustSucceed(t)
	if !strings.Contains(res.stdout, "  outbox ") {
		t.Errorf("alipay-notify --help does not list outbox:\n%s", res.stdout)
	}
	for _, args := range [][]string{{"outbox", "--help"}, {"outbox", "list", "--help"}, {"outbox", "replay", "--help"}, {"outbox", "drop", "--help"}} {
		help := runTool(t, "", args...).mustSucceed(t)
		if !strings.Contains(help.stdout, "caddy alipay-notify "+strings.Join(args[:len(args)-1], " ")) || !strings.Contains(help.stdout, "--address") {
			t.Errorf("%v:\n%s", args, help.stdout)
		}
	}
	for _, sub := range []string{"sign", "send", "verify"} {
		if help := runTool(t, "", sub, "--help").mustSucceed(t); !strings.Contains(help.stdout, "--antom") {
			t.Errorf("%s --help lacks --antom:\n%s", sub, help.stdout)
		}
	}
}

// TestOutboxThroughBinary: a Caddy with an outbox and a failing upstream;
// the outbox commands over its admin API, found by --address or CADDY_ADMIN.
func TestOutboxThroughBinary(t *testing.T) {
	failing := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusInternalServerError, 0))
	listen, admin := tk.FreePort(t), tk.FreePort(t)
	config := notifyCaddyfile(t, listen, admin, notifyRoute{"/alipay/notify", failing.URL + "/hooks", "outbox {\n\t\t\tretry 1h\n\t\t}"})
	tk.RunCaddy(t, config, listen)
	for _, id := range []string{"e2e-outbox-1", "e2e-outbox-2"} {
		if status, answer, _ := tk.Post(t, "http://"+listen+"/alipay/notify", tk.Genuine(t, id)); status != http.StatusBadGateway || answer != "fail" {
			t.Fatalf("%s: %d %s", id, status, answer)
		}
	}

	res := runTool(t, "", "outbox", "list", "--address", admin).mustSucceed(t)
	for _, want := range []string{"ID", "LAST ERROR", "e2e-outbox-1", "e2e-outbox-2", "pending", "2 entries: 2 pending"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, res.stdout)
		}
	}
	// CADDY_ADMIN, as caddy reload reads it; --json as the API answers.
	res = runToolEnv(t, []string{"CADDY_ADMIN=" + admin}, "", "outbox", "list", "--json", "--state", "pending").mustSucceed(t)
	var entries []struct {
		ID, State string
		Attempts  int
	}
	if err := json.Unmarshal([]byte(res.stdout), &entries); err != nil || len(entries) != 2 || entries[0].State != "pending" || entries[0].Attempts != 1 {
		t.Fatalf("--json: %v\n%s", err, res.stdout)
	}

	failing.Behave(tk.Status(http.StatusNoContent, 0))
	if res = runTool(t, "", "outbox", "replay", "e2e-outbox-1", "--address", admin).mustSucceed(t); res.stdout != "replayed 1 of 1 entry\n" {
		t.Errorf("replay: %q", res.stdout)
	}
	deadline := time.Now().Add(15 * time.Second)
	for failing.Count("e2e-outbox-1") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the replayed entry was not delivered")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res = runTool(t, "", "outbox", "drop", "e2e-outbox-2", "--address", admin).mustSucceed(t); res.stdout != "dropped e2e-outbox-2\n" {
		t.Errorf("drop: %q", res.stdout)
	}
	runTool(t, "", "outbox", "drop", "e2e-outbox-2", "--address", admin).mustFail(t, `Error: admin API: no outbox entry "e2e-outbox-2" (HTTP 404)`)
	runTool(t, "", "outbox", "replay", "--dead", "--address", admin).mustSucceed(t)

	// Nothing at the address: a clear error, exit status 1.
	free := tk.FreePort(t)
	res = runToolEnv(t, []string{"CADDY_ADMIN=" + free}, "", "outbox", "list").mustFail(t, "cannot reach Caddy's admin API at "+free)
	if res.code != 1 {
		t.Errorf("exit %d", res.code)
	}
}

// TestAntomThroughBinary: sign --antom piped to verify; send --antom to a
// running Caddy with an antom block.
func TestAntomThroughBinary(t *testing.T) {
	key, pub := tk.Testdata("keys", "alipay.key.pem"), tk.Testdata("keys", "alipay.pub.txt")
	request := runTool(t, "", "sign", "--antom", "--key", key, "--client-id", tk.AntomClient).mustSucceed(t).stdout
	if strings.HasSuffix(request, "\n") {
		t.Error("sign --antom printed a newline after the body on a pipe")
	}
	res := runTool(t, request, "verify", "--key", pub).mustSucceed(t)
	if !strings.Contains(res.stdout, "VERIFIED: key --key #1 (alipay.pub.txt)") {
		t.Errorf("verify:\n%s", res.stdout)
	}
	// A proxy appended a query: the diagnosis names it.
	res = runTool(t, strings.Replace(request, "POST /antom/notify", "POST /antom/notify?via=lb", 1), "verify", "--key", pub).mustFail(t, "does not verify as it is")
	if !strings.Contains(res.stdout, "likely cause:  the URI's query was not signed") {
		t.Errorf("verify:\n%s", res.stdout)
	}

	upstream := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusOK, 0))
	listen := tk.FreePort(t)
	tk.RunCaddy(t, fmt.Sprintf(`{
	admin off
	auto_https off
	default_bind 127.0.0.1
	persist_config off
}
http://%s {
	alipay_notify /antom/notify {
		antom %s {
			antom_public_key %s
		}
		forward %s/hooks
		webhook_secret %s
	}
}
`, listen, tk.AntomClient, pub, upstream.URL, tk.Secret), listen)
	url := "http://" + listen + "/antom/notify"
	res = runTool(t, "", "send", "--antom", "--key", key, "--client-id", tk.AntomClient, url).mustSucceed(t)
	if res.stdout != `200 {"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}`+"\n" {
		t.Errorf("stdout %q", res.stdout)
	}
	if got := upstream.Take(); len(got) != 1 || got[0].VerifyErr != nil || got[0].Event.Type != "antom.PAYMENT_RESULT" {
		t.Fatalf("upstream got %+v", got)
	}
	res = runTool(t, "", "send", "--antom", "--key", tk.Testdata("keys", "app.key.pem"), "--client-id", tk.AntomClient, url).mustFail(t, "alipay_notify refused the notification")
	if !strings.HasPrefix(res.stdout, "403 ") {
		t.Errorf("stdout %q", res.stdout)
	}
}

// TestDemoThroughBinary: the demo refuses a busy address, and after Ctrl-C
// leaves neither its temporary directory nor an autosave.json.
func TestDemoThroughBinary(t *testing.T) {
	bin := tk.CaddyBinary(t)
	home, tmp := t.TempDir(), t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_DATA_HOME="+filepath.Join(home, "data"), "TMPDIR="+tmp)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cmd := exec.Command(bin, "alipay-notify", "demo", "--listen", busy.Addr().String(), "--upstream", tk.FreePort(t))
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), busy.Addr().String()+" already answers") || !strings.Contains(string(out), "--listen") {
		t.Errorf("busy --listen: %v\n%s", err, out)
	}

	listen := tk.FreePort(t)
	cmd = exec.Command(bin, "alipay-notify", "demo", "--listen", listen, "--upstream", tk.FreePort(t))
	cmd.Env = env
	p := tk.StartProcess(t, cmd)
	p.WaitFor(t, "Ctrl-C stops the demo.", 30*time.Second)
	if status, answer, _ := tk.Post(t, "http://"+listen+"/alipay/notify", tk.Genuine(t, "e2e-demo-1")); status != http.StatusOK || answer != "success" {
		t.Errorf("own notification: %d %s", status, answer)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the demo exited with %v after Ctrl-C", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the demo did not stop on Ctrl-C")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
	// Neither autosave.json nor anything in Caddy's data directory.
	_ = filepath.WalkDir(home, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("the demo wrote %s", path)
		}
		return nil
	})
}
