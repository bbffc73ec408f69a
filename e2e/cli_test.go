package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// These tests prove the commands are wired into Caddy's binary; what each
// command does is tested in process in internal/cli.

func TestHelp(t *testing.T) {
	res := runTool(t, "", "--help").mustSucceed(t)
	for _, sub := range []string{"demo", "keygen", "webhook-secret", "sign", "send", "verify"} {
		if !strings.Contains(res.stdout, "caddy alipay-notify "+sub) {
			t.Errorf("alipay-notify --help does not list %s:\n%s", sub, res.stdout)
		}
		help := runTool(t, "", sub, "--help").mustSucceed(t)
		for _, want := range []string{"Usage:", "caddy alipay-notify " + sub} {
			if !strings.Contains(help.stdout, want) {
				t.Errorf("%s --help lacks %q:\n%s", sub, want, help.stdout)
			}
		}
		if sub != "demo" && !strings.Contains(help.stdout, "Examples:") {
			t.Errorf("%s --help lacks examples:\n%s", sub, help.stdout)
		}
	}
	// An error is reported on stderr with a non-zero exit status.
	runTool(t, "", "sign", "--app-id", tk.AppID).mustFail(t, "--key is required")
}

func TestListModules(t *testing.T) {
	out, err := exec.Command(tk.CaddyBinary(t), "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, module := range []string{"http.handlers.alipay_notify", "http.handlers.alipay_verify"} {
		if !strings.Contains(string(out), module) {
			t.Errorf("list-modules lacks %s:\n%s", module, out)
		}
	}
}

// TestKeygenSignVerify is the README's round trip through the binary: a
// key pair, notifications signed with it, verified with its public key,
// the body piped from sign to verify.
func TestKeygenSignVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	res := runTool(t, "", "keygen", "--dir", dir).mustSucceed(t)
	keyFile, pubTxt := filepath.Join(dir, "alipay-test.key.pem"), filepath.Join(dir, "alipay-test.pub.txt")
	if !strings.Contains(res.stdout, "alipay_public_key "+pubTxt) {
		t.Errorf("keygen does not show the alipay_public_key line:\n%s", res.stdout)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key: %v", err)
	}
	runTool(t, "", "keygen", "--dir", dir).mustFail(t, "already exists")

	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"RSA2", nil, []string{"VERIFIED: rule V1", "hash SHA256"}},
		{"RSA V2", []string{"--v2", "--sign-type", "RSA"}, []string{"VERIFIED: rule V2", "hash SHA1"}},
		{"GBK", []string{"--charset", "gbk"}, []string{"VERIFIED: rule V1", "charset:       gbk", "subject=测试商品 +1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"sign", "--key", keyFile, "--app-id", tk.AppID}, tc.flags...)
			body := runTool(t, "", append(args, "out_trade_no=order 1", "subject=测试商品 +1")...).mustSucceed(t).stdout
			if strings.HasSuffix(body, "\n") {
				t.Error("sign printed a newline after the body on a pipe")
			}
			res := runTool(t, body, "verify", "--key", pubTxt).mustSucceed(t)
			for _, want := range append(tc.want, "--key #1 (alipay-test.pub.txt)") {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("verify output lacks %q:\n%s", want, res.stdout)
				}
			}
		})
	}
	// The key pair is not Alipay's: a real vector does not verify with it.
	vec := tk.LoadVector(t, "trade-rsa2-production.json")
	res = runTool(t, vec.Body, "verify", "--key", pubTxt).mustFail(t, "does not verify as it is")
	if !strings.Contains(res.stdout, "likely cause:  no repair makes it verify") {
		t.Errorf("no diagnosis:\n%s", res.stdout)
	}
	// With Alipay's key, the real vector verifies, with Alipay's signed string.
	res = runTool(t, "", "verify", "--key", vec.Key.AlipayPublicKey, tk.WriteFile(t, "vector.body", vec.Body)).mustSucceed(t)
	if got := tk.SignedString(t, res.stdout, "signed string"); got != vec.Expect.StringToSign {
		t.Errorf("signed string\n got %s\nwant %s", got, vec.Expect.StringToSign)
	}
}

