package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// The outbox of DESIGN.md §9 through a real Caddy (caddytest, in process):
// its entries in a file_system storage of the test's own, its admin API on
// caddytest's admin endpoint, its metrics on the admin /metrics. Deadlines
// below are for liveness only ("delivered within the retry delay plus a
// margin"), never performance claims.

const adminBase = "http://localhost:2999"

// outboxCaddy is a caddytest Caddy with its storage in storageDir and its
// JSON log in a file.
type outboxCaddy struct {
	storageDir string
	logs       *caddyLogFile
	config     string // the whole Caddyfile last loaded
}

// startOutboxCaddy loads a Caddyfile with `storage file_system storageDir`
// and the log in a JSON file; sites are its site blocks. Every site gets
// the outcome of alipay_notify as the X-Outcome answer header.
func startOutboxCaddy(t *testing.T, storageDir, sites string) *outboxCaddy {
	t.Helper()
	c := &outboxCaddy{storageDir: storageDir, logs: &caddyLogFile{path: filepath.Join(t.TempDir(), "caddy.log")}}
	c.load(t, sites)
	return c
}

// startOutbox is startOutboxCaddy with the storage in a temporary folder
// and one site, outboxSite(blocks...).
func startOutbox(t *testing.T, blocks ...string) *outboxCaddy {
	t.Helper()
	return startOutboxCaddy(t, t.TempDir(), outboxSite(blocks...))
}

// load (re)loads the Caddyfile with these sites through caddytest, as a
// `caddy reload` would.
func (c *outboxCaddy) load(t *testing.T, sites string) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	c.config = caddytestConfig("storage file_system "+c.storageDir+"\n\t\t"+debugLog(c.logs.path), sites)
	caddytest.NewTester(t).InitServer(c.config, "caddyfile")
}

// forceReload loads the very same Caddyfile again with "Cache-Control:
// must-revalidate", which makes Caddy reload a config equal to the
// running one instead of ignoring it.
func (c *outboxCaddy) forceReload(t *testing.T) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, adminBase+"/load", strings.NewReader(c.config))
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("forced reload: %d %s", resp.StatusCode, body)
	}
}

// outboxSite is a site with alipay_notify blocks; each block is
// notifyBlock's with extra lines.
func outboxSite(blocks ...string) string {
	return `http://localhost:9080 {
		header {
			defer
			X-Outcome {http.alipay_notify.outcome}
		}
		` + strings.Join(blocks, "\n") + `
		respond "not an Alipay endpoint" 404
	}`
}

// outboxEntry is an entry as GET /alipay_notify/outbox shows it; raw keeps
// every field to check which are present.
type outboxEntry struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Type         string    `json:"type"`
	Attempts     int       `json:"attempts"`
	FirstFailure time.Time `json:"first_failure"`
	NextAttempt  time.Time `json:"next_attempt"`
	LastError    string    `json:"last_error"`
	Forward      string    `json:"forward"`
	raw          map[string]json.RawMessage
}

// listOutbox calls GET /alipay_notify/outbox[?query] and decodes the array.
func listOutbox(t *testing.T, query string) []outboxEntry {
	t.Helper()
	status, body := adminCall(t, http.MethodGet, "/alipay_notify/outbox"+query, "")
	if status != http.StatusOK {
		t.Fatalf("GET /alipay_notify/outbox%s: %d %s", query, status, body)
	}
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		t.Fatalf("GET /alipay_notify/outbox%s: not a JSON array: %v: %s", query, err, body)
	}
	entries := make([]outboxEntry, len(raws))
	for i, raw := range raws {
		one, _ := json.Marshal(raw)
		if err := json.Unmarshal(one, &entries[i]); err != nil {
			t.Fatalf("entry %s: %v", one, err)
		}
		entries[i].raw = raw
	}
	return entries
}

// findEntry is the entry id of a list, or nil.
func findEntry(entries []outboxEntry, id string) *outboxEntry {
	for i := range entries {
		if entries[i].ID == id {
			return &entries[i]
		}
	}
	return nil
}

// entryOf lists the outbox and returns the entry id; it fails the test when
// there is none.
func entryOf(t *testing.T, id string) outboxEntry {
	t.Helper()
	e := findEntry(listOutbox(t, ""), id)
	if e == nil {
		t.Fatalf("no outbox entry %q", id)
	}
	return *e
}

