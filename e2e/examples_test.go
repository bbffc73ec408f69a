package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// These tests put the built plugin in front of each example receiver in
// examples/ and drive it with caddy alipay-notify send, as a developer
// would: a key pair from keygen, a secret from webhook-secret, a body from
// sign. Each receiver must accept a new notification (Alipay is answered
// success), recognise Alipay's retry as a duplicate (still success), and
// refuse a webhook signed with another secret (Alipay is answered 502 fail).
// It must also accept an Antom notification (send --antom), whose webhook's
// data is Antom's nested JSON, and recognise its retry.
//
// A language whose runtime is missing is skipped locally and fails in CI
// (env CI set), which must install it (see .ci/run).

func TestExampleNode(t *testing.T) {
	tk.CaddyBinary(t)
	requireNodeModules(t)
	cmd := exec.Command("node", "server.js")
	cmd.Dir = examples("node")
	testExampleReceiver(t, "node", cmd, 20*time.Second)
}

func TestExampleGo(t *testing.T) {
	tk.CaddyBinary(t)
	bin := filepath.Join(t.TempDir(), "receiver")
	build := exec.Command("go", "build", "-o", bin, "./examples/go")
	build.Dir = tk.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/go: %v\n%s", err, out)
	}
	testExampleReceiver(t, "go", exec.Command(bin), 20*time.Second)
}

func TestExamplePython(t *testing.T) {
	tk.CaddyBinary(t)
	requireRuntime(t, "python3", "python3")
	cmd := exec.Command("python3", "receiver.py")
	cmd.Dir = examples("python")
	testExampleReceiver(t, "python", cmd, 20*time.Second)
}

func TestExamplePHP(t *testing.T) {
	tk.CaddyBinary(t)
	requireRuntime(t, "php-cli", "php", "bash")
	cmd := exec.Command("bash", "run.sh")
	cmd.Dir = examples("php")
	cmd.Env = append(os.Environ(), "SEEN_DIR="+t.TempDir())
	testExampleReceiver(t, "php", cmd, 20*time.Second)
}

func TestExampleJava(t *testing.T) {
	tk.CaddyBinary(t)
	// java Receiver.java compiles the source at startup: it needs a JDK
	// (javac's module), not only a JRE.
	requireRuntime(t, "a JDK (openjdk-17-jdk-headless)", "java", "javac")
	cmd := exec.Command("java", "Receiver.java")
	cmd.Dir = examples("java")
	testExampleReceiver(t, "java", cmd, 60*time.Second)
}

// testExampleReceiver runs one receiver behind the built plugin and drives
// it with the command line tools.
func testExampleReceiver(t *testing.T, lang string, cmd *exec.Cmd, startup time.Duration) {
	dir := t.TempDir()
	runTool(t, "", "keygen", "--dir", dir).mustSucceed(t)
	key, pub := filepath.Join(dir, "alipay-test.key.pem"), filepath.Join(dir, "alipay-test.pub.txt")
	secret := strings.TrimSpace(runTool(t, "", "webhook-secret").mustSucceed(t).stdout)
	otherSecret := strings.TrimSpace(runTool(t, "", "webhook-secret").mustSucceed(t).stdout)

	receiverAddr := tk.FreePort(t)
	_, port, _ := net.SplitHostPort(receiverAddr)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "WEBHOOK_SECRET="+secret, "PORT="+port)
	receiver := tk.StartProcess(t, cmd)
	receiver.WaitFor(t, "listening on 127.0.0.1:"+port, startup)

	// One site: /alipay/notify signs webhooks with the receiver's secret and
	// verifies Antom's notifications too, /wrong/notify signs with another
	// secret.
	listen := tk.FreePort(t)
	forward := "http://" + receiverAddr + "/hooks/alipay"
	tk.RunCaddy(t, fmt.Sprintf(`{
	admin off
	auto_https off
	default_bind 127.0.0.1
}
http://%[1]s {
	alipay_notify /alipay/notify {
		app_id %[2]s
		alipay_public_key %[3]s
		antom %[7]s {
			antom_public_key %[8]s
		}
		forward %[4]s
		webhook_secret %[5]s
	}
	alipay_notify /wrong/notify {
		app_id %[2]s
		alipay_public_key %[3]s
		forward %[4]s
		webhook_secret %[6]s
	}
}
`, listen, tk.AppID, pub, forward, secret, otherSecret, tk.AntomClient, tk.Testdata("keys", "alipay.pub.txt")), listen)
	notifyURL, wrongURL := "http://"+listen+"/alipay/notify", "http://"+listen+"/wrong/notify"

	id := "example-" + lang + "-1"
	body := runTool(t, "", "sign", "--key", key, "--app-id", tk.AppID,
		"notify_id="+id, "out_trade_no=order-"+lang, "total_amount=88.80", "subject=测试商品 "+lang).mustSucceed(t).stdout
	bodyFile := tk.WriteFile(t, "body", body)

	// A new notification: processed, success.
	if res := runTool(t, "", "send", "--body", bodyFile, notifyURL).mustSucceed(t); res.stdout != "200 success\n" {
		t.Fatalf("first delivery: %s", res)
	}
	receiver.WaitFor(t, "accepted "+id+" alipay.trade_status_sync order-"+lang+" 88.80 TRADE_SUCCESS", 10*time.Second)

	// Alipay's retry, the same body: a duplicate, still success.
	if res := runTool(t, "", "send", "--body", bodyFile, notifyURL).mustSucceed(t); res.stdout != "200 success\n" {
		t.Fatalf("retry: %s", res)
	}
	receiver.WaitFor(t, "duplicate "+id, 10*time.Second)

	// A webhook signed with another secret: refused by the receiver, so
	// Alipay is answered 502 fail and retries.
	if res := runTool(t, "", "send", "--body", bodyFile, wrongURL).mustFail(t, "upstream"); res.stdout != "502 fail\n" {
		t.Fatalf("wrong secret: %s", res)
	}
	receiver.WaitFor(t, "rejected "+id+" bad signature", 10*time.Second)
	if n := receiver.Count(id); n != 3 {
		t.Errorf("the receiver logged %s %d times, want 3:\n%s", id, n, strings.Join(receiver.Output(), "\n"))
	}

	// A GBK notification signed and sent in one go: the receiver gets UTF-8
	// JSON and verifies its HMAC over the raw bytes.
	gbkID := "example-" + lang + "-gbk"
	if res := runTool(t, "", "send", "--key", key, "--app-id", tk.AppID, "--charset", "gbk", notifyURL,
		"notify_id="+gbkID, "out_trade_no=订单-"+lang, "total_amount=0.01", "trade_status=TRADE_FINISHED").mustSucceed(t); res.stdout != "200 success\n" {
		t.Fatalf("GBK notification: %s", res)
	}
	receiver.WaitFor(t, "accepted "+gbkID+" alipay.trade_status_sync 订单-"+lang+" 0.01 TRADE_FINISHED", 10*time.Second)

	// An Antom notification to the same endpoint: the webhook's data is the
	// posted JSON object, nested (paymentAmount.value, result.resultStatus).
	// send --antom signs a fresh Request-Time each time, and without --body
	// a new random paymentRequestId; a --body file keeps the body, hence the
	// webhook-id (antom_ + the first 32 hex digits of its SHA-256), as
	// Antom's retries do: the second delivery is a duplicate.
	antomBody := tk.AntomPayment("PAY_example-"+lang, time.Now())
	antomFile := tk.WriteFile(t, "antom.json", string(antomBody))
	sum := sha256.Sum256(antomBody)
	antomID := "antom_" + hex.EncodeToString(sum[:16])
	for _, want := range []string{
		"accepted " + antomID + " antom.PAYMENT_RESULT PAY_example-" + lang + " 100 S",
		"duplicate " + antomID,
	} {
		res := runTool(t, "", "send", "--antom", "--key", tk.Testdata("keys", "alipay.key.pem"), "--client-id", tk.AntomClient,
			"--body", antomFile, notifyURL).mustSucceed(t)
		if res.stdout != `200 {"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}`+"\n" {
			t.Fatalf("Antom notification: %s", res)
		}
		receiver.WaitFor(t, want, 10*time.Second)
	}
	if n := receiver.Count(antomID); n != 2 {
		t.Errorf("the receiver logged %s %d times, want 2:\n%s", antomID, n, strings.Join(receiver.Output(), "\n"))
	}
}

