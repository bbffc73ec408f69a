package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// The outbox (DESIGN.md §9) through the built binary: entries survive a
// crash (SIGKILL) and are delivered after the restart; under load, with the
// upstream down for a while, every verified notification reaches the
// upstream, "success" is answered only for accepted ones, and Caddy's
// memory stays flat. Deadlines are for liveness only.

// runCaddyIn is testkit.RunCaddy on a data and config folder of the test's
// choosing, kept across runs (a restart finds its storage there).
func runCaddyIn(t *testing.T, dir, caddyfile, listen string) *testkit.Process {
	t.Helper()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testkit.CaddyBinary(t), "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "HOME="+dir)
	p := testkit.StartProcess(t, cmd)
	testkit.WaitListening(t, listen, 20*time.Second)
	return p
}

// outboxEntries lists the outbox through the admin API at admin.
func outboxEntries(t *testing.T, admin, query string) []map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/alipay_notify/outbox" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /alipay_notify/outbox%s: %d %s", query, resp.StatusCode, body)
	}
	var entries []map[string]any
	if err := json.Unmarshal(body, &entries); err != nil {
		t.Fatalf("outbox list: %v: %s", err, body)
	}
	return entries
}

// adminMetrics scrapes the admin endpoint's /metrics: the alipay_notify
// samples by "name{labels}".
func adminMetrics(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	samples := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "caddy_alipay_notify_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			samples[line[:i]] = v
		}
	}
	return samples
}

// TestOutboxSurvivesKill: the upstream is down while notifications arrive
// (all answered fail, all in the outbox); it comes back, slowly, and while
// the outbox is draining Caddy is killed (SIGKILL, mid-delivery); started
// again on the same data directory, it delivers every entry left, within
// the stale-lock time of DESIGN §9 (30 s at most) plus a margin.
func TestOutboxSurvivesKill(t *testing.T) {
	testkit.CaddyBinary(t)
	up := testkit.NewAcceptor(true, 300*time.Millisecond)
	upstream := testkit.NewUpstream(t, testkit.Secret, up.Behave)
	dir := t.TempDir()
	listen, admin := testkit.FreePort(t), testkit.FreePort(t)
	caddyfile := notifyCaddyfile(t, listen, admin, notifyRoute{"/alipay/notify", upstream.URL, "outbox {\n\t\t\tretry 1s\n\t\t}"})
	p := runCaddyIn(t, dir, caddyfile, listen)

	const n = 40
	var ids []string
	for i := range n {
		id := fmt.Sprintf("kill-%03d", i)
		ids = append(ids, id)
		if status, answer, _ := testkit.Post(t, "http://"+listen+"/alipay/notify", testkit.Genuine(t, id)); status != http.StatusBadGateway || answer != "fail" {
			t.Fatalf("%s with the upstream down: %d %q, want 502 fail", id, status, answer)
		}
	}
	if pending := outboxEntries(t, admin, "?state=pending"); len(pending) != n {
		t.Fatalf("%d pending entries, want %d", len(pending), n)
	}

	up.SetDown(false)
	deadline := time.Now().Add(15 * time.Second)
	for up.Distinct() < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d entries delivered 15 s after the upstream recovered", up.Distinct())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = p.Cmd.Process.Wait()
	killedAt := time.Now()
	before := up.Distinct()
	t.Logf("killed with %d of %d entries delivered", before, n)
	if before == n {
		t.Fatal("every entry was delivered before the kill; nothing left to prove")
	}

	p = runCaddyIn(t, dir, caddyfile, listen)
	// The deliveries in flight at the kill reached the upstream, which
	// accepted them after the kill; their entries stay pending, under the
	// killed process's locks, until those are taken over, and are
	// delivered again then. DESIGN §9: a crashed instance's lock is taken
	// over within the storage's stale-lock time, 30 s at most (FileStorage:
	// 10 s after its last refresh; a lock file left empty by a kill during
	// its creation, about 17 s: the outbox's blocking Lock after 15 s of
	// failed tries, which waits 2 s on an empty file).
	const takeover = 30 * time.Second
	if missing := up.WaitAll(ids, takeover+5*time.Second); len(missing) > 0 {
		t.Fatalf("%d entries never delivered after the restart: %v", len(missing), missing)
	}
	deadline = killedAt.Add(takeover + 5*time.Second)
	for {
		pending := outboxEntries(t, admin, "?state=pending")
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still pending %v after the kill: %v", len(pending), takeover+5*time.Second, pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every entry delivered %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	if delivered := outboxEntries(t, admin, "?state=delivered"); len(delivered) != n {
		t.Errorf("%d entries delivered, want %d", len(delivered), n)
	}
	dups := up.Duplicates(ids)
	// The deliveries in flight at the kill may be made again: at most one
	// per delivery goroutine (8).
	t.Logf("duplicate deliveries: %d (in flight at the kill)", dups)
	if dups > 8 {
		t.Errorf("%d duplicate deliveries, more than the 8 that may have been in flight at the kill", dups)
	}
	if hits, invalid := upstream.Totals(); invalid != 0 {
		t.Errorf("%d of %d webhooks refused by the official library", invalid, hits)
	}
	if p.Count("panic") != 0 {
		t.Error("Caddy logged a panic")
	}
}