// waitEntryState waits until the entry id is in state want, and returns it.
func waitEntryState(t *testing.T, id, want string, within time.Duration) outboxEntry {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		e := findEntry(listOutbox(t, ""), id)
		if e != nil && e.State == want {
			return *e
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry %q not %s within %v: %+v", id, want, within, e)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminCall calls caddytest's admin API.
func adminCall(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, adminBase+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// notify posts a genuine notification with notifyID and checks the answer.
func notify(t *testing.T, path, body string, wantStatus int, wantAnswer, wantOutcome string) {
	t.Helper()
	status, answer, header := testkit.Post(t, caddyBase+path, body)
	if status != wantStatus || answer != wantAnswer {
		t.Fatalf("POST %s: %d %q, want %d %q", path, status, answer, wantStatus, wantAnswer)
	}
	if got := header.Get("X-Outcome"); wantOutcome != "" && got != wantOutcome {
		t.Fatalf("POST %s: outcome %q, want %q", path, got, wantOutcome)
	}
}

// taken keeps what takeID took from an upstream for other ids.
var taken = struct {
	sync.Mutex
	by map[*testkit.Upstream][]testkit.Webhook
}{by: map[*testkit.Upstream][]testkit.Webhook{}}

// takeID takes the webhooks with id that u received, leaving the others
// to later calls.
func takeID(u *testkit.Upstream, id string) []testkit.Webhook {
	taken.Lock()
	defer taken.Unlock()
	var mine, others []testkit.Webhook
	for _, w := range append(taken.by[u], u.Take()...) {
		if w.Header.Get("webhook-id") == id {
			mine = append(mine, w)
		} else {
			others = append(others, w)
		}
	}
	taken.by[u] = others
	return mine
}

// waitAccepted waits until the upstream has accepted a webhook with id, and
// returns the webhooks of that id it received so far (taken).
func waitAccepted(t *testing.T, u *testkit.Upstream, id string, within time.Duration) []testkit.Webhook {
	t.Helper()
	var got []testkit.Webhook
	deadline := time.Now().Add(within)
	for {
		got = append(got, takeID(u, id)...)
		for _, w := range got {
			if w.Accepted() {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream accepted no webhook %q within %v (%d received)", id, within, len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outboxFiles counts the files under the storage's alipay_notify/ folder.
func outboxFiles(t *testing.T, storageDir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(storageDir, "alipay_notify"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return n
}

// switchableFront is an upstream address that is either closed (nothing
// listens: connection refused) or up (a reverse proxy to an Upstream).
type switchableFront struct {
	addr   string
	target *url.URL
	mu     sync.Mutex
	srv    *http.Server
}

func newSwitchableFront(t *testing.T, target *testkit.Upstream) *switchableFront {
	u, _ := url.Parse(target.URL)
	f := &switchableFront{addr: testkit.FreePort(t), target: u}
	t.Cleanup(f.down)
	return f
}

func (f *switchableFront) URL() string { return "http://" + f.addr }

func (f *switchableFront) up(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		return
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after a close
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.srv = &http.Server{Handler: httputil.NewSingleHostReverseProxy(f.target)}
	go f.srv.Serve(ln)
}

func (f *switchableFront) down() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

// TestOutboxRedeliversThroughCaddy: an upstream that answers 503, and one
// that is not listening at all; the notification is answered 502 fail and
// listed by the admin API before that answer; once the upstream is back,
// the outbox delivers the same webhook (same webhook-id, type, timestamp
// and data; a signature the official library verifies) within the first
// retry delay plus a margin, without any new post; Alipay's next retry is
// answered success without a second webhook (outcome delivered_earlier).
func TestOutboxRedeliversThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	refusing := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusServiceUnavailable, 0))
	behind := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusNoContent, 0))
	closed := newSwitchableFront(t, behind)
	const retry = time.Second
	startOutbox(t,
		notifyBlock(t, "/refusing", refusing.URL+"/hooks", "outbox {\n retry 1s\n}"),
		notifyBlock(t, "/closed", closed.URL()+"/hooks", "outbox {\n retry 1s\n}"),
	)

	cases := []struct {
		name, path, id string
		up             func()
		upstream       *testkit.Upstream
		lastError      string
	}{
		{"503", "/refusing", "obx-redeliver-503", func() { refusing.Behave(testkit.Status(http.StatusOK, 0)) }, refusing, "upstream answered 503"},
		{"closed port", "/closed", "obx-redeliver-closed", func() { closed.up(t) }, behind, "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := testkit.Genuine(t, tc.id)
			notify(t, tc.path, body, http.StatusBadGateway, "fail", "upstream_error")
			// Listed before the fail answer was written: at once.
			e := entryOf(t, tc.id)
			if e.State != "pending" || e.Attempts != 1 || e.Type != "alipay.trade_status_sync" || !strings.Contains(e.LastError, tc.lastError) {
				t.Errorf("entry after the failure: %+v", e)
			}
			if e.NextAttempt.IsZero() || e.NextAttempt.Before(e.FirstFailure) || e.NextAttempt.Sub(e.FirstFailure) > retry+time.Second {
				t.Errorf("next_attempt %v, first_failure %v: want the first retry delay (1s) after it", e.NextAttempt, e.FirstFailure)
			}
			first := takeID(tc.upstream, tc.id) // the inline attempt (none through a closed port)

			tc.up()
			recovered := time.Now()
			got := waitAccepted(t, tc.upstream, tc.id, retry+3*time.Second)
			t.Logf("delivered %v after the upstream recovered", time.Since(recovered).Round(time.Millisecond))
			w := got[len(got)-1]
			if w.VerifyErr != nil {
				t.Fatalf("the official library refuses the outbox's webhook: %v", w.VerifyErr)
			}
			if w.Event.Type != "alipay.trade_status_sync" || w.Event.Data["notify_id"] != tc.id || w.Event.Data["total_amount"] != "0.10" {
				t.Errorf("outbox webhook event %+v", w.Event)
			}
			if len(first) == 1 {
				if !bytes.Equal(first[0].Body, w.Body) {
					t.Errorf("the outbox sent another body:\n inline %s\n outbox %s", first[0].Body, w.Body)
				}
				if first[0].Header.Get("webhook-id") != w.Header.Get("webhook-id") {
					t.Errorf("webhook-id changed")
				}
			}
			e = waitEntryState(t, tc.id, "delivered", 3*time.Second)
			if _, has := e.raw["next_attempt"]; has {
				t.Errorf("a delivered entry shows next_attempt: %s", e.raw["next_attempt"])
			}
			if e.Attempts < 2 {
				t.Errorf("attempts %d after a failure and a delivery", e.Attempts)
			}

			// Alipay's retry: verified, answered success, not forwarded.
			notify(t, tc.path, body, http.StatusOK, "success", "delivered_earlier")
			notify(t, tc.path, body, http.StatusOK, "success", "delivered_earlier")
			time.Sleep(100 * time.Millisecond)
			if n := tc.upstream.Count(tc.id); n != len(got)+len(first) {
				t.Errorf("the upstream received %d webhooks %s, want %d: a retry after delivery was forwarded again", n, tc.id, len(got)+len(first))
			}
		})
	}
	samples := scrapeMetrics(t)
	if got := notificationsTotal(samples, "delivered_earlier"); got != 4 {
		t.Errorf(`notifications_total{outcome="delivered_earlier"} = %v, want 4`, got)
	}
	if got := samples[`caddy_alipay_notify_outbox_deliveries_total{result="accepted"}`]; got != 2 {
		t.Errorf(`outbox_deliveries_total{result="accepted"} = %v, want 2`, got)
	}
}

// TestOutboxRetryWhilePendingThroughCaddy: Alipay's retry of a notification
// still pending is forwarded as usual, and its 2xx marks the entry
// delivered; a retry of a dead one too.
func TestOutboxRetryWhilePendingThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusBadGateway, 0))
	startOutbox(t,
		notifyBlock(t, "/notify", upstream.URL, "outbox {\n retry 1h\n}"),
		notifyBlock(t, "/short", upstream.URL+"/short", "outbox {\n retry 1h\n give_up 1s\n}"),
	)
	pending, dead := testkit.Genuine(t, "obx-pending"), testkit.Genuine(t, "obx-dead")
	notify(t, "/notify", pending, http.StatusBadGateway, "fail", "upstream_error")
	notify(t, "/short", dead, http.StatusBadGateway, "fail", "upstream_error")
	// The next attempt of the short one falls on its give_up deadline.
	waitEntryState(t, "obx-dead", "dead", 5*time.Second)
	if e := entryOf(t, "obx-pending"); e.State != "pending" || e.Attempts != 1 {
		t.Fatalf("pending entry %+v", e)
	}
	// A second failure while pending counts the attempt.
	notify(t, "/notify", pending, http.StatusBadGateway, "fail", "upstream_error")
	if e := entryOf(t, "obx-pending"); e.State != "pending" || e.Attempts != 2 {
		t.Fatalf("after a second failed retry: %+v", e)
	}
	upstream.Take()

	upstream.Behave(testkit.Status(http.StatusOK, 0))
	for _, c := range []struct{ path, id, body string }{{"/notify", "obx-pending", pending}, {"/short", "obx-dead", dead}} {
		notify(t, c.path, c.body, http.StatusOK, "success", "forwarded")
		if n := upstream.Count(c.id); n == 0 {
			t.Fatalf("%s: the retry was not forwarded", c.id)
		}
		e := entryOf(t, c.id)
		if e.State != "delivered" {
			t.Errorf("%s after an accepted retry: %+v, want delivered", c.id, e)
		}
		before := upstream.Count(c.id)
		notify(t, c.path, c.body, http.StatusOK, "success", "delivered_earlier")
		if after := upstream.Count(c.id); after != before {
			t.Errorf("%s: forwarded again after the entry was delivered", c.id)
		}
	}
	if e := entryOf(t, "obx-pending"); e.Attempts != 3 {
		t.Errorf("attempts %d, want 3 (two failures and the accepted retry)", e.Attempts)
	}
}

