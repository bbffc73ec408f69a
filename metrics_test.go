package alipaynotify

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeMetrics reads the admin endpoint of the caddytest server and returns
// the alipay_notify samples, keyed by "name{labels}".
func scrapeMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	samples := make(map[string]float64)
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, "caddy_alipay_notify_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		value, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		samples[line[:i]] = value
	}
	return samples
}

func notificationsTotal(samples map[string]float64, outcome string) float64 {
	return samples[`caddy_alipay_notify_notifications_total{outcome="`+outcome+`"}`]
}

func TestMetricsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ok := newTestUpstream(t, testSecret, http.StatusOK, 0)
	failing := newTestUpstream(t, testSecret, http.StatusServiceUnavailable, 0)
	config := `http://localhost:9080 {
		` + notifyBlock(t, "/notify", ok.URL, "") + `
		` + notifyBlock(t, "/filtered", ok.URL, "forward_status TRADE_FINISHED") + `
		` + notifyBlock(t, "/failing", failing.URL, "") + `
	}`
	startTestCaddy(t, config)

	alipay := testKey(t, "alipay")
	body := func() string { return encodeForm(signed(t, alipay, tradeParams(testAppID, time.Now()), false)) }
	forged := encodeForm(signed(t, testKey(t, "app"), tradeParams(testAppID, time.Now()), false))
	post := func(path, body string, want int) {
		t.Helper()
		if status, _, _ := postNotification(t, caddyBase+path, body); status != want {
			t.Fatalf("%s: status %d, want %d", path, status, want)
		}
	}
	post("/notify", body(), 200)
	post("/notify", body(), 200)
	post("/notify", forged, 403)
	post("/notify", "x=%", 400)
	post("/filtered", body(), 200)
	post("/failing", body(), 502)

	samples := scrapeMetrics(t)
	want := map[string]float64{
		outcomeForwarded: 2, outcomeBadSignature: 1, outcomeBadRequest: 1, outcomeFiltered: 1,
		outcomeUpstreamError: 1, outcomeStale: 0, outcomeUpstreamTimeout: 0,
	}
	for outcome, n := range want {
		if got := notificationsTotal(samples, outcome); got != n {
			t.Errorf("notifications_total{outcome=%q} = %v, want %v", outcome, got, n)
		}
	}
	if got := samples["caddy_alipay_notify_upstream_duration_seconds_count"]; got != 3 {
		t.Errorf("upstream_duration_seconds_count = %v, want 3 (2 forwarded, 1 failed)", got)
	}
	if got := samples["caddy_alipay_notify_verify_duration_seconds_count"]; got != 6 {
		t.Errorf("verify_duration_seconds_count = %v, want 6 (every POSTed body)", got)
	}

	// A reload gives the new config a new registry; the counters must move again.
	startTestCaddy(t, strings.Replace(config, "/failing", "/failing2", 1))
	post("/notify", body(), 200)
	post("/failing2", body(), 502)
	after := scrapeMetrics(t)
	if got := notificationsTotal(after, outcomeForwarded); got < 1 {
		t.Errorf("after reload: forwarded = %v, want the new notification counted", got)
	}
	if got := notificationsTotal(after, outcomeUpstreamError); got < 1 {
		t.Errorf("after reload: upstream_error = %v, want it counted", got)
	}
}

func TestMetricsRegistrationIsReloadSafe(t *testing.T) {
	registry := prometheus.NewPedanticRegistry()
	first, err := newMetrics(registry)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newMetrics(registry) // a second handler in the same config
	if err != nil {
		t.Fatal(err)
	}
	if first.notifications != second.notifications || first.upstreamDuration != second.upstreamDuration {
		t.Fatal("a second registration did not reuse the collectors")
	}
	second.notifications.WithLabelValues(outcomeForwarded).Inc()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 3 {
		t.Errorf("%d metric families, want 3", len(families))
	}
}

// TestPlaceholdersAndAccessLog checks {http.alipay_notify.*} in a deferred
// response header and the extra fields in Caddy's access log.
func TestPlaceholdersAndAccessLog(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	startTestCaddy(t, `http://localhost:9080 {
		log {
			output file `+accessLog+`
			format json
		}
		log_append alipay_trade {http.alipay_notify.out_trade_no}
		header {
			defer
			X-Alipay-Outcome {http.alipay_notify.outcome}
			X-Alipay-Notify {http.alipay_notify.notify_id}/{http.alipay_notify.app_id}/{http.alipay_notify.trade_status}
		}
		`+notifyBlock(t, "/notify", upstream.URL, "")+`
	}`)
	body := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false))
	_, _, header := postNotification(t, caddyBase+"/notify", body)
	if got := header.Get("X-Alipay-Outcome"); got != "forwarded" {
		t.Errorf("X-Alipay-Outcome %q", got)
	}
	if got, want := header.Get("X-Alipay-Notify"), "2019081500222155624068450559358070/"+testAppID+"/TRADE_SUCCESS"; got != want {
		t.Errorf("X-Alipay-Notify %q, want %q", got, want)
	}
	_, _, header = postNotification(t, caddyBase+"/notify", "garbage=%")
	if got := header.Get("X-Alipay-Outcome"); got != "bad_request" {
		t.Errorf("X-Alipay-Outcome %q for a malformed body", got)
	}

	var entry struct {
		AlipayNotify struct {
			Outcome  string `json:"outcome"`
			NotifyID string `json:"notify_id"`
		} `json:"alipay_notify"`
		AlipayTrade string `json:"alipay_trade"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(accessLog)
		first, _, _ := strings.Cut(string(data), "\n")
		if json.Unmarshal([]byte(first), &entry) == nil && entry.AlipayNotify.Outcome != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alipay_notify field in the access log:\n%s", data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if entry.AlipayNotify.Outcome != "forwarded" || entry.AlipayNotify.NotifyID != "2019081500222155624068450559358070" {
		t.Errorf("access log alipay_notify = %+v", entry.AlipayNotify)
	}
	if entry.AlipayTrade != "20190815155618536-564-57" {
		t.Errorf("log_append placeholder = %q", entry.AlipayTrade)
	}
}
