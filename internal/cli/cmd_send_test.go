package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// notifyServer answers every POST with status and answer, as alipay_notify
// (or whatever is at the URL) would, and records what it received.
type notifyServer struct {
	*httptest.Server
	mu       sync.Mutex
	status   int
	answer   string
	location string
	delay    time.Duration
	got      []*http.Request
	bodies   []string
}

func newNotifyServer(t *testing.T) *notifyServer {
	s := &notifyServer{status: http.StatusOK, answer: "success"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got, s.bodies = append(s.got, r), append(s.bodies, string(body))
		status, answer, location, delay := s.status, s.answer, s.location, s.delay
		s.mu.Unlock()
		time.Sleep(delay)
		if location != "" {
			w.Header().Set("Location", location)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *notifyServer) answerWith(status int, answer string) {
	s.mu.Lock()
	s.status, s.answer = status, answer
	s.mu.Unlock()
}

func (s *notifyServer) last(t *testing.T) (*http.Request, string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		t.Fatal("nothing was sent")
	}
	return s.got[len(s.got)-1], s.bodies[len(s.bodies)-1]
}

// TestSendAsAlipay checks what send puts on the wire.
func TestSendAsAlipay(t *testing.T) {
	srv := newNotifyServer(t)
	res := run(t, "", "send", "--key", tk.Testdata("keys", "alipay.key.pem"), "--app-id", tk.AppID, srv.URL+"/notify", "notify_id=send-1", "subject=a b").mustSucceed(t)
	if res.stdout != "200 success\n" {
		t.Errorf("stdout %q, want \"200 success\\n\"", res.stdout)
	}
	req, body := srv.last(t)
	if !strings.HasPrefix(res.stderr, "POST "+srv.URL+"/notify (notify_id send-1, "+fmt.Sprint(len(body))+" bytes)\n") {
		t.Errorf("stderr %q", res.stderr)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/notify" {
		t.Errorf("%s %s", req.Method, req.URL)
	}
	if got := req.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded; text/html; charset=UTF-8" {
		t.Errorf("Content-Type %q, want Alipay's", got)
	}
	if got := req.Header.Get("User-Agent"); got != "Mozilla/4.0 (caddy alipay-notify send)" {
		t.Errorf("User-Agent %q", got)
	}
	n, _ := verifyBody(t, body)
	if n.Get("subject") != "a b" || !strings.Contains(body, "subject=a+b") {
		t.Errorf("body %q", body)
	}

	// --body sends a file, or stdin, as it is.
	file := tk.WriteFile(t, "body", "a=1&b=%20")
	res = run(t, "", "send", "--body", file, srv.URL).mustSucceed(t)
	if _, got := srv.last(t); got != "a=1&b=%20" || res.stderr != "POST "+srv.URL+" (--body "+file+", 9 bytes)\n" {
		t.Errorf("sent %q; stderr %q", got, res.stderr)
	}
	run(t, "x=1\n", "send", "--body", "-", srv.URL).mustSucceed(t)
	if _, got := srv.last(t); got != "x=1\n" {
		t.Errorf("sent %q", got)
	}
}