// TestOutboxGiveUpAndReplayThroughCaddy: after give_up an entry is dead (no
// next_attempt, no more automatic delivery); a replay through the admin API,
// by id or of every dead entry, delivers it.
func TestOutboxGiveUpAndReplayThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusServiceUnavailable, 0))
	startOutbox(t, notifyBlock(t, "/notify", upstream.URL, "outbox {\n retry 500ms\n give_up 2s\n}"))
	ids := []string{"obx-replay-by-id", "obx-replay-dead-1", "obx-replay-dead-2"}
	for _, id := range ids {
		notify(t, "/notify", testkit.Genuine(t, id), http.StatusBadGateway, "fail", "upstream_error")
	}
	for _, id := range ids {
		e := waitEntryState(t, id, "dead", 2*time.Second+3*time.Second)
		if _, has := e.raw["next_attempt"]; has {
			t.Errorf("a dead entry shows next_attempt: %s", e.raw["next_attempt"])
		}
		if e.Attempts < 2 || e.LastError != "upstream answered 503" {
			t.Errorf("dead entry %+v", e)
		}
	}
	// No automatic delivery after give_up.
	hits, _ := upstream.Totals()
	time.Sleep(1500 * time.Millisecond)
	if after, _ := upstream.Totals(); after != hits {
		t.Errorf("%d webhooks sent after every entry was dead", after-hits)
	}
	if dead := listOutbox(t, "?state=dead"); len(dead) != 3 {
		t.Fatalf("%d dead entries listed, want 3", len(dead))
	}
	upstream.Take()
	sentBefore := map[string]int{}
	for _, id := range ids {
		sentBefore[id] = upstream.Count(id)
	}
	upstream.Behave(testkit.Status(http.StatusOK, 0))

	status, body := adminCall(t, http.MethodPost, "/alipay_notify/outbox/replay", `{"ids":["obx-replay-by-id","obx-never-seen"]}`)
	if status != http.StatusOK || strings.TrimSpace(string(body)) != `{"replayed":1}` {
		t.Fatalf("replay by id: %d %s, want 200 {\"replayed\":1}", status, body)
	}
	waitAccepted(t, upstream, "obx-replay-by-id", 3*time.Second)
	waitEntryState(t, "obx-replay-by-id", "delivered", 3*time.Second)
	if n := len(listOutbox(t, "?state=dead")); n != 2 {
		t.Errorf("%d dead entries after replaying one, want 2", n)
	}

	status, body = adminCall(t, http.MethodPost, "/alipay_notify/outbox/replay", `{"state":"dead"}`)
	if status != http.StatusOK || strings.TrimSpace(string(body)) != `{"replayed":2}` {
		t.Fatalf("replay dead: %d %s, want 200 {\"replayed\":2}", status, body)
	}
	for _, id := range ids[1:] {
		waitAccepted(t, upstream, id, 3*time.Second)
		waitEntryState(t, id, "delivered", 3*time.Second)
	}
	time.Sleep(500 * time.Millisecond)
	for _, id := range ids {
		if n := upstream.Count(id) - sentBefore[id]; n != 1 {
			t.Errorf("%s delivered %d times after its replay, want 1", id, n)
		}
	}
}

