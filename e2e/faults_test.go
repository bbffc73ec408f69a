package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// Faults of the upstream and of Caddy itself, through the built binary and
// real upstreams. In every case Alipay is answered "fail" unless the upstream
// accepted the webhook (a 2xx status), and no request forwards the same
// notification twice.

// notifyRoute is one alipay_notify route of a faults Caddyfile.
type notifyRoute struct {
	path, forward, extra string
}

// notifyCaddyfile serves routes on listen with the test key and secret;
// admin is "off" or an address for the admin API.
func notifyCaddyfile(t *testing.T, listen, admin string, routes ...notifyRoute) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tauto_https off\n\tdefault_bind 127.0.0.1\n\tpersist_config off\n}\nhttp://%s {\n", admin, listen)
	for _, r := range routes {
		b.WriteString(testkit.NotifyBlock{Path: r.path, Forward: r.forward, Extra: r.extra}.String())
	}
	b.WriteString("\trespond \"not an Alipay endpoint\" 404\n}\n")
	return b.String()
}

func TestUpstreamFaultsThroughCaddy(t *testing.T) {
	testkit.CaddyBinary(t)
	// Answers 204.
	accepting := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	// Nothing listens there.
	refusedURL := testkit.ClosedURL(t)
	// Hangs until the test ends, past the 500ms timeout.
	release := make(chan struct{})
	hanging := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before hanging.Close
	failing := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	elsewhere := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	redirecting := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/hooks", http.StatusTemporaryRedirect) // 307 would re-POST if followed
	})
	// Closes the connection after reading the request, before any answer,
	// with a TCP reset.
	resetBefore := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		hijackAndReset(t, w, "")
	})
	// Starts an answer, then resets in the middle of its status line.
	resetStatus := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		hijackAndReset(t, w, "HTTP/1.1 20")
	})
	// Sends a complete 200 header, then resets in the middle of the body.
	resetBody := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		hijackAndReset(t, w, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nprocessed, and then")
	})
	// 2xx with a 100 MB body, streamed: the plugin reads at most 64 KiB.
	var hugeWritten atomic.Int64
	hugeDone := make(chan struct{}, 1)
	huge := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		defer func() { hugeDone <- struct{}{} }()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("z"), 32<<10)
		for written := 0; written < 100<<20; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			hugeWritten.Add(int64(len(chunk)))
		}
	})
	// 500 with a 100 MB body.
	hugeFailing := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		chunk := bytes.Repeat([]byte("z"), 32<<10)
		for written := 0; written < 100<<20; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	// HTTPS with httptest's certificate, which Caddy does not trust.
	untrusted := testkit.NewTLSUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

	listen := testkit.FreePort(t)
	testkit.RunCaddy(t, notifyCaddyfile(t, listen, "off",
		notifyRoute{"/accepting", accepting.URL, ""},
		notifyRoute{"/refused", refusedURL, ""},
		notifyRoute{"/hanging", hanging.URL, "timeout 500ms"},
		notifyRoute{"/failing", failing.URL, ""},
		notifyRoute{"/redirecting", redirecting.URL, ""},
		notifyRoute{"/reset-before", resetBefore.URL, ""},
		notifyRoute{"/reset-status", resetStatus.URL, ""},
		notifyRoute{"/reset-body", resetBody.URL, ""},
		notifyRoute{"/huge", huge.URL, ""},
		notifyRoute{"/huge-failing", hugeFailing.URL, ""},
		notifyRoute{"/untrusted", untrusted.URL, ""},
	), listen)

	tests := []struct {
		name, path string
		upstream   *testkit.Upstream // nil: nothing may be reached
		status     int
		answer     string
		hits       int // webhooks the upstream must have received
	}{
		{"accepted (control)", "/accepting", accepting, 200, "success", 1},
		{"connection refused", "/refused", nil, 502, "fail", 0},
		{"hangs past timeout", "/hanging", hanging, 504, "fail", 1},
		{"answers 500", "/failing", failing, 502, "fail", 1},
		{"answers 307, not followed", "/redirecting", redirecting, 502, "fail", 1},
		{"resets before answering", "/reset-before", resetBefore, 502, "fail", 1},
		{"resets in the status line", "/reset-status", resetStatus, 502, "fail", 1},
		// The status decides: a 2xx header is the upstream's acceptance, even
		// if the connection then breaks before the end of its body.
		{"resets in the body of a 200", "/reset-body", resetBody, 200, "success", 1},
		{"2xx with a 100 MB body", "/huge", huge, 200, "success", 1},
		{"500 with a 100 MB body", "/huge-failing", hugeFailing, 502, "fail", 1},
		{"HTTPS with an untrusted certificate", "/untrusted", untrusted, 502, "fail", 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("fault-%02d", i)
			status, answer, _ := testkit.Post(t, "http://"+listen+tc.path, testkit.Genuine(t, id))
			if status != tc.status || answer != tc.answer {
				t.Errorf("answer %d %q, want %d %q", status, answer, tc.status, tc.answer)
			}
			if tc.upstream != nil {
				if got := tc.upstream.Count(id); got != tc.hits {
					t.Errorf("upstream received %s %d times, want %d", id, got, tc.hits)
				}
			}
		})
	}
	if n, _ := elsewhere.Totals(); n != 0 {
		t.Errorf("the redirect was followed: its target received %d webhooks", n)
	}
	if n, _ := untrusted.Totals(); n != 0 {
		t.Errorf("the untrusted HTTPS upstream received %d webhooks", n)
	}
	for _, u := range []*testkit.Upstream{accepting, hanging, failing, redirecting, resetBefore, resetStatus, resetBody, huge, hugeFailing} {
		if _, invalid := u.Totals(); invalid != 0 {
			t.Errorf("%d webhooks failed the official library's check", invalid)
		}
	}
	select {
	case <-hugeDone:
		if w := hugeWritten.Load(); w >= 100<<20 {
			t.Errorf("the 100 MB answer was read to its end (%d bytes)", w)
		} else {
			t.Logf("the upstream wrote %d bytes of its 100 MB answer before the plugin closed the connection", w)
		}
	case <-time.After(30 * time.Second):
		t.Error("the huge upstream is still writing")
	}
}

