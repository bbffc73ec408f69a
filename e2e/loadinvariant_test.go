package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// TestInvariantUnderLoad sends genuine notifications, mixed with forged and
// tampered ones, at 32 concurrent connections through the built binary to an
// upstream that fails 10% of the webhooks at random, and checks the
// plugin's promise on every one of them:
//
//   - every "success" matches exactly one webhook that the upstream accepted
//     (2xx) and that the official Standard Webhooks library verifies, with
//     the notification's own fields;
//   - every webhook the upstream accepted was answered "success" (unless the
//     client gave up on it);
//   - a webhook the upstream refused was answered "fail", 502;
//   - no forged or tampered notification is ever forwarded (403 fail);
//   - no notification is forwarded twice;
//   - Caddy's memory stays flat (RSS after a warm-up and at the end).
//
// LOAD_NOTIFICATIONS sets the number of genuine notifications (default 2000,
// so that CI stays fast; the issue asks for 20 000):
//
//	LOAD_NOTIFICATIONS=20000 go test -run TestInvariantUnderLoad -v -timeout 30m .
func TestInvariantUnderLoad(t *testing.T) {
	testkit.CaddyBinary(t)
	total := loadSize(t, "LOAD_NOTIFICATIONS", 2000)
	const connections = 32
	forgedEvery := 20 // one forged or tampered notification per 20 genuine ones

	upstream := testkit.NewUpstream(t, testkit.Secret, failingAtRandom(0.10))
	listen := testkit.FreePort(t)
	p := testkit.RunCaddy(t, notifyCaddyfile(t, listen, "off", notifyRoute{"/alipay/notify", upstream.URL, "timeout 10s"}), listen)
	pid := p.Cmd.Process.Pid

	// Pre-sign in parallel: RSA-2048 signing is the expensive part.
	start := time.Now()
	notifications := presign(t, total, forgedEvery)
	t.Logf("signed %d notifications (%d genuine) in %s", len(notifications), total, time.Since(start).Round(time.Millisecond))

	client := loadClient(connections)
	defer client.CloseIdleConnections()
	answers := make([]answerRecord, len(notifications))
	// RSS after every tenth of the notifications.
	tenth := max(1, len(notifications)/10)
	var completed atomic.Int64
	var rssMu sync.Mutex
	rss := map[int64]int64{}
	start = time.Now()
	testkit.Spread(connections, len(notifications), func(i int) {
		answers[i] = post(client, "http://"+listen+"/alipay/notify", notifications[i].body)
		if done := completed.Add(1); done%int64(tenth) == 0 {
			kib := rssKiB(t, pid)
			rssMu.Lock()
			rss[done/int64(tenth)] = kib
			rssMu.Unlock()
		}
	})
	elapsed := time.Since(start)
	var samples []string
	for k := int64(1); k <= 10; k++ {
		samples = append(samples, fmt.Sprintf("%d%%: %d", 10*k, rss[k]))
	}
	rssWarm, rssEnd := rss[2], rss[10] // after a fifth, and at the end

	// Check every notification against what the upstream saw.
	seen := records(upstream.Take())
	counts := map[string]int{}
	for i, n := range notifications {
		a := answers[i]
		rec := upstreamRecord{}
		if r := seen[n.id]; r != nil {
			rec = *r
		}
		switch {
		case !n.genuine:
			counts["forged or tampered"]++
			if rec.received != 0 {
				t.Errorf("%s (%s) reached the upstream %d times", n.id, n.kind, rec.received)
			}
			if a.err == nil && (a.status != http.StatusForbidden || a.answer != "fail") {
				t.Errorf("%s (%s): answer %d %q, want 403 fail", n.id, n.kind, a.status, a.answer)
			}
		case a.err != nil:
			counts["client gave up"]++
			if rec.received > 1 {
				t.Errorf("%s forwarded %d times", n.id, rec.received)
			}
		case a.status == http.StatusOK && a.answer == "success":
			counts["success"]++
			if rec.received != 1 || rec.accepted != 1 {
				t.Errorf("%s answered success, but the upstream received it %d times and accepted it %d times", n.id, rec.received, rec.accepted)
			}
			if rec.invalid != 0 {
				t.Errorf("%s: the official library refused %d of its webhooks", n.id, rec.invalid)
			}
			if rec.data["notify_id"] != n.id || rec.data["out_trade_no"] != n.outTradeNo || rec.data["total_amount"] != n.amount {
				t.Errorf("%s: webhook data %v", n.id, rec.data)
			}
		case a.status == http.StatusBadGateway && a.answer == "fail":
			counts["fail (upstream refused)"]++
			if rec.invalid != 0 {
				t.Errorf("%s: the official library refused its webhook", n.id)
			}
			if rec.received != 1 || rec.accepted != 0 {
				t.Errorf("%s answered fail, but the upstream received it %d times and accepted it %d times", n.id, rec.received, rec.accepted)
			}
		default:
			t.Errorf("%s: answer %d %q", n.id, a.status, a.answer)
		}
	}
	var received, accepted, unknown int
	for id, rec := range seen {
		received += rec.received
		accepted += rec.accepted
		if !strings.HasPrefix(id, "load-") && !strings.HasPrefix(id, "bad-") {
			unknown += rec.received
		}
	}
	if unknown != 0 {
		t.Errorf("the upstream received %d webhooks for notifications never sent", unknown)
	}
	if accepted != counts["success"] && counts["client gave up"] == 0 {
		t.Errorf("the upstream accepted %d webhooks, %d were answered success", accepted, counts["success"])
	}
	t.Logf("%d notifications in %s (%.0f/s) at %d connections: %v; upstream received %d, accepted %d",
		len(notifications), elapsed.Round(time.Millisecond), float64(len(notifications))/elapsed.Seconds(), connections, counts, received, accepted)
	t.Logf("Caddy RSS in KiB after each tenth of the notifications: %s", strings.Join(samples, ", "))
	// Flat: no growth with the number of notifications. The bound leaves room
	// for the GC's own rhythm (the heap may double before a collection).
	if rssEnd > 2*rssWarm+32<<10 {
		t.Errorf("Caddy's memory grew from %d KiB to %d KiB", rssWarm, rssEnd)
	}
	if p.Count("panic") != 0 {
		t.Error("Caddy logged a panic")
	}
}

