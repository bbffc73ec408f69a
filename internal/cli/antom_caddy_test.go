package cli_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// TestAntomThroughCaddy sends Antom notifications signed by send --antom to
// a real alipay_notify in this process, and finds a failed one in the
// outbox with outbox list.
func TestAntomThroughCaddy(t *testing.T) {
	startsCaddy(t)
	accepting := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusNoContent, 0))
	failing := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusInternalServerError, 0))
	admin, listen := tk.FreePort(t), tk.FreePort(t)
	endpoint := func(path, forward, extra string) string {
		return fmt.Sprintf(`	alipay_notify %s {
		antom %s {
			antom_public_key %s
		}
		forward %s
		webhook_secret %s
		%s
	}
`, path, tk.AntomClient, tk.Testdata("keys", "alipay.pub.txt"), forward, tk.Secret, extra)
	}
	startCaddy(t, siteCaddyfile(admin, t.TempDir(), listen, endpoint("/antom/notify", accepting.URL+"/hooks", ""), endpoint("/failing/notify", failing.URL+"/hooks", "outbox")))
	base := "http://" + listen
	key := tk.Testdata("keys", "alipay.key.pem")
	send := func(args ...string) cliResult {
		return runCLI(t, "", append([]string{"send", "--antom", "--client-id", tk.AntomClient}, args...)...)
	}

	res := send("--key", key, base+"/antom/notify").ok(t)
	if !strings.HasPrefix(res.stdout, `200 {"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}`) {
		t.Errorf("stdout %q", res.stdout)
	}
	got := accepting.Take()
	if len(got) != 1 || got[0].VerifyErr != nil || got[0].Event.Type != "antom.PAYMENT_RESULT" || !strings.HasPrefix(got[0].Header.Get("webhook-id"), "antom_") {
		t.Fatalf("upstream got %+v", got)
	}

	// Refusals, and what send says about them.
	send("--key", tk.Testdata("keys", "app.key.pem"), base+"/antom/notify").fails(t, `alipay_notify refused the notification: Caddy's log line "notification refused"`)
	send("--key", key, "--uri", "/elsewhere", base+"/antom/notify").fails(t, "give the URI Caddy receives with --uri")
	runCLI(t, "", "send", "--antom", "--client-id", "SANDBOX_UNKNOWN", "--key", key, base+"/antom/notify").fails(t, "is --client-id one of the antom blocks?")
	runCLI(t, `{"a":1,"a":2}`, "send", "--antom", "--client-id", tk.AntomClient, "--key", key, "--body", "-", base+"/antom/notify").fails(t, "alipay_notify found the notification malformed")
	if n := len(accepting.Take()); n != 0 {
		t.Errorf("%d refused notifications reached the upstream", n)
	}

	// The upstream fails: 502, and the notification waits in the outbox.
	res = send("--key", key, base+"/failing/notify").fails(t, "the upstream did not accept the webhook")
	if !strings.HasPrefix(res.stdout, `502 {"result":{"resultCode":"FAIL","resultStatus":"F","resultMessage":"fail"}}`) {
		t.Errorf("stdout %q", res.stdout)
	}
	res = runCLI(t, "", "outbox", "list", "--address", admin).ok(t)
	if !strings.Contains(res.stdout, "antom_") || !strings.Contains(res.stdout, "antom.PAYMENT_RESULT") || !strings.Contains(res.stdout, "1 entry: 1 pending") {
		t.Errorf("outbox list:\n%s", res.stdout)
	}
}
