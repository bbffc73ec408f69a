package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/cli"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
	tk "github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// cliResult is what one in-process run of a command printed.
type cliResult struct {
	stdout, stderr string
	err            error
}

func (r cliResult) String() string {
	return fmt.Sprintf("error: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

// runCLI runs alipay-notify <args...> in process.
func runCLI(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	stdout, stderr, err := cli.Execute(strings.NewReader(stdin), args...)
	return cliResult{stdout: stdout, stderr: stderr, err: err}
}

func (r cliResult) ok(t *testing.T) cliResult {
	t.Helper()
	if r.err != nil {
		t.Fatalf("want success, got %s", r)
	}
	return r
}

func (r cliResult) fails(t *testing.T, want string) cliResult {
	t.Helper()
	if r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Fatalf("want a failure mentioning %q, got %s", want, r)
	}
	return r
}

// startCaddy runs a Caddyfile in this process, as caddy run does, and stops
// it (its admin API included) when the test ends.
func startCaddy(t *testing.T, caddyfile string) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting:\n%s\n%v", caddyfile, err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A config without admin API stops the running one; then nothing runs.
		_ = caddy.Load([]byte(`{"admin":{"disabled":true,"config":{"persist":false}}}`), true)
		_ = caddy.Stop()
	})
}

// outboxCaddyfile serves two alipay_notify handlers with outboxes on
// listen: /pending/notify (retry 1h: a failure stays pending) and
// /dead/notify (give_up 1s: a failure is dead within seconds).
func outboxCaddyfile(admin, listen, storage, pendingForward, deadForward string) string {
	return siteCaddyfile(admin, storage, listen,
		tk.NotifyBlock{Path: "/pending/notify", Forward: pendingForward, Extra: "outbox {\n\tretry 1h\n}"}.String(),
		tk.NotifyBlock{Path: "/dead/notify", Forward: deadForward, Extra: "outbox {\n\tretry 1h\n\tgive_up 1s\n}"}.String())
}

