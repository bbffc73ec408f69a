package main

import (
	"encoding/json"
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
	domestic := `{"type":"alipay.trade_status_sync","timestamp":"2019-08-15T15:56:25+08:00","data":{"out_trade_no":"o1","total_amount":"0.10","trade_status":"TRADE_SUCCESS"}}`
	// An Antom webhook's data is nested, with numbers: it must be accepted too.
	antom := `{"type":"antom.PAYMENT_RESULT","timestamp":"2025-05-19T01:52:32Z","data":{"notifyType":"PAYMENT_RESULT","result":{"resultCode":"SUCCESS","resultStatus":"S"},"paymentRequestId":"p1","paymentAmount":{"currency":"USD","value":"100"},"n":12.50}}`
	send := func(body, id string, at time.Time, signer *standardwebhooks.Webhook) (int, string) {
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
		body   string
		id     string
		at     time.Time
		signer *standardwebhooks.Webhook
		code   int
		want   string
	}{
		{"fresh", domestic, "n1", now, wh, 200, "ok"},
		{"retry", domestic, "n1", now, wh, 200, "duplicate"},
		{"wrong secret", domestic, "n2", now, other, 401, "invalid signature"},
		{"stale", domestic, "n3", now.Add(-10 * time.Minute), wh, 401, "invalid signature"},
		{"antom", antom, "antom_1", now, wh, 200, "ok"},
		{"antom retry", antom, "antom_1", now, wh, 200, "duplicate"},
		{"not an object", `{"type":"x","data":"s"}`, "n4", now, wh, 400, "malformed payload"},
	} {
		if code, got := send(c.body, c.id, c.at, c.signer); code != c.code || got != c.want {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, got, c.code, c.want)
		}
	}
}

func TestField(t *testing.T) {
	var ev event
	dec := json.NewDecoder(strings.NewReader(`{"data":{"a":"x","n":12.50,"o":{"v":"100","b":true}}}`))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"x", "a"}, {"12.50", "n"}, {"100", "o", "v"}, {"", "o", "b"}, {"", "missing", "v"}, {"", "a", "v"}, {"", "o"}} {
		if got := field(ev.Data, c[1:]...); got != c[0] {
			t.Errorf("field %v = %q, want %q", c[1:], got, c[0])
		}
	}
}