// TestNodeInterop puts the built plugin in front of examples/node, which
// verifies each webhook with the official npm package standardwebhooks.
func TestNodeInterop(t *testing.T) {
	tk.CaddyBinary(t)
	requireNodeModules(t)
	nodeAddr := tk.FreePort(t)
	_, nodePort, _ := net.SplitHostPort(nodeAddr)
	node := exec.Command("node", "server.js")
	node.Dir = examples("node")
	node.Env = append(os.Environ(), "WEBHOOK_SECRET="+tk.Secret, "PORT="+nodePort)
	receiver := tk.StartProcess(t, node)
	receiver.WaitFor(t, "listening on", 20*time.Second)

	listen := tk.FreePort(t)
	tk.RunCaddy(t, siteConfig(listen, "http://"+nodeAddr+"/hooks/alipay", tk.Secret), listen)
	wrongListen := tk.FreePort(t)
	tk.RunCaddy(t, siteConfig(wrongListen, "http://"+nodeAddr+"/hooks/alipay", "whsec_"+strings.Repeat("WFla", 8)), wrongListen)

	params := tk.Signed(t, tk.Key(t, "alipay"), tk.Set(tk.TradeParams(tk.AppID, time.Now()), "notify_id", "node-interop-1"), false)
	body := tk.EncodeForm(params)
	notifyURL := "http://" + listen + "/alipay/notify"
	if status, answer, _ := tk.Post(t, notifyURL, body); status != 200 || answer != "success" {
		t.Fatalf("answer %d %q", status, answer)
	}
	receiver.WaitFor(t, "accepted node-interop-1 alipay.trade_status_sync 20190815155618536-564-57 0.10 TRADE_SUCCESS", 5*time.Second)

	// Alipay's retry: the receiver recognises the webhook-id.
	if status, answer, _ := tk.Post(t, notifyURL, body); status != 200 || answer != "success" {
		t.Fatalf("retry answer %d %q", status, answer)
	}
	receiver.WaitFor(t, "duplicate node-interop-1", 5*time.Second)

	// A webhook signed with another secret is refused by the receiver, so
	// Alipay is answered fail and will retry.
	if status, answer, _ := tk.Post(t, "http://"+wrongListen+"/alipay/notify", body); status != 502 || answer != "fail" {
		t.Fatalf("wrong secret: answer %d %q, want 502 fail", status, answer)
	}
	receiver.WaitFor(t, "rejected node-interop-1 bad signature", 5*time.Second)

	// A forged notification never reaches the receiver.
	forged := tk.EncodeForm(tk.Set(params, "total_amount", "999.00"))
	if status, _, _ := tk.Post(t, notifyURL, forged); status != 403 {
		t.Fatalf("forged: status %d", status)
	}
	if n := receiver.Count("node-interop-1"); n != 3 {
		t.Errorf("receiver saw node-interop-1 %d times, want 3", n)
	}
}