// siteCaddyfile is a Caddyfile with its admin API on admin and its storage
// in the folder storage, serving the handler blocks on listen.
func siteCaddyfile(admin, storage, listen string, handlers ...string) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	auto_https off
	default_bind 127.0.0.1
	storage file_system %s
}
http://%s {
%s}
`, admin, storage, listen, strings.Join(handlers, ""))
}

// adminEntries reads the outbox through the admin API directly.
func adminEntries(t *testing.T, admin string) ([]outbox.Entry, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/alipay_notify/outbox", nil)
	req.Header.Set("Origin", "http://"+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin API: %d %s", resp.StatusCode, data)
	}
	var entries []outbox.Entry
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	return entries, data
}

func entryState(t *testing.T, admin, id string) outbox.State {
	entries, _ := adminEntries(t, admin)
	for _, e := range entries {
		if e.ID == id {
			return e.State
		}
	}
	return ""
}

// waitState waits until the entry id is in state want.
func waitState(t *testing.T, admin, id string, want outbox.State) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := entryState(t, admin, id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry %s: state %q, want %q", id, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestOutboxCommands(t *testing.T) {
	startsCaddy(t)
	pendingUp := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusInternalServerError, 0))
	deadUp := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusServiceUnavailable, 0))
	admin, listen := tk.FreePort(t), tk.FreePort(t)
	caddyfile := outboxCaddyfile(admin, listen, t.TempDir(), pendingUp.URL+"/hooks", deadUp.URL+"/hooks")
	startCaddy(t, caddyfile)
	base := "http://" + listen

	for _, post := range []struct{ path, id string }{
		{"/pending/notify", "ob-pending-1"}, {"/pending/notify", "ob-pending-2"}, {"/dead/notify", "ob-dead-1"},
	} {
		if status, answer, _ := tk.Post(t, base+post.path, tk.Genuine(t, post.id)); status != http.StatusBadGateway || answer != "fail" {
			t.Fatalf("%s: %d %s, want 502 fail", post.id, status, answer)
		}
	}
	waitState(t, admin, "ob-dead-1", outbox.Dead)
	addr := "--address=" + admin

	// The table: every entry, a forward column (two handlers), a summary.
	res := runCLI(t, "", "outbox", "list", addr).ok(t)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("want a header, 3 entries and a summary:\n%s", res.stdout)
	}
	for _, col := range []string{"ID", "STATE", "TYPE", "ATTEMPTS", "FIRST FAILURE", "NEXT ATTEMPT", "FORWARD", "LAST ERROR"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %s: %q", col, lines[0])
		}
	}
	for _, want := range []string{"ob-pending-1", "ob-pending-2", "ob-dead-1", "alipay.trade_status_sync", pendingUp.URL + "/hooks", "500", "503"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, res.stdout)
		}
	}
	if lines[4] != "3 entries: 2 pending, 1 dead" {
		t.Errorf("summary %q", lines[4])
	}
	for _, line := range lines[1:4] {
		f := strings.Fields(line)
		switch f[0] {
		case "ob-dead-1":
			if f[1] != "dead" || f[3] != "2" || f[6] != "-" { // the inline attempt and the outbox's, no next attempt
				t.Errorf("dead row %q", line)
			}
		default:
			if f[1] != "pending" || f[3] != "1" || f[6] == "-" {
				t.Errorf("pending row %q", line)
			}
		}
	}

	// --json: the admin API's array as it is.
	res = runCLI(t, "", "outbox", "list", "--json", addr).ok(t)
	_, raw := adminEntries(t, admin)
	if res.stdout != string(raw) {
		t.Errorf("--json\n got %s\nwant %s", res.stdout, raw)
	}
	var entries []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &entries); err != nil || len(entries) != 3 {
		t.Fatalf("--json: %v %s", err, res.stdout)
	}
	for _, field := range []string{"id", "state", "type", "attempts", "first_failure", "last_error", "forward"} {
		if _, ok := entries[0][field]; !ok {
			t.Errorf("--json entry lacks %s: %v", field, entries[0])
		}
	}

	// --state filters, on the API's side.
	res = runCLI(t, "", "outbox", "list", "--state", "dead", addr).ok(t)
	if !strings.Contains(res.stdout, "ob-dead-1") || strings.Contains(res.stdout, "ob-pending") || strings.Contains(res.stdout, "FORWARD") {
		t.Errorf("--state dead:\n%s", res.stdout)
	}
	res = runCLI(t, "", "outbox", "list", "--state", "pending", "--json", addr).ok(t)
	if err := json.Unmarshal([]byte(res.stdout), &entries); err != nil || len(entries) != 2 {
		t.Errorf("--state pending --json: %v %s", err, res.stdout)
	}
	if res = runCLI(t, "", "outbox", "list", "--state", "delivered", addr).ok(t); res.stdout != "The outbox has no delivered entries.\n" {
		t.Errorf("--state delivered: %q", res.stdout)
	}
	runCLI(t, "", "outbox", "list", "--state", "gone", addr).fails(t, `--state: unknown outbox state "gone"`)

	// replay <id>: pending now, delivered once the upstream accepts.
	pendingUp.Behave(tk.Status(http.StatusNoContent, 0))
	res = runCLI(t, "", "outbox", "replay", "ob-pending-1", addr).ok(t)
	if res.stdout != "replayed 1 of 1 entry\n" {
		t.Errorf("replay: %q", res.stdout)
	}
	waitState(t, admin, "ob-pending-1", outbox.Delivered)
	if n := pendingUp.Count("ob-pending-1"); n != 2 {
		t.Errorf("ob-pending-1 reached the upstream %d times, want 2", n)
	}
	if got := entryState(t, admin, "ob-pending-2"); got != outbox.Pending {
		t.Errorf("ob-pending-2 is %s: the replay touched it", got)
	}
	// An id that is not there: counted, and an error.
	res = runCLI(t, "", "outbox", "replay", "ob-pending-2", "no-such-id", addr).fails(t, "1 of the ids is not in the outbox")
	if res.stdout != "replayed 1 of 2 entries\n" {
		t.Errorf("replay with an unknown id: %q", res.stdout)
	}

	// replay --dead.
	deadUp.Behave(tk.Status(http.StatusOK, 0))
	if res = runCLI(t, "", "outbox", "replay", "--dead", addr).ok(t); res.stdout != "replayed 1 dead entry\n" {
		t.Errorf("replay --dead: %q", res.stdout)
	}
	waitState(t, admin, "ob-dead-1", outbox.Delivered)
	if res = runCLI(t, "", "outbox", "replay", "--dead", addr).ok(t); res.stdout != "replayed 0 dead entries\n" {
		t.Errorf("replay --dead with none: %q", res.stdout)
	}
	runCLI(t, "", "outbox", "replay", addr).fails(t, "give their ids")
	runCLI(t, "", "outbox", "replay", "--dead", "x", addr).fails(t, "not both")

	// drop, and drop of an id that is not there: the API's message.
	if res = runCLI(t, "", "outbox", "drop", "ob-dead-1", addr).ok(t); res.stdout != "dropped ob-dead-1\n" {
		t.Errorf("drop: %q", res.stdout)
	}
	if got := entryState(t, admin, "ob-dead-1"); got != "" {
		t.Errorf("dropped entry still listed as %s", got)
	}
	runCLI(t, "", "outbox", "drop", "ob-dead-1", addr).fails(t, `admin API: no outbox entry "ob-dead-1" (HTTP 404)`)
	res = runCLI(t, "", "outbox", "drop", "ob-pending-1", "nope", addr).fails(t, "not dropped: nope")
	if res.stdout != "dropped ob-pending-1\n" || !strings.Contains(res.stderr, `nope: admin API: no outbox entry "nope" (HTTP 404)`) {
		t.Errorf("drop of two ids, one unknown: %s", res)
	}
	runCLI(t, "", "outbox", "drop", addr).fails(t, "requires at least 1 arg")

	// The admin address from --config, as caddy reload reads it.
	config := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, "", "outbox", "list", "--config", config, "--adapter", "caddyfile").ok(t)
	if !strings.Contains(res.stdout, "ob-pending-2") {
		t.Errorf("--config:\n%s", res.stdout)
	}

	// Wrong addresses: nothing there, not an admin API, not an address.
	free := tk.FreePort(t)
	runCLI(t, "", "outbox", "list", "--address", free).fails(t, "cannot reach Caddy's admin API at "+free+": dial tcp "+free+": connect: connection refused (is Caddy running")
	runCLI(t, "", "outbox", "list", "--address", listen).fails(t, "the admin API at "+listen+" answered something that is not a list of entries")
	runCLI(t, "", "outbox", "replay", "x", "--address", listen).fails(t, "answered something unexpected")
	runCLI(t, "", "outbox", "list", "--address", "tcp/127.0.0.1:1-9").fails(t, "a port range")
	runCLI(t, "", "outbox", "list", "--address", "a:b:c").fails(t, `admin address "a:b:c"`)
	runCLI(t, "", "outbox", "list", "--adapter", "caddyfile").fails(t, "--adapter applies to --config")
	runCLI(t, "", "outbox", "list", "--config", filepath.Join(t.TempDir(), "missing")).fails(t, "finding the admin address")
}

// TestOutboxAPIErrors checks the messages of answers other than the
// outbox's own, from a fake admin API.
func TestOutboxAPIErrors(t *testing.T) {
	srv := newFakeAdmin(t)
	addr := "--address=" + srv
	runCLI(t, "", "outbox", "list", addr).fails(t, "the admin API at "+srv+" has no /alipay_notify/outbox (HTTP 404): is that Caddy built with this plugin")
	runCLI(t, "", "outbox", "drop", "teapot", addr).fails(t, "admin API at "+srv+": HTTP 418: short and stout")
	runCLI(t, "", "outbox", "replay", "--dead", addr).fails(t, "admin API: storage unavailable (HTTP 500)")
	res := runCLI(t, "", "outbox", "--help").ok(t)
	if !strings.Contains(res.stdout, "caddy alipay-notify outbox list") {
		t.Errorf("outbox --help:\n%s", res.stdout)
	}
	if res := runCLI(t, "", "outbox").ok(t); !strings.Contains(res.stdout, "Available Commands:") {
		t.Errorf("outbox without a subcommand:\n%s", res.stdout)
	}
}

// TestOutboxUnixSocket reaches an admin API on a unix socket, as caddy
// reload does (no Origin header).
func TestOutboxUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/alipay_notify/outbox" || r.Header.Get("Origin") != "" {
			http.Error(w, `{"error":"unexpected"}`, http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "[]\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	for _, addr := range []string{"unix/" + sock, "unix/" + sock + "|0222"} {
		if res := runCLI(t, "", "outbox", "list", "--address", addr).ok(t); res.stdout != "The outbox has no entries.\n" {
			t.Errorf("%s: %q", addr, res.stdout)
		}
	}
	runCLI(t, "", "outbox", "list", "--address", "fd/3").fails(t, "a file descriptor cannot be reached from another process")
}

func newFakeAdmin(t *testing.T) string {
	addr := tk.FreePort(t)
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /alipay_notify/outbox/teapot", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "http://"+addr {
			http.Error(w, "no origin", http.StatusForbidden)
			return
		}
		http.Error(w, "short and stout", http.StatusTeapot)
	})
	mux.HandleFunc("POST /alipay_notify/outbox/replay", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":"storage unavailable"}`)
	})
	srv := &http.Server{Addr: addr, Handler: mux}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return addr
}