// TestSendAnswers checks what send prints for each answer and what it
// says about an answer other than 200 success.
func TestSendAnswers(t *testing.T) {
	srv := newNotifyServer(t)
	const retry = "Alipay would retry: only 200 \"success\" stops it. "
	for _, tc := range []struct {
		name     string
		status   int
		answer   string
		location string
		stdout   string
		want     string // in the error; "" for success
	}{
		{"success", 200, "success", "", "200 success\n", ""},
		{"refused", 403, "fail", "", "403 fail\n", retry + "alipay_notify refused the notification: Caddy's log line \"notification refused\" gives the reason"},
		{"malformed", 400, "fail", "", "400 fail\n", "alipay_notify found the notification malformed"},
		{"upstream", 502, "fail", "", "502 fail\n", "the upstream did not accept the webhook (Caddy's log: upstream_status)"},
		{"upstream timeout", 504, "fail", "", "504 fail\n", "the upstream did not accept the webhook"},
		{"redirect", 302, "", "https://elsewhere.example/notify", "302 \n", "the URL redirects (to https://elsewhere.example/notify), and Alipay does not follow redirects"},
		{"empty 200", 200, "", "", "200 \n", "an empty answer: nothing handled the request"},
		{"404", 404, "not found", "", "404 not found\n", "nothing handles this path"},
		{"whitespace", 200, "success\n", "", "200 \"success\\n\"\n", "the answer has whitespace around \"success\", and Alipay wants exactly those seven characters"},
		{"other", 500, "oops", "", "500 oops\n", "this answer did not come from alipay_notify (it answers exactly \"success\" or \"fail\")"},
		{"fail with 200", 200, "fail", "", "200 fail\n", "this answer did not come from alipay_notify"},
		{"long", 500, strings.Repeat("x", 300), "", "500 " + strings.Repeat("x", 200) + "…\n", "did not come from alipay_notify"},
		{"unprintable", 500, "a\x00b", "", "500 \"a\\x00b\"\n", "did not come from alipay_notify"},
		{"tab", 500, "a\tb", "", "500 \"a\\tb\"\n", "did not come from alipay_notify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.answerWith(tc.status, tc.answer)
			srv.mu.Lock()
			srv.location = tc.location
			srv.mu.Unlock()
			res := run(t, "a=1", "send", "--body", "-", srv.URL)
			if res.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", res.stdout, tc.stdout)
			}
			if tc.want == "" {
				res.mustSucceed(t)
				return
			}
			res.mustFail(t, tc.want)
			if !strings.HasPrefix(res.err.Error(), retry) {
				t.Errorf("error %q does not start with %q", res.err, retry)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	srv := newNotifyServer(t)
	key := tk.Testdata("keys", "alipay.key.pem")
	nothing := "http://" + tk.FreePort(t) + "/alipay/notify"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing listening", []string{"send", "--key", key, "--app-id", tk.AppID, nothing}, "POST " + nothing + ": "},
		{"connection refused", []string{"send", "--body", "-", nothing}, "connection refused (is Caddy running and listening there?)"},
		{"no URL", []string{"send", "--key", key, "--app-id", tk.AppID}, "the notify URL is required, e.g. http://127.0.0.1:8080/alipay/notify"},
		{"two URLs", []string{"send", "--body", "-", srv.URL, srv.URL + "/x"}, "two URLs, " + srv.URL + " and " + srv.URL + "/x: give the notify URL once"},
		{"URL without host", []string{"send", "--body", "-", "http://"}, `notify URL "http://": want an absolute http:// or https:// URL`},
		{"--body and --key", []string{"send", "--body", "-", "--key", key, srv.URL}, "--body sends a file as it is: --key does not apply"},
		{"--body and --v2", []string{"send", "--body", "-", "--v2", srv.URL}, "--v2 does not apply"},
		{"--body and arguments", []string{"send", "--body", "-", srv.URL, "a=1", "b=2"}, "--body sends a file as it is: the arguments a=1 b=2 do not apply"},
		{"missing --body file", []string{"send", "--body", "/nonexistent.body", srv.URL}, "--body: open /nonexistent.body"},
		{"signing error", []string{"send", "--app-id", tk.AppID, srv.URL}, "--key is required"},
		{"bad argument", []string{"send", "--key", key, "--app-id", tk.AppID, srv.URL, "oops"}, `argument "oops": want key=value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(t, "a=1", tc.args...).mustFail(t, tc.want)
		})
	}

	// --timeout bounds the wait.
	srv.mu.Lock()
	srv.delay = 500 * time.Millisecond
	srv.mu.Unlock()
	start := time.Now()
	run(t, "a=1", "send", "--body", "-", "--timeout", "50ms", srv.URL).mustFail(t, "Client.Timeout exceeded")
	if time.Since(start) > 400*time.Millisecond {
		t.Error("--timeout did not bound the wait")
	}
}
