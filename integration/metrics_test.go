package integration

import (
	"bufio"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// scrapeMetrics reads the admin endpoint of the caddytest server and returns
// the alipay_notify and alipay_verify samples, keyed by "name{labels}".
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
		if !strings.HasPrefix(line, "caddy_alipay_notify_") && !strings.HasPrefix(line, "caddy_alipay_verify_") {
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

// notificationsTotal sums notifications_total of an outcome over its apps.
func notificationsTotal(samples map[string]float64, outcome string) float64 {
	return sumOverApps(samples, "caddy_alipay_notify_notifications_total", outcome)
}

// sumOverApps sums the series of an {app_id, outcome} counter of one
// outcome.
func sumOverApps(samples map[string]float64, name, outcome string) float64 {
	var sum float64
	for series, v := range samples {
		if strings.HasPrefix(series, name+`{app_id="`) && strings.HasSuffix(series, `",outcome="`+outcome+`"}`) {
			sum += v
		}
	}
	return sum
}

func TestMetricsThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ok := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	failing := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusServiceUnavailable, 0))
	config := `http://localhost:9080 {
		` + notifyBlock(t, "/notify", ok.URL, "") + `
		` + notifyBlock(t, "/filtered", ok.URL, "forward_status TRADE_FINISHED") + `
		` + notifyBlock(t, "/failing", failing.URL, "") + `
	}`
	startTestCaddy(t, config)

	alipay := testkit.Key(t, "alipay")
	body := func() string {
		return testkit.EncodeForm(testkit.Signed(t, alipay, testkit.TradeParams(testkit.AppID, time.Now()), false))
	}
	forged := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "app"), testkit.TradeParams(testkit.AppID, time.Now()), false))
	post := func(path, body string, want int) {
		t.Helper()
		if status, _, _ := testkit.Post(t, caddyBase+path, body); status != want {
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
		"forwarded": 2, "bad_signature": 1, "bad_request": 1, "filtered": 1,
		"upstream_error": 1, "stale": 0, "upstream_timeout": 0,
	}
	for outcome, n := range want {
		if got := notificationsTotal(samples, outcome); got != n {
			t.Errorf("notifications_total{outcome=%q} = %v, want %v", outcome, got, n)
		}
	}
	// The app_id label: the configured app, or "other" for what is not
	// for it (here the unparseable body), every series there from the start.
	for series, want := range map[string]float64{
		`caddy_alipay_notify_notifications_total{app_id="` + testkit.AppID + `",outcome="forwarded"}`: 2,
		`caddy_alipay_notify_notifications_total{app_id="other",outcome="bad_request"}`:               1,
		`caddy_alipay_notify_notifications_total{app_id="other",outcome="stale"}`:                     0,
		`caddy_alipay_notify_notifications_total{app_id="` + testkit.AppID + `",outcome="stale"}`:     0,
	} {
		if got, ok := samples[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
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
	if got := notificationsTotal(after, "forwarded"); got < 1 {
		t.Errorf("after reload: forwarded = %v, want the new notification counted", got)
	}
	if got := notificationsTotal(after, "upstream_error"); got < 1 {
		t.Errorf("after reload: upstream_error = %v, want it counted", got)
	}
}

func TestPlaceholdersAndAccessLog(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
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
	body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false))
	_, _, header := testkit.Post(t, caddyBase+"/notify", body)
	if got := header.Get("X-Alipay-Outcome"); got != "forwarded" {
		t.Errorf("X-Alipay-Outcome %q", got)
	}
	if got, want := header.Get("X-Alipay-Notify"), "2019081500222155624068450559358070/"+testkit.AppID+"/TRADE_SUCCESS"; got != want {
		t.Errorf("X-Alipay-Notify %q, want %q", got, want)
	}
	_, _, header = testkit.Post(t, caddyBase+"/notify", "garbage=%")
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
	waitFile(t, accessLog, "no alipay_notify field in the access log", func(data string) bool {
		first, _, _ := strings.Cut(data, "\n")
		return json.Unmarshal([]byte(first), &entry) == nil && entry.AlipayNotify.Outcome != ""
	})
	if entry.AlipayNotify.Outcome != "forwarded" || entry.AlipayNotify.NotifyID != "2019081500222155624068450559358070" {
		t.Errorf("access log alipay_notify = %+v", entry.AlipayNotify)
	}
	if entry.AlipayTrade != "20190815155618536-564-57" {
		t.Errorf("log_append placeholder = %q", entry.AlipayTrade)
	}
}