// TestOutboxMoveCommand: a reload changes the handler's forward URL while
// an entry is pending; outbox move hands it to the handler, which delivers
// it to the new upstream.
func TestOutboxMoveCommand(t *testing.T) {
	startsCaddy(t)
	oldUp := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusServiceUnavailable, 0))
	newUp := tk.NewUpstream(t, tk.Secret, tk.Status(http.StatusNoContent, 0))
	admin, listen, storage := tk.FreePort(t), tk.FreePort(t), t.TempDir()
	site := func(forward string) string {
		return siteCaddyfile(admin, storage, listen,
			tk.NotifyBlock{Path: "/notify", Forward: forward, Extra: "outbox {\n\tretry 1h\n}"}.String())
	}
	startCaddy(t, site(oldUp.URL+"/hooks"))
	if status, answer, _ := tk.Post(t, "http://"+listen+"/notify", tk.Genuine(t, "ob-moved")); status != http.StatusBadGateway || answer != "fail" {
		t.Fatalf("%d %s, want 502 fail", status, answer)
	}
	startCaddy(t, site(newUp.URL+"/hooks")) // the reload that moved the backend
	addr := "--address=" + admin

	runCLI(t, "", "outbox", "move", "--from", oldUp.URL+"/hooks", "--to", "http://127.0.0.1:1/elsewhere", addr).
		fails(t, `no alipay_notify handler with an outbox forwards to "http://127.0.0.1:1/elsewhere" on this instance`)
	runCLI(t, "", "outbox", "move", "--from", newUp.URL+"/hooks", "--to", newUp.URL+"/hooks", addr).fails(t, "the same forward URL")
	runCLI(t, "", "outbox", "move", "--to", newUp.URL+"/hooks", addr).fails(t, "give --from")
	if got := entryState(t, admin, "ob-moved"); got != outbox.Pending {
		t.Fatalf("before the move: %q", got)
	}

	res := runCLI(t, "", "outbox", "move", "--from", oldUp.URL+"/hooks", "--to", newUp.URL+"/hooks", addr).ok(t)
	if res.stdout != "moved 1 entry to "+newUp.URL+"/hooks\n" {
		t.Errorf("move: %q", res.stdout)
	}
	waitState(t, admin, "ob-moved", outbox.Delivered)
	if newUp.Count("ob-moved") != 1 {
		t.Errorf("the new upstream got it %d times", newUp.Count("ob-moved"))
	}
	entries, _ := adminEntries(t, admin)
	if len(entries) != 1 || entries[0].Forward != newUp.URL+"/hooks" {
		t.Errorf("after the move: %+v", entries)
	}
	runCLI(t, "", "outbox", "move", "--from", oldUp.URL+"/hooks", "--to", newUp.URL+"/hooks", addr).
		fails(t, "the outbox has no entries of "+oldUp.URL+"/hooks")
}