// TestOutboxAdminAPIThroughCaddy: the list, its state filter and fields,
// the forward field across two handlers, DELETE, and the API's refusals.
func TestOutboxAdminAPIThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	one := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusInternalServerError, 0))
	two := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusInternalServerError, 0))
	startOutbox(t,
		notifyBlock(t, "/one", one.URL+"/hooks", "outbox {\n retry 1h\n}"),
		notifyBlock(t, "/two", two.URL+"/hooks", "outbox {\n retry 1h\n}"),
	)
	if got := listOutbox(t, ""); len(got) != 0 {
		t.Fatalf("an empty outbox lists %d entries", len(got))
	}
	before := time.Now().Add(-time.Second)
	notify(t, "/one", testkit.Genuine(t, "obx-admin-a"), http.StatusBadGateway, "fail", "")
	notify(t, "/two", testkit.Genuine(t, "obx-admin-b"), http.StatusBadGateway, "fail", "")
	// The same notify_id in both handlers: two entries, one per forward.
	notify(t, "/two", testkit.Genuine(t, "obx-admin-a"), http.StatusBadGateway, "fail", "")

	all := listOutbox(t, "")
	if len(all) != 3 {
		t.Fatalf("%d entries, want 3: %+v", len(all), all)
	}
	forwards := map[string]int{}
	for _, e := range all {
		for _, field := range []string{"id", "state", "type", "attempts", "first_failure", "next_attempt", "last_error", "forward"} {
			if _, ok := e.raw[field]; !ok {
				t.Errorf("entry %s has no %q field: %v", e.ID, field, e.raw)
			}
		}
		if _, ok := e.raw["body"]; ok {
			t.Errorf("entry %s shows the webhook body (payment details) in the list", e.ID)
		}
		if e.State != "pending" || e.Type != "alipay.trade_status_sync" || e.Attempts != 1 || e.LastError != "upstream answered 500" {
			t.Errorf("entry %+v", e)
		}
		if e.FirstFailure.Before(before) || e.FirstFailure.After(time.Now()) {
			t.Errorf("first_failure %v", e.FirstFailure)
		}
		var ff string
		_ = json.Unmarshal(e.raw["first_failure"], &ff)
		if _, err := time.Parse(time.RFC3339, ff); err != nil {
			t.Errorf("first_failure %q is not RFC 3339", ff)
		}
		forwards[e.Forward]++
	}
	if forwards[one.URL+"/hooks"] != 1 || forwards[two.URL+"/hooks"] != 2 {
		t.Errorf("forward fields %v", forwards)
	}
	for query, want := range map[string]int{"?state=pending": 3, "?state=dead": 0, "?state=delivered": 0, "?state=": 3} {
		if got := listOutbox(t, query); len(got) != want {
			t.Errorf("%s lists %d entries, want %d", query, len(got), want)
		}
	}
	if status, body := adminCall(t, http.MethodGet, "/alipay_notify/outbox?state=gone", ""); status != http.StatusBadRequest {
		t.Errorf("?state=gone: %d %s, want 400", status, body)
	}

	// DELETE drops one entry (every namespace's), at once.
	status, body := adminCall(t, http.MethodDelete, "/alipay_notify/outbox/obx-admin-b", "")
	if status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s, want 204", status, body)
	}
	if e := findEntry(listOutbox(t, ""), "obx-admin-b"); e != nil {
		t.Errorf("entry still listed after DELETE: %+v", e)
	}
	if status, body := adminCall(t, http.MethodDelete, "/alipay_notify/outbox/obx-admin-b", ""); status != http.StatusNotFound {
		t.Errorf("DELETE of a dropped entry: %d %s, want 404", status, body)
	}
	if status, body := adminCall(t, http.MethodDelete, "/alipay_notify/outbox/obx-never-seen", ""); status != http.StatusNotFound {
		t.Errorf("DELETE of an unknown id: %d %s, want 404", status, body)
	}
	// A dropped entry is not delivered: Alipay's retry is forwarded anew.
	if n := len(listOutbox(t, "")); n != 2 {
		t.Errorf("%d entries after one DELETE, want 2", n)
	}

	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/alipay_notify/outbox/replay", `{}`},
		{http.MethodPost, "/alipay_notify/outbox/replay", `{"state":"pending"}`},
		{http.MethodPost, "/alipay_notify/outbox/replay", `{"ids":["a"],"state":"dead"}`},
		{http.MethodPost, "/alipay_notify/outbox/replay", `not json`},
	} {
		if status, body := adminCall(t, c.method, c.path, c.body); status != http.StatusBadRequest {
			t.Errorf("%s %s %s: %d %s, want 400", c.method, c.path, c.body, status, body)
		}
	}
	if status, _ := adminCall(t, http.MethodPost, "/alipay_notify/outbox", `{}`); status != http.StatusMethodNotAllowed {
		t.Errorf("POST to the list: %d, want 405", status)
	}
	if status, _ := adminCall(t, http.MethodGet, "/alipay_notify/outbox/replay", ""); status == http.StatusOK {
		t.Errorf("GET replay answered 200")
	}
}