// TestOutboxInvariantUnderLoad sends genuine notifications, mixed with
// forged and tampered ones, at 32 connections through the built binary; the
// upstream is down (503) from a fifth to half of them, then back. Then
// Alipay's retry of every notification answered fail arrives, while the
// outbox drains. Checked on every notification:
//
//   - every verified notification is accepted by the upstream at least
//     once (by webhook-id): none lost;
//   - "success" only for a notification the upstream had accepted by then;
//   - a forged or tampered one never reaches the upstream or the outbox;
//   - duplicate deliveries are counted and reported;
//   - Caddy's memory stays flat.
//
// OUTBOX_LOAD_NOTIFICATIONS sets the number of genuine notifications
// (default 10 000; about 30 s here, on 2 cores):
//
//	OUTBOX_LOAD_NOTIFICATIONS=50000 go test -run TestOutboxInvariantUnderLoad -v -timeout 30m ./e2e
func TestOutboxInvariantUnderLoad(t *testing.T) {
	testkit.CaddyBinary(t)
	total := loadSize(t, "OUTBOX_LOAD_NOTIFICATIONS", 10000)
	const connections = 32
	up := testkit.NewAcceptor(false, 0)
	upstream := testkit.NewUpstream(t, testkit.Secret, up.Behave)
	dir := t.TempDir()
	listen, admin := testkit.FreePort(t), testkit.FreePort(t)
	p := runCaddyIn(t, dir, notifyCaddyfile(t, listen, admin,
		notifyRoute{"/alipay/notify", upstream.URL, "timeout 10s\n\t\toutbox {\n\t\t\tretry 1s 2s\n\t\t}"}), listen)
	pid := p.Cmd.Process.Pid

	start := time.Now()
	notifications := presign(t, total, 20)
	t.Logf("signed %d notifications (%d genuine) in %s", len(notifications), total, time.Since(start).Round(time.Millisecond))

	client := loadClient(connections)
	defer client.CloseIdleConnections()
	type answered struct {
		answerRecord
		at time.Time // when the answer arrived
	}
	// send posts the notifications of indexes to Caddy at 32 connections;
	// progress is called after each answer with the count so far.
	send := func(indexes []int, answers []answered, progress func(done int64)) {
		var done atomic.Int64
		testkit.Spread(connections, len(indexes), func(k int) {
			i := indexes[k]
			a := post(client, "http://"+listen+"/alipay/notify", notifications[i].body)
			answers[i] = answered{a, time.Now()}
			if progress != nil {
				progress(done.Add(1))
			}
		})
	}

	// The first round, with the upstream down from a fifth to half of it.
	all := make([]int, len(notifications))
	for i := range all {
		all[i] = i
	}
	first := make([]answered, len(notifications))
	var rssMu sync.Mutex
	rss := map[string]int64{}
	sample := func(name string) {
		kib := rssKiB(t, pid)
		rssMu.Lock()
		rss[name] = kib
		rssMu.Unlock()
	}
	n := int64(len(notifications))
	start = time.Now()
	send(all, first, func(done int64) {
		switch done {
		case n / 5:
			sample("warm")
			up.SetDown(true)
		case n / 2:
			up.SetDown(false)
		}
	})
	firstRound := time.Since(start)
	sample("first round")

	// Alipay's retry of every genuine notification answered fail, while the
	// outbox drains.
	var retry []int
	for i, nt := range notifications {
		if nt.genuine && !(first[i].err == nil && first[i].status == http.StatusOK) {
			retry = append(retry, i)
		}
	}
	second := make([]answered, len(notifications))
	start = time.Now()
	send(retry, second, nil)
	retryRound := time.Since(start)

	var genuineIDs []string
	for _, nt := range notifications {
		if nt.genuine {
			genuineIDs = append(genuineIDs, nt.id)
		}
	}
	start = time.Now()
	missing := up.WaitAll(genuineIDs, 60*time.Second)
	drain := time.Since(start)
	if len(missing) > 0 {
		t.Errorf("%d verified notifications never accepted by the upstream (lost), e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	// The outbox settles: nothing pending, nothing dead.
	deadline := time.Now().Add(10 * time.Second)
	var entries []map[string]any
	for {
		entries = outboxEntries(t, admin, "")
		pending := 0
		for _, e := range entries {
			if e["state"] != "delivered" {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outbox entries not delivered 10 s after every webhook was accepted", pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sample("end")

	// Every answer against what the upstream did.
	counts := map[string]int{}
	check := func(round string, i int, a answered) {
		nt := notifications[i]
		acceptedAt, _ := up.Accepted(nt.id)
		switch {
		case !nt.genuine:
			counts["forged or tampered"]++
			if a.err == nil && (a.status != http.StatusForbidden || a.answer != "fail") {
				t.Errorf("%s (%s): answer %d %q, want 403 fail", nt.id, nt.kind, a.status, a.answer)
			}
		case a.err != nil:
			counts[round+": client gave up"]++
		case a.status == http.StatusOK && a.answer == "success":
			counts[round+": success"]++
			if acceptedAt.IsZero() || acceptedAt.After(a.at) {
				t.Errorf("%s (%s) answered success at %v, but the upstream accepted it at %v", nt.id, round, a.at, acceptedAt)
			}
		case (a.status == http.StatusBadGateway || a.status == http.StatusGatewayTimeout) && a.answer == "fail":
			counts[round+": fail"]++
		default:
			t.Errorf("%s (%s): answer %d %q", nt.id, round, a.status, a.answer)
		}
	}
	for i := range notifications {
		check("first", i, first[i])
	}
	for _, i := range retry {
		check("retry", i, second[i])
	}

	// Forged ones reached neither the upstream nor the outbox; every entry
	// is a genuine notification that failed at first.
	failedFirst := map[string]bool{}
	for _, i := range retry {
		failedFirst[notifications[i].id] = true
	}
	for _, nt := range notifications {
		if _, times := up.Accepted(nt.id); !nt.genuine && times != 0 {
			t.Errorf("%s (%s) reached the upstream", nt.id, nt.kind)
		}
	}
	for _, e := range entries {
		id, _ := e["id"].(string)
		if !failedFirst[id] {
			t.Errorf("outbox entry %q is not a notification that failed", id)
		}
	}
	if len(entries) != len(failedFirst) {
		t.Errorf("%d outbox entries for %d notifications that failed at first", len(entries), len(failedFirst))
	}

	dupIDs, dups := 0, 0
	for _, id := range genuineIDs {
		if _, times := up.Accepted(id); times > 1 {
			dupIDs++
			dups += times - 1
		}
	}
	hits, invalid := upstream.Totals()
	if invalid != 0 {
		t.Errorf("the official library refused %d of %d webhooks", invalid, hits)
	}
	metrics := adminMetrics(t, admin)
	outcome := func(o string) float64 {
		return metrics[`caddy_alipay_notify_notifications_total{app_id="`+testkit.AppID+`",outcome="`+o+`"}`]
	}
	t.Logf("outcomes: forwarded %v, delivered_earlier %v, upstream_error %v; outbox deliveries: accepted %v, refused %v, error %v",
		outcome("forwarded"), outcome("delivered_earlier"), outcome("upstream_error"),
		metrics[`caddy_alipay_notify_outbox_deliveries_total{result="accepted"}`],
		metrics[`caddy_alipay_notify_outbox_deliveries_total{result="refused"}`],
		metrics[`caddy_alipay_notify_outbox_deliveries_total{result="error"}`])
	t.Logf("%d notifications in %s (%.0f/s), then %d retries in %s; the last acceptance %s after the retries: %v",
		len(notifications), firstRound.Round(time.Millisecond), float64(len(notifications))/firstRound.Seconds(),
		len(retry), retryRound.Round(time.Millisecond), drain.Round(time.Millisecond), counts)
	t.Logf("outbox entries: %d; upstream requests %d; duplicate deliveries: %d extra acceptances of %d notifications (%.2f%% of %d)",
		len(entries), hits, dups, dupIDs, 100*float64(dupIDs)/float64(len(genuineIDs)), len(genuineIDs))
	t.Logf("Caddy RSS in KiB: after a fifth %d, after the first round %d, at the end %d", rss["warm"], rss["first round"], rss["end"])
	if rss["end"] > 2*rss["warm"]+32<<10 {
		t.Errorf("Caddy's memory grew from %d KiB to %d KiB", rss["warm"], rss["end"])
	}
	if p.Count("panic") != 0 {
		t.Error("Caddy logged a panic")
	}
	if c := p.Count(`"level":"error"`); c != 0 {
		var lines []string
		for _, l := range p.Output() {
			if strings.Contains(l, `"level":"error"`) {
				lines = append(lines, l)
			}
		}
		t.Errorf("Caddy logged %d errors, e.g. %s", c, lines[0])
	}
}