// loadNotification is one request of the load test.
type loadNotification struct {
	id, kind, outTradeNo, amount string
	genuine                      bool
	body                         string
}

// presign builds total genuine notifications and one forged or tampered one
// per forgedEvery, shuffled, signing on every CPU.
func presign(t *testing.T, total, forgedEvery int) []loadNotification {
	alipay, app := testkit.Key(t, "alipay"), testkit.Key(t, "app")
	now := time.Now()
	out := make([]loadNotification, total+total/forgedEvery)
	testkit.Spread(runtime.NumCPU(), len(out), func(i int) {
		n := loadNotification{genuine: i < total, kind: "genuine"}
		n.outTradeNo = fmt.Sprintf("order-%06d", i)
		n.amount = fmt.Sprintf("%d.%02d", 1+i%500, i%100)
		n.id = fmt.Sprintf("load-%06d", i)
		if !n.genuine {
			n.id = fmt.Sprintf("bad-%06d", i)
		}
		params := testkit.Set(testkit.Set(testkit.Set(testkit.TradeParams(testkit.AppID, now), "notify_id", n.id), "out_trade_no", n.outTradeNo), "total_amount", n.amount)
		switch {
		case n.genuine:
			params = testkit.Signed(t, alipay, params, false)
		case i%2 == 0:
			n.kind = "tampered amount"
			params = testkit.Set(testkit.Signed(t, alipay, params, false), "total_amount", "0.01")
		default:
			n.kind = "signed by the app's key"
			params = testkit.Signed(t, app, params, false)
		}
		n.body = testkit.EncodeForm(params)
		out[i] = n
	})
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// loadSize is the number of genuine notifications of a load test: the
// environment variable env when set (at least 100), else def.
func loadSize(t *testing.T, env string, def int) int {
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 {
		t.Fatalf("%s=%q: want a number >= 100", env, s)
	}
	return n
}

// loadClient is the client of a load test: up to connections connections,
// all kept alive.
func loadClient(connections int) *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: connections, MaxConnsPerHost: connections},
	}
}

// answerRecord is what Caddy answered to one notification.
type answerRecord struct {
	status int
	answer string
	err    error
}

func post(client *http.Client, url, body string) answerRecord {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return answerRecord{err: err}
	}
	req.Header.Set("Content-Type", testkit.ContentType)
	resp, err := client.Do(req)
	if err != nil {
		return answerRecord{err: err}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return answerRecord{status: resp.StatusCode, answer: string(answer), err: err}
}

// upstreamRecord is what the upstream did with one notification's webhooks.
type upstreamRecord struct {
	received, accepted, invalid int
	data                        map[string]string // of the accepted one
}

// failingAtRandom refuses a share of the webhooks (500) and accepts the
// rest (204).
func failingAtRandom(failShare float64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if rand.Float64() < failShare {
			http.Error(w, "try again later", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// records sums up, per webhook-id, what the upstream received.
func records(webhooks []testkit.Webhook) map[string]*upstreamRecord {
	out := map[string]*upstreamRecord{}
	for _, w := range webhooks {
		id := w.Header.Get("webhook-id")
		rec := out[id]
		if rec == nil {
			rec = &upstreamRecord{}
			out[id] = rec
		}
		rec.received++
		if w.VerifyErr != nil {
			rec.invalid++
		}
		if w.Accepted() {
			rec.accepted++
			rec.data = w.Event.Data
		}
	}
	return out
}

// rssKiB is the resident memory of process pid, from /proc.
func rssKiB(t *testing.T, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kib
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