// TestOutboxStorageUnwritableThroughCaddy: when the outbox cannot be
// written, the answer stays 502 fail (never success), one log line names
// the storage error and the notify_id, and Caddy goes on serving.
func TestOutboxStorageUnwritableThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusServiceUnavailable, 0))
	storage := filepath.Join(t.TempDir(), "storage")
	c := startOutboxCaddy(t, storage, outboxSite(notifyBlock(t, "/notify", upstream.URL, "outbox {\n retry 1s\n}")))
	// The storage breaks once Caddy runs (Caddy's own start-up needs it):
	// a regular file where its folder was, so that every read and write
	// under it fails ("not a directory"), root or not.
	if err := os.RemoveAll(storage); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(storage, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // a scan or two of the broken storage
	c.logs.entries(t)

	const id = "obx-unwritable"
	for range 2 {
		notify(t, "/notify", testkit.Genuine(t, id), http.StatusBadGateway, "fail", "upstream_error")
	}
	var withID []map[string]any
	var storageLines []map[string]any
	for _, e := range c.logs.entries(t) {
		line, _ := json.Marshal(e)
		if !strings.Contains(string(line), id) {
			continue
		}
		withID = append(withID, e)
		if strings.Contains(string(line), "not a directory") {
			storageLines = append(storageLines, e)
		}
	}
	if len(storageLines) != 2 {
		t.Errorf("%d log lines with the storage error and the notify_id for 2 notifications, want one each:\n%v", len(storageLines), withID)
	}
	for _, e := range storageLines {
		if e["notify_id"] != id || e["level"] != "error" || !strings.Contains(fmt.Sprint(e["outbox_error"]), "not a directory") {
			t.Errorf("want the storage error as outbox_error and the notify_id on an ERROR line: %v", e)
		}
	}
	// Caddy stays up: the happy path still works, and the admin API answers
	// (with an error for the outbox it cannot read).
	upstream.Behave(testkit.Status(http.StatusOK, 0))
	notify(t, "/notify", testkit.Genuine(t, id), http.StatusOK, "success", "forwarded")
	if status, body := adminCall(t, http.MethodGet, "/alipay_notify/outbox", ""); status != http.StatusInternalServerError {
		t.Errorf("list of an unreadable outbox: %d %s, want 500", status, body)
	}
	if status, _ := adminCall(t, http.MethodGet, "/config/", ""); status != http.StatusOK {
		t.Errorf("admin API: %d", status)
	}
}

