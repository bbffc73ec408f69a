package cluster

// The outbox (DESIGN.md §9) of a cluster: two Caddy instances on one Redis
// (caddy-storage-redis v1.8.1: no TryLock, Lock with a deadline) form one
// outbox in front of one upstream. Deadlines are for liveness only.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// outboxSite is a site on p.HTTP with alipay_notify at /notify (retry 1s)
// and at /short (retry 1s, give_up 2s), both forwarding to upstream.
func outboxSite(p caddyPorts, upstream string) string {
	block := func(path, forward, outbox string) string {
		return testkit.NotifyBlock{Path: path, Key: testkit.Testdata("keys", "alipay.pub.pem"), Forward: forward, Extra: "outbox {\n" + outbox + "\n}"}.String()
	}
	return fmt.Sprintf(":%d {\n", p.HTTP) +
		block("/notify", upstream+"/hooks", "\tretry 1s") +
		block("/short", upstream+"/short", "\tretry 1s\n\tgive_up 2s") +
		"\trespond \"not an Alipay endpoint\" 404\n}\n"
}

// post posts a genuine notification with id to path on in.
func (in *instance) post(t *testing.T, path, id string) (int, string) {
	t.Helper()
	status, answer, _ := testkit.Post(t, in.url(path), testkit.Genuine(t, id))
	return status, answer
}

// outboxList is GET /alipay_notify/outbox[query] on in's admin API.
func (in *instance) outboxList(t *testing.T, query string) []map[string]any {
	t.Helper()
	code, body := in.admin(t, http.MethodGet, "/alipay_notify/outbox"+query, nil)
	if code != http.StatusOK {
		t.Fatalf("%s: GET /alipay_notify/outbox%s: %d %s", in.Name, query, code, body)
	}
	var entries []map[string]any
	if err := json.Unmarshal(body, &entries); err != nil {
		t.Fatalf("%s: outbox list: %v: %s", in.Name, err, body)
	}
	return entries
}

