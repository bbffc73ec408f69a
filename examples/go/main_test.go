package main

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The official Standard Webhooks test vector: the library must derive the key
// from the whsec_ secret and sign exactly as the plugin does.
func TestOfficialVector(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := wh.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; sig != want {
		t.Fatalf("signature %s, want %s", sig, want)
	}
}

func TestReceiver(t *testing.T) {
	wh, _ := standardwebhooks.NewWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	other, _ := standardwebhooks.NewWebhook("whsec_eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg=")
	rc := &receiver{wh: wh, seen: map[string]bool{}}
	body := `{"type":"alipay.trade_status_sync","timestamp":"2019-08-15T15:56:25+08:00","data":{"out_trade_no":"o1","total_amount":"0.10","trade_status":"TRADE_SUCCESS"}}`
	send := func(id string, at time.Time, signer *standardwebhooks.Webhook) (int, string) {
		sig, _ := signer.Sign(id, at, []byte(body))
		req := httptest.NewRequest(http.MethodPost, "/hooks/alipay", strings.NewReader(body))
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	now := time.Now()
	for _, c := range []struct {
		name   string
		id     string
		at     time.Time
		signer *standardwebhooks.Webhook
		code   int
		body   string
	}{
		{"fresh", "n1", now, wh, 200, "ok"},
		{"retry", "n1", now, wh, 200, "duplicate"},
		{"wrong secret", "n2", now, other, 401, "invalid signature"},
		{"stale", "n3", now.Add(-10 * time.Minute), wh, 401, "invalid signature"},
	} {
		if code, got := send(c.id, c.at, c.signer); code != c.code || got != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, got, c.code, c.body)
		}
	}
}