// TestOutboxForgedNeverEntersThroughCaddy: a notification that does not
// verify is refused before forwarding, so it never enters the outbox even
// when the upstream is down.
func TestOutboxForgedNeverEntersThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusServiceUnavailable, 0))
	c := startOutbox(t, notifyBlock(t, "/notify", upstream.URL, "outbox {\n retry 1s\n}"))
	params := testkit.Set(testkit.TradeParams(testkit.AppID, time.Now()), "notify_id", "obx-forged")
	forged := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "app"), params, false))
	tampered := testkit.EncodeForm(testkit.Set(testkit.Signed(t, testkit.Key(t, "alipay"), params, false), "total_amount", "999.00"))
	notify(t, "/notify", forged, http.StatusForbidden, "fail", "bad_signature")
	notify(t, "/notify", tampered, http.StatusForbidden, "fail", "bad_signature")
	if got := listOutbox(t, ""); len(got) != 0 {
		t.Errorf("forged notifications in the outbox: %+v", got)
	}
	if n := outboxFiles(t, c.storageDir); n != 0 {
		t.Errorf("%d files under alipay_notify/ after forged notifications", n)
	}
	if hits, _ := upstream.Totals(); hits != 0 {
		t.Errorf("%d forged webhooks reached the upstream", hits)
	}
}

// TestOutboxReloadThroughCaddy: entries pending across reloads (a changed
// config that keeps the handler, and a forced reload of the same one) are
// delivered once each, not once per config loaded.
func TestOutboxReloadThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusServiceUnavailable, 0))
	block := notifyBlock(t, "/notify", upstream.URL, "outbox {\n retry 2s\n}")
	c := startOutbox(t, block)
	const n = 5
	var ids []string
	for i := range n {
		id := fmt.Sprintf("obx-reload-%d", i)
		ids = append(ids, id)
		notify(t, "/notify", testkit.Genuine(t, id), http.StatusBadGateway, "fail", "upstream_error")
	}
	upstream.Take()
	sentBefore := map[string]int{}
	for _, id := range ids {
		sentBefore[id] = upstream.Count(id)
	}
	// Reload twice while every entry is pending: a config with one more
	// route that also logs to another file (Caddy closes the first one),
	// then the same config forced.
	first := c.logs
	c.logs = &caddyLogFile{path: filepath.Join(t.TempDir(), "caddy-reloaded.log")}
	c.load(t, outboxSite(block, `respond /other "other" 200`))
	c.forceReload(t)
	first.entries(t) // what the first file got until now
	upstream.Behave(testkit.Status(http.StatusOK, 0))
	for _, id := range ids {
		waitEntryState(t, id, "delivered", 2*time.Second+3*time.Second)
	}
	// The worker, which outlived the first config, logs where the config
	// in force logs.
	delivered := map[string]bool{}
	for _, e := range c.logs.entries(t) {
		if e["msg"] == "outbox delivery" && e["result"] == "accepted" {
			delivered[fmt.Sprint(e["id"])] = true
			if e["logger"] != "http.handlers.alipay_notify.outbox" {
				t.Errorf("delivery logged by %v", e["logger"])
			}
		}
	}
	if len(delivered) != n {
		t.Errorf("the log file in force shows %d outbox deliveries, want %d", len(delivered), n)
	}
	for _, e := range first.entries(t) {
		if e["msg"] == "outbox delivery" {
			t.Errorf("an outbox delivery logged to the unloaded config's file: %v", e)
		}
	}
	time.Sleep(2 * time.Second) // a few more scans: no second delivery
	for _, id := range ids {
		if got := upstream.Count(id) - sentBefore[id]; got != 1 {
			t.Errorf("%s delivered %d times across the reloads, want 1", id, got)
		}
	}
	if got := scrapeMetrics(t)[`caddy_alipay_notify_outbox_deliveries_total{result="accepted"}`]; got != n {
		t.Errorf(`outbox_deliveries_total{result="accepted"} = %v after the reloads, want %d`, got, n)
	}
}

