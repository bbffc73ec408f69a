package monitoring

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// startTarget starts what the live test's Prometheus scrapes: the Caddy
// binary built from ./cmd/caddy with alipay_notify (an outbox with a short
// retry) in front of an upstream that refuses a fifth of the webhooks at
// random, with the metrics on its admin endpoint. drive sends a few
// notifications of every kind each time it is called (the live test calls
// it every half second while it waits for data): genuine ones, some of
// which the upstream refuses (so that the outbox redelivers them), a
// forged, a stale and a malformed one, and one to an app that is not
// configured.
func startTarget(t *testing.T) (metricsURL string, drive func()) {
	t.Helper()
	upstream := testkit.NewUpstream(t, testkit.Secret, func(w http.ResponseWriter, r *http.Request) {
		if rand.IntN(5) == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	listen, admin := testkit.FreePort(t), testkit.FreePort(t)
	testkit.RunCaddy(t, fmt.Sprintf(`{
	admin %s
	auto_https off
	default_bind 127.0.0.1
	persist_config off
}
http://%s {
%s}
`, admin, listen, testkit.NotifyBlock{Path: "/alipay/notify", Forward: upstream.URL, Extra: "outbox {\n\tretry 1s\n}"}), listen)

	notify := "http://" + listen + "/alipay/notify"
	key, other := testkit.Key(t, "alipay"), testkit.Key(t, "app")
	var n atomic.Int64
	drive = func() {
		for range 4 {
			params := testkit.TradeParams(testkit.AppID, time.Now())
			params = testkit.Set(params, "notify_id", fmt.Sprintf("monitoring-%d-%d", time.Now().UnixNano(), n.Add(1)))
			testkit.Post(t, notify, testkit.EncodeForm(testkit.Signed(t, key, params, false)))
		}
		testkit.Post(t, notify, testkit.EncodeForm(testkit.Signed(t, other, testkit.TradeParams(testkit.AppID, time.Now()), false)))
		testkit.Post(t, notify, testkit.EncodeForm(testkit.Signed(t, key, testkit.TradeParams(testkit.AppID, time.Now().Add(-100*time.Hour)), false)))
		testkit.Post(t, notify, "not=a%form")
		testkit.Post(t, notify, testkit.EncodeForm(testkit.Signed(t, key, testkit.TradeParams("2021000000000999", time.Now()), false)))
	}
	return "http://" + admin + "/metrics", drive
}