// hijackAndReset takes over the upstream's connection, writes partial, and
// closes it with a TCP reset (SO_LINGER 0).
func hijackAndReset(t *testing.T, w http.ResponseWriter, partial string) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	if partial != "" {
		_, _ = buf.WriteString(partial)
		_ = buf.Flush()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// TestReloadWithNotificationsInFlight reloads Caddy's configuration through
// its admin API while notifications wait on a slow upstream. Every
// notification is answered; a success only for a webhook the upstream
// received; no webhook twice; and the new configuration serves afterwards.
func TestReloadWithNotificationsInFlight(t *testing.T) {
	testkit.CaddyBinary(t)
	var inFlight atomic.Int64
	arrived := make(chan struct{}, 64)
	slow := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		arrived <- struct{}{}
		time.Sleep(1500 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	})
	listen, admin := testkit.FreePort(t), testkit.FreePort(t)
	config := notifyCaddyfile(t, listen, admin, notifyRoute{"/alipay/notify", slow.URL, "timeout 10s"})
	p := testkit.RunCaddy(t, config, listen)
	testkit.WaitListening(t, admin, 20*time.Second)

	const n = 16
	type result struct {
		id             string
		status         int
		answer         string
		err            error
		afterReloadHit bool
	}
	results := make(chan result, n)
	for i := range n {
		id := fmt.Sprintf("reload-%02d", i)
		body := testkit.Genuine(t, id)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/alipay/notify", strings.NewReader(body))
			req.Header.Set("Content-Type", testkit.ContentType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- result{id: id, err: err}
				return
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{id: id, status: resp.StatusCode, answer: string(answer)}
		}()
	}
	// Wait until every notification is at the upstream, then reload with a
	// changed configuration (another timeout), twice: with POST /load and
	// with the caddy reload command.
	for range n {
		select {
		case <-arrived:
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d notifications reached the upstream", inFlight.Load())
		}
	}
	newConfig := strings.Replace(config, "timeout 10s", "timeout 9s", 1)
	req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/load", strings.NewReader(newConfig))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /load: %d %s", resp.StatusCode, msg)
	}

	answered := map[string]result{}
	for range n {
		select {
		case r := <-results:
			answered[r.id] = r
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d notifications answered after the reload", len(answered), n)
		}
	}
	for id, r := range answered {
		hits := slow.Count(id)
		switch {
		case r.err != nil:
			t.Errorf("%s: no answer: %v", id, r.err)
		case r.status == 200 && r.answer == "success" && hits != 1:
			t.Errorf("%s answered success, but the upstream received it %d times", id, hits)
		case r.status != 200 && r.answer != "fail":
			t.Errorf("%s answered %d %q", id, r.status, r.answer)
		case hits > 1:
			t.Errorf("%s forwarded %d times", id, hits)
		}
		if r.status != 200 {
			t.Logf("%s answered %d %q during the reload", id, r.status, r.answer)
		}
	}

	// The caddy reload command, then the new configuration serves.
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(strings.Replace(config, "timeout 10s", "timeout 8s", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testkit.CaddyBinary(t), "reload", "--config", path, "--adapter", "caddyfile", "--address", admin)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
	id := "reload-after"
	status, answer, _ := testkit.Post(t, "http://"+listen+"/alipay/notify", testkit.Genuine(t, id))
	if status != 200 || answer != "success" || slow.Count(id) != 1 {
		t.Fatalf("after the reloads: %d %q, upstream hits %d", status, answer, slow.Count(id))
	}
	if p.Count("panic") != 0 {
		t.Error("Caddy logged a panic")
	}
}