// waitOutbox waits until in lists no entry in a state other than want.
func (in *instance) waitOutbox(t *testing.T, within time.Duration, query, want string) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		entries := in.outboxList(t, query)
		others := 0
		for _, e := range entries {
			if e["state"] != want {
				others++
			}
		}
		if others == 0 {
			return entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d entries not %s within %v", in.Name, others, want, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOutboxCluster: two instances on one Redis, one upstream down then up.
//
//   - notifications failed on either instance form one outbox: B's admin
//     API lists the entries that failed on A, and the other way round;
//   - once the upstream is back, the two instances drain it together:
//     every entry delivered, duplicate deliveries ≤ 5%;
//   - an entry dead on A (give_up) is replayed through B's admin API and
//     delivered;
//   - A crashes (SIGKILL) in the middle of a drain: B delivers every entry
//     left, A's locks expire (5 s), none blocks;
//   - the restarted A sees the whole outbox.
func TestOutboxCluster(t *testing.T) {
	t.Parallel()
	redisAddr := startRedis(t)
	bin := buildCaddy(t)
	const prefix = "outbox-cluster"
	up := testkit.NewAcceptor(true, 0)
	upstream := testkit.NewUpstream(t, testkit.Secret, up.Behave)
	pa, pb := newCaddyPorts(t), newCaddyPorts(t)
	a := startCaddy(t, bin, clusterGlobals(pa, redisAddr, prefix)+outboxSite(pa, upstream.URL))
	b := startCaddy(t, bin, clusterGlobals(pb, redisAddr, prefix)+outboxSite(pb, upstream.URL))

	// 1. Failures on both instances: one outbox.
	const n = 300
	var ids []string
	onA := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("cluster-%03d", i)
		ids = append(ids, id)
		in := a
		if i%2 == 1 {
			in = b
		} else {
			onA[id] = true
		}
		if status, answer := in.post(t, "/notify", id); status != http.StatusBadGateway || answer != "fail" {
			t.Fatalf("%s on %s with the upstream down: %d %q, want 502 fail", id, in.Name, status, answer)
		}
	}
	for _, in := range []*instance{a, b} {
		listed := map[string]bool{}
		for _, e := range in.outboxList(t, "?state=pending") {
			listed[e["id"].(string)] = true
		}
		for _, id := range ids {
			if !listed[id] {
				t.Fatalf("%s does not list %s (failed on %s)", in.Name, id, map[bool]string{true: a.Name, false: b.Name}[onA[id]])
			}
		}
	}

	// 2. The upstream is back: both instances drain the one outbox.
	recovered := time.Now()
	up.Set(false, 20*time.Millisecond)
	up.RequireAll(t, ids, time.Second+15*time.Second)
	t.Logf("%d entries delivered %v after the upstream recovered", n, time.Since(recovered).Round(time.Millisecond))
	for _, in := range []*instance{a, b} {
		in.waitOutbox(t, 5*time.Second, "", "delivered")
	}
	dups := up.Duplicates(ids)
	var byA, byB int
	for _, e := range a.findLogs("outbox delivery", func(e logEntry) bool { return e.str("result") == "accepted" }) {
		_ = e
		byA++
	}
	for _, e := range b.findLogs("outbox delivery", func(e logEntry) bool { return e.str("result") == "accepted" }) {
		_ = e
		byB++
	}
	t.Logf("deliveries: %d by %s, %d by %s; %d duplicates (%.1f%%)", byA, a.Name, byB, b.Name, dups, 100*float64(dups)/n)
	if byA == 0 || byB == 0 {
		t.Errorf("one instance delivered everything (%s %d, %s %d): not a shared drain", a.Name, byA, b.Name, byB)
	}
	if dups*100 > 5*n {
		t.Errorf("%d duplicate deliveries for %d entries: more than 5%%", dups, n)
	}
	// Alipay's retry, on either instance: delivered_earlier, not forwarded.
	for _, id := range ids[:10] {
		before := up.Count(id)
		for _, in := range []*instance{a, b} {
			if status, answer := in.post(t, "/notify", id); status != http.StatusOK || answer != "success" {
				t.Errorf("%s: Alipay's retry of delivered %s: %d %q, want 200 success", in.Name, id, status, answer)
			}
		}
		if after := up.Count(id); after != before {
			t.Errorf("Alipay's retry of delivered %s was forwarded again", id)
		}
	}

	// 3. Dead on A, replayed through B.
	up.Set(true, 0)
	if status, _ := a.post(t, "/short", "cluster-dead"); status != http.StatusBadGateway {
		t.Fatalf("/short on %s: %d, want 502", a.Name, status)
	}
	deadline := time.Now().Add(2*time.Second + 5*time.Second)
	for {
		dead := b.outboxList(t, "?state=dead")
		if len(dead) == 1 && dead[0]["id"] == "cluster-dead" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not list cluster-dead as dead within give_up + 5 s: %v", b.Name, dead)
		}
		time.Sleep(100 * time.Millisecond)
	}
	up.Set(false, 0)
	code, body := b.admin(t, http.MethodPost, "/alipay_notify/outbox/replay", []byte(`{"ids":["cluster-dead"]}`))
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"replayed":1}` {
		t.Fatalf("%s: replay: %d %s", b.Name, code, body)
	}
	up.RequireAll(t, []string{"cluster-dead"}, 5*time.Second)
	a.waitOutbox(t, 5*time.Second, "?state=dead", "delivered")

	// 4. A crashes in the middle of a drain; B delivers what is left.
	up.Set(true, 0)
	const m = 100
	var more []string
	for i := range m {
		id := fmt.Sprintf("crash-%03d", i)
		more = append(more, id)
		in := a
		if i%2 == 1 {
			in = b
		}
		if status, _ := in.post(t, "/notify", id); status != http.StatusBadGateway {
			t.Fatalf("%s on %s: %d, want 502", id, in.Name, status)
		}
	}
	up.Set(false, 200*time.Millisecond)
	deadline = time.Now().Add(15 * time.Second)
	for {
		delivered := 0
		for _, id := range more {
			if up.Count(id) > 0 {
				delivered++
			}
		}
		if delivered >= m/5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d delivered 15 s after the upstream recovered", delivered, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.kill(t)
	killed := time.Now()
	// A's locks expire within 5 s (TTL); then B claims their entries.
	up.RequireAll(t, more, 5*time.Second+10*time.Second)
	b.waitOutbox(t, 5*time.Second+10*time.Second, "", "delivered")
	t.Logf("after %s's crash, %s delivered the rest within %v; duplicates %d", a.Name, b.Name, time.Since(killed).Round(time.Millisecond), up.Duplicates(more))

	// 5. The restarted A sees the whole outbox.
	a.restart(t)
	if got, want := len(a.outboxList(t, "")), n+1+m; got != want {
		t.Errorf("restarted %s lists %d entries, want %d", a.Name, got, want)
	}
	if hits, invalid := upstream.Totals(); invalid != 0 {
		t.Errorf("%d of %d webhooks refused by the official library", invalid, hits)
	}
	for _, in := range []*instance{a, b} {
		if strings.Contains(in.allLogs(), "panic") {
			t.Errorf("%s logged a panic", in.Name)
		}
	}
}

// TestOutboxClusterReload: an instance on Redis reloaded (the same config,
// forced) while entries are pending goes on delivering them, and writing
// new ones: its outbox works on the new config's storage, not on the
// unloaded one's (whose Redis client the module closes at cleanup).
func TestOutboxClusterReload(t *testing.T) {
	t.Parallel()
	redisAddr := startRedis(t)
	bin := buildCaddy(t)
	up := testkit.NewAcceptor(true, 0)
	upstream := testkit.NewUpstream(t, testkit.Secret, up.Behave)
	p := newCaddyPorts(t)
	a := startCaddy(t, bin, clusterGlobals(p, redisAddr, "outbox-reload")+outboxSite(p, upstream.URL))

	var ids []string
	for i := range 20 {
		id := fmt.Sprintf("reload-%02d", i)
		ids = append(ids, id)
		if status, _ := a.post(t, "/notify", id); status != http.StatusBadGateway {
			t.Fatalf("%s: %d, want 502", id, status)
		}
	}
	config, err := os.ReadFile(a.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	reload := func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.AdminAddr+"/load", strings.NewReader(string(config)))
		req.Header.Set("Content-Type", "text/caddyfile")
		req.Header.Set("Cache-Control", "must-revalidate")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reload: %d", resp.StatusCode)
		}
	}
	reload()
	reload()
	reloaded := time.Now()
	time.Sleep(3 * time.Second) // the old configs are cleaned up, a few scans and retries happen
	// A failure after the reloads is written too.
	if status, _ := a.post(t, "/notify", "reload-after"); status != http.StatusBadGateway {
		t.Fatalf("after the reload: %d, want 502", status)
	}
	ids = append(ids, "reload-after")
	up.Set(false, 0)
	up.RequireAll(t, ids, time.Second+10*time.Second)
	a.waitOutbox(t, 5*time.Second, "", "delivered")
	for _, e := range a.logEntries() {
		if e.time().After(reloaded) && (e.str("level") == "error") && strings.Contains(e.str("logger"), "alipay_notify") {
			t.Errorf("after the reload: %s %v", e.str("msg"), e)
		}
	}
	if dups := up.Duplicates(ids); dups != 0 {
		t.Errorf("%d duplicate deliveries across the reloads", dups)
	}
}