// TestOutboxMetricsThroughCaddy: the three outbox metrics and the
// delivered_earlier outcome are there, every series, before any
// notification; the gauges follow the outbox within 5 s; a refused
// connection counts as result="error", a timeout as "timeout".
func TestOutboxMetricsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusServiceUnavailable, 0))
	release := make(chan struct{})
	hanging := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	closed := newSwitchableFront(t, upstream)
	startOutbox(t,
		notifyBlock(t, "/notify", upstream.URL, "outbox {\n retry 1s\n}"),
		// The same settings: the same worker, whose deliveries count once.
		notifyBlock(t, "/notify-too", upstream.URL, "outbox {\n retry 1s\n}"),
		// The same forward URL, other settings: another worker on the same
		// outbox (namespace), whose entries count once.
		notifyBlock(t, "/notify-other", upstream.URL, "timeout 9s\noutbox {\n retry 1s\n}"),
		notifyBlock(t, "/hanging", hanging.URL, "timeout 300ms\noutbox {\n retry 1s\n give_up 1500ms\n}"),
		notifyBlock(t, "/closed", closed.URL(), "outbox {\n retry 1s\n give_up 1500ms\n}"),
	)
	samples := scrapeMetrics(t)
	for _, series := range []string{
		`caddy_alipay_notify_outbox_entries{state="pending"}`,
		`caddy_alipay_notify_outbox_entries{state="dead"}`,
		`caddy_alipay_notify_outbox_entries{state="delivered"}`,
		`caddy_alipay_notify_outbox_deliveries_total{result="accepted"}`,
		`caddy_alipay_notify_outbox_deliveries_total{result="refused"}`,
		`caddy_alipay_notify_outbox_deliveries_total{result="error"}`,
		`caddy_alipay_notify_outbox_deliveries_total{result="timeout"}`,
		`caddy_alipay_notify_outbox_oldest_pending_seconds`,
		`caddy_alipay_notify_notifications_total{app_id="` + testkit.AppID + `",outcome="delivered_earlier"}`,
	} {
		value, ok := samples[series]
		if !ok {
			t.Errorf("no series %s before the first notification", series)
		} else if value != 0 {
			t.Errorf("%s = %v at start, want 0", series, value)
		}
	}

	waitMetric := func(series string, ok func(float64) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			samples := scrapeMetrics(t)
			v := samples[series]
			if outcome, isOutcome := strings.CutPrefix(series, "outcome="); isOutcome {
				v = notificationsTotal(samples, outcome) // every app_id
			}
			if ok(v) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v 5 s on, want %s", series, v, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	is := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }

	notify(t, "/notify", testkit.Genuine(t, "obx-metrics"), http.StatusBadGateway, "fail", "upstream_error")
	waitMetric(`caddy_alipay_notify_outbox_entries{state="pending"}`, is(1), "1")
	waitMetric(`caddy_alipay_notify_outbox_oldest_pending_seconds`, func(v float64) bool { return v > 0 }, "> 0")
	waitMetric(`caddy_alipay_notify_outbox_deliveries_total{result="refused"}`, func(v float64) bool { return v >= 1 }, "≥ 1")

	time.Sleep(2 * time.Second) // every worker has scanned since
	if v := scrapeMetrics(t)[`caddy_alipay_notify_outbox_entries{state="pending"}`]; v != 1 {
		t.Errorf(`outbox_entries{state="pending"} = %v for one entry seen by two workers, want 1`, v)
	}
	upstream.Behave(testkit.Status(http.StatusOK, 0))
	waitMetric(`caddy_alipay_notify_outbox_entries{state="delivered"}`, is(1), "1")
	waitMetric(`caddy_alipay_notify_outbox_entries{state="pending"}`, is(0), "0")
	waitMetric(`caddy_alipay_notify_outbox_oldest_pending_seconds`, is(0), "0")
	waitMetric(`caddy_alipay_notify_outbox_deliveries_total{result="accepted"}`, is(1), "1")
	time.Sleep(1500 * time.Millisecond)
	if v := scrapeMetrics(t)[`caddy_alipay_notify_outbox_deliveries_total{result="accepted"}`]; v != 1 {
		t.Errorf(`outbox_deliveries_total{result="accepted"} = %v for one delivery, want 1`, v)
	}
	if n := upstream.Count("obx-metrics"); n < 2 {
		t.Errorf("upstream received %d webhooks obx-metrics", n)
	}
	notify(t, "/notify", testkit.Genuine(t, "obx-metrics"), http.StatusOK, "success", "delivered_earlier")
	notify(t, "/notify-other", testkit.Genuine(t, "obx-metrics"), http.StatusOK, "success", "delivered_earlier")
	waitMetric("outcome=delivered_earlier", is(2), "2")

	notify(t, "/hanging", testkit.Genuine(t, "obx-metrics-timeout"), http.StatusGatewayTimeout, "fail", "upstream_timeout")
	notify(t, "/closed", testkit.Genuine(t, "obx-metrics-closed"), http.StatusBadGateway, "fail", "upstream_error")
	waitMetric(`caddy_alipay_notify_outbox_deliveries_total{result="timeout"}`, func(v float64) bool { return v >= 1 }, "≥ 1")
	waitMetric(`caddy_alipay_notify_outbox_deliveries_total{result="error"}`, func(v float64) bool { return v >= 1 }, "≥ 1")
	waitMetric(`caddy_alipay_notify_outbox_entries{state="dead"}`, is(2), "2")
	if e := entryOf(t, "obx-metrics-timeout"); !strings.HasPrefix(e.LastError, "timeout") {
		t.Errorf("last_error of a timed-out delivery: %q", e.LastError)
	}
}