// TestSend sends to a running Caddy in front of test upstreams.
func TestSend(t *testing.T) {
	accepting := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusNoContent, 0))
	failing := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusInternalServerError, 0))
	vec := tk.LoadVector(t, "trade-rsa2-production.json")
	listen := tk.FreePort(t)
	config := adminOffSite(listen,
		tk.NotifyBlock{Path: "/alipay/notify", Forward: accepting.URL + "/hooks/alipay"},
		tk.NotifyBlock{Path: "/failing/notify", Forward: failing.URL + "/hooks/alipay"},
		tk.NotifyBlock{Path: "/vector/notify", AppID: vec.AppID, Key: vec.Key.AlipayPublicKey, Forward: accepting.URL + "/hooks/alipay", Extra: "max_age off"})
	caddy := tk.RunCaddy(t, config, listen)
	base := "http://" + listen
	key := tk.Testdata("keys", "alipay.key.pem")

	// Signed and sent: forwarded, answered success.
	res := runTool(t, "", "send", "--key", key, "--app-id", tk.AppID, base+"/alipay/notify", "notify_id=send-1", "out_trade_no=order-1", "total_amount=0.01").mustSucceed(t)
	if res.stdout != "200 success\n" {
		t.Errorf("stdout %q, want \"200 success\\n\"", res.stdout)
	}
	if !strings.HasPrefix(res.stderr, "POST "+base+"/alipay/notify (notify_id send-1, ") {
		t.Errorf("stderr %q", res.stderr)
	}
	got := accepting.Take()
	if len(got) != 1 || got[0].VerifyErr != nil || got[0].Event.Data["out_trade_no"] != "order-1" || got[0].Header.Get("webhook-id") != "send-1" {
		t.Fatalf("upstream got %+v", got)
	}

	// A real notification signed by Alipay, sent as it is.
	res = runTool(t, "", "send", "--body", tk.WriteFile(t, "vector.body", vec.Body), base+"/vector/notify").mustSucceed(t)
	if res.stdout != "200 success\n" {
		t.Errorf("vector: stdout %q", res.stdout)
	}
	if got := accepting.Take(); len(got) != 1 || got[0].Header.Get("webhook-id") != "2019081500222155624068450559358070" {
		t.Fatalf("vector: upstream got %+v", got)
	}
	// The same body from stdin, with the amount forged: refused.
	forged := strings.Replace(vec.Body, "total_amount=0.10", "total_amount=100.10", 1)
	res = runTool(t, forged, "send", "--body", "-", base+"/vector/notify").mustFail(t, "notification refused")
	if res.stdout != "403 fail\n" {
		t.Errorf("forged: stdout %q", res.stdout)
	}

	// Signed with the app's key instead of Alipay's: refused, non-zero.
	res = runTool(t, "", "send", "--key", tk.Testdata("keys", "app.key.pem"), "--app-id", tk.AppID, base+"/alipay/notify").mustFail(t, "notification refused")
	if res.stdout != "403 fail\n" {
		t.Errorf("wrong key: stdout %q", res.stdout)
	}
	caddy.WaitFor(t, "signature does not verify with any configured key", 5*time.Second)

	// A notification the handler cannot read: 400 fail.
	res = runTool(t, "a=%zz", "send", "--body", "-", base+"/alipay/notify").mustFail(t, "malformed")
	if res.stdout != "400 fail\n" {
		t.Errorf("malformed: stdout %q", res.stdout)
	}

	// The upstream answers 500: 502 fail, non-zero.
	res = runTool(t, "", "send", "--key", key, "--app-id", tk.AppID, base+"/failing/notify").mustFail(t, "upstream")
	if res.stdout != "502 fail\n" {
		t.Errorf("failing upstream: stdout %q", res.stdout)
	}
	if len(accepting.Take()) != 0 {
		t.Error("a refused notification reached the upstream")
	}

	// Nothing there, and no handler for the path.
	runTool(t, "", "send", "--key", key, "--app-id", tk.AppID, "http://"+tk.FreePort(t)+"/alipay/notify").mustFail(t, "connection refused")
	runTool(t, "", "send", "--body", "-", base+"/nowhere").mustFail(t, "empty answer")
}

// TestWebhookSecret checks that Caddy takes the secret the command prints.
func TestWebhookSecret(t *testing.T) {
	first := runTool(t, "", "webhook-secret").mustSucceed(t).stdout
	second := runTool(t, "", "webhook-secret").mustSucceed(t).stdout
	if !regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=\n$`).MatchString(first) || first == second {
		t.Fatalf("secrets %q, %q", first, second)
	}
	config := tk.WriteFile(t, "Caddyfile", siteConfig("127.0.0.1:1", "http://127.0.0.1:2/hooks/alipay", strings.TrimSpace(first)))
	out, err := exec.Command(tk.CaddyBinary(t), "validate", "--config", config).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Valid configuration") {
		t.Fatalf("caddy validate refused the secret: %v\n%s", err, out)
	}
}

// TestValidateReportsLine checks that caddy validate and adapt --validate
// name the Caddyfile line of a configuration error.
func TestValidateReportsLine(t *testing.T) {
	path := tk.WriteFile(t, "Caddyfile", siteConfig("127.0.0.1:1", "http://127.0.0.1:2", "whsec_tooshort"))
	for _, args := range [][]string{{"validate", "--config", path}, {"adapt", "--validate", "--config", path}} {
		out, err := exec.Command(tk.CaddyBinary(t), args...).CombinedOutput()
		if err == nil {
			t.Fatalf("%v accepted a malformed secret", args)
		}
		if !strings.Contains(string(out), "webhook_secret #1") || !strings.Contains(string(out), "Caddyfile:11") {
			t.Errorf("%v: message lacks the subdirective or line:\n%s", args, out)
		}
	}
}

// TestDemo runs the README's first command in its self-test form.
func TestDemo(t *testing.T) {
	cmd := exec.Command(tk.CaddyBinary(t), "alipay-notify", "demo", "--self-test", "--listen", tk.FreePort(t), "--upstream", tk.FreePort(t))
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "HOME="+dir, "TMPDIR="+dir)
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