// TestOutboxHappyPathWritesNothingThroughCaddy: with the upstream accepting
// at once, the outbox writes nothing to the storage.
func TestOutboxHappyPathWritesNothingThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	c := startOutbox(t, notifyBlock(t, "/notify", upstream.URL, "outbox"))
	time.Sleep(1500 * time.Millisecond) // the worker has scanned
	before := outboxFiles(t, c.storageDir)
	for i := range 20 {
		body := testkit.Genuine(t, fmt.Sprintf("obx-happy-%d", i))
		notify(t, "/notify", body, http.StatusOK, "success", "forwarded")
		notify(t, "/notify", body, http.StatusOK, "success", "forwarded") // Alipay's retry of an accepted one: forwarded again
	}
	time.Sleep(1500 * time.Millisecond)
	if after := outboxFiles(t, c.storageDir); after != before || after != 0 {
		t.Errorf("files under alipay_notify/: %d before, %d after 40 accepted notifications, want 0", before, after)
	}
}

// TestOutboxForwardChangedThroughCaddy: a reload changes the handler's
// forward URL while an entry is pending. Nothing delivers entries under the
// old URL, so they must not go unnoticed: Caddy logs a WARN naming the old
// URL and the fix, the gauges count the entry (the oldest pending age
// alerts on it), and POST /alipay_notify/outbox/move hands it to the
// handler, which delivers it to the new upstream at once.
func TestOutboxForwardChangedThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	oldUp := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusServiceUnavailable, 0))
	newUp := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusNoContent, 0))
	oldForward, newForward := oldUp.URL+"/hooks", newUp.URL+"/hooks"
	c := startOutbox(t, notifyBlock(t, "/notify", oldForward, "outbox {\n retry 1h\n}"))
	notify(t, "/notify", testkit.Genuine(t, "obx-forward-changed"), http.StatusBadGateway, "fail", "upstream_error")
	c.load(t, outboxSite(notifyBlock(t, "/notify", newForward, "outbox {\n retry 1h\n}")))

	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrapeMetrics(t)
		if m[`caddy_alipay_notify_outbox_entries{state="pending"}`] == 1 && m["caddy_alipay_notify_outbox_oldest_pending_seconds"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gauges do not count the entry under the old forward URL: pending %v, oldest %v",
				m[`caddy_alipay_notify_outbox_entries{state="pending"}`], m["caddy_alipay_notify_outbox_oldest_pending_seconds"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	var warned bool
	for _, e := range c.logs.entries(t) {
		if e["level"] == "warn" && strings.Contains(fmt.Sprint(e["msg"]), "no alipay_notify handler of this instance delivers to") {
			warned = e["forward"] == oldForward && e["pending"] == float64(1) && strings.Contains(fmt.Sprint(e["fix"]), "outbox move")
		}
	}
	if !warned {
		t.Error("no WARN line naming the old forward URL, its pending entry and the fix")
	}
	if oldUp.Count("obx-forward-changed") != 1 || newUp.Count("obx-forward-changed") != 0 {
		t.Fatal("delivered before the move")
	}

	status, body := adminCall(t, http.MethodPost, "/alipay_notify/outbox/move", fmt.Sprintf(`{"from": %q, "to": %q}`, oldForward, "http://127.0.0.1:1/x"))
	if status != http.StatusBadRequest || !strings.Contains(string(body), "no alipay_notify handler with an outbox forwards to") {
		t.Errorf("move to an unserved URL: %d %s", status, body)
	}
	status, body = adminCall(t, http.MethodPost, "/alipay_notify/outbox/move", fmt.Sprintf(`{"from": %q, "to": %q}`, oldForward, newForward))
	if status != http.StatusOK || strings.TrimSpace(string(body)) != `{"moved":1}` {
		t.Fatalf("move: %d %s", status, body)
	}
	e := waitEntryState(t, "obx-forward-changed", "delivered", 5*time.Second)
	if e.Forward != newForward || newUp.Count("obx-forward-changed") != 1 {
		t.Errorf("after the move: %+v, new upstream got it %d times", e, newUp.Count("obx-forward-changed"))
	}
	// Alipay's retry is answered from the moved entry.
	notify(t, "/notify", testkit.Genuine(t, "obx-forward-changed"), http.StatusOK, "success", "delivered_earlier")
	deadline = time.Now().Add(10 * time.Second)
	for scrapeMetrics(t)[`caddy_alipay_notify_outbox_entries{state="pending"}`] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the moved entry still counts as pending")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
