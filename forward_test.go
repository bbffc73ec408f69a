package alipaynotify

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestOfficialStandardWebhooksVector signs the official testkit.Vector with our
// signer and checks it with the official Go library too.
func TestOfficialStandardWebhooksVector(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "vectors", "standard-webhooks-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		Secret            string            `json:"secret"`
		MsgID             string            `json:"msg_id"`
		Timestamp         int64             `json:"timestamp"`
		Payload           string            `json:"payload"`
		ExpectedSignature string            `json:"expected_signature"`
		MustNotMatch      map[string]string `json:"must_not_match"`
	}
	if err := json.Unmarshal(data, &vec); err != nil {
		t.Fatal(err)
	}
	key, err := parseWebhookSecret(vec.Secret)
	if err != nil {
		t.Fatal(err)
	}
	_, got := newWebhookSigner(key).headerValues(vec.MsgID, vec.Timestamp, []byte(vec.Payload))
	if got != vec.ExpectedSignature {
		t.Fatalf("signature %s, want %s", got, vec.ExpectedSignature)
	}
	for why, wrong := range vec.MustNotMatch {
		if got == wrong {
			t.Errorf("signature matches the wrong one: %s", why)
		}
	}
	wh, err := standardwebhooks.NewWebhook(vec.Secret)
	if err != nil {
		t.Fatal(err)
	}
	headers := http.Header{}
	headers.Set("webhook-id", vec.MsgID)
	headers.Set("webhook-timestamp", "1614265330")
	headers.Set("webhook-signature", got)
	if err := wh.VerifyIgnoringTimestamp([]byte(vec.Payload), headers); err != nil {
		t.Fatalf("official library refuses our signature: %v", err)
	}
}

func TestWebhookSecrets(t *testing.T) {
	valid := []string{
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  // 24 bytes
		"whsec_" + strings.Repeat("A", 86) + "==", // 64 bytes
		"whsec_" + strings.Repeat("B", 43) + "=",  // 32 bytes
		"whsec_" + strings.Repeat("C", 43),        // 32 bytes, unpadded
	}
	for _, s := range valid {
		if _, err := parseWebhookSecret(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	invalid := map[string]string{
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":          "whsec_",
		"whsec_":                                    "bytes",
		"whsec_c2hvcnQ=":                            "bytes",
		"whsec_" + strings.Repeat("A", 88):          "bytes",
		"whsec_not base64!":                         "base64",
		"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":    "whsec_",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw===": "base64",
	}
	for s, want := range invalid {
		_, err := parseWebhookSecret(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want error about %q, got %v", s, want, err)
		}
	}
}

func TestWebhookBody(t *testing.T) {
	vec := testkit.LoadVector(t, "trade-rsa2-production.json")
	n, err := alipay.ParseNotification([]byte(vec.Body))
	if err != nil {
		t.Fatal(err)
	}
	at, _, err := n.SentAt()
	if err != nil {
		t.Fatal(err)
	}
	body := webhookBody(n, at)
	var event struct {
		Type      string            `json:"type"`
		Timestamp string            `json:"timestamp"`
		Data      map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &event); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if event.Type != "alipay.trade_status_sync" || event.Timestamp != "2019-08-15T15:56:25+08:00" {
		t.Errorf("type %q timestamp %q", event.Type, event.Timestamp)
	}
	want := map[string]string{
		"total_amount":   "0.10",
		"subject":        "语雀空间 500人规模",
		"fund_bill_list": `[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]`,
		"sign_type":      "RSA2",
		"buyer_logon_id": "xud***@126.com",
	}
	for k, v := range want {
		if event.Data[k] != v {
			t.Errorf("data.%s = %q, want %q", k, event.Data[k], v)
		}
	}
	if _, ok := event.Data["sign"]; ok {
		t.Error("data carries sign")
	}
	if len(event.Data) != 24 { // the 23 signed fields plus sign_type
		t.Errorf("%d data fields, want 24", len(event.Data))
	}
	if !strings.HasPrefix(string(body), `{"type":"alipay.trade_status_sync","timestamp":"2019-08-15T15:56:25+08:00","data":{"app_id":"2019073166072302",`) {
		t.Errorf("not compact or not in order: %s", body)
	}
}

func TestEventTypeAndTime(t *testing.T) {
	tests := []struct {
		body, wantType, wantTime string
	}{
		{"notify_type=trade_status_sync&notify_time=2024-01-02+03%3A04%3A05", "alipay.trade_status_sync", "2024-01-02T03:04:05+08:00"},
		{"msg_method=alipay.fund.trans.order.changed&utc_timestamp=1700000000123", "alipay.fund.trans.order.changed", "2023-11-15T06:13:20+08:00"},
		{"msg_method=open.public.message&utc_timestamp=1700000000000", "alipay.open.public.message", "2023-11-15T06:13:20+08:00"},
		{"notify_type=x&msg_method=alipay.y&notify_time=2024-01-02+03%3A04%3A05&utc_timestamp=1700000000000", "alipay.x", "2024-01-02T03:04:05+08:00"},
		{"a=b", "alipay.notification", ""},
	}
	for _, tc := range tests {
		n, err := alipay.ParseNotification([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if got := eventType(n); got != tc.wantType {
			t.Errorf("%s: type %s, want %s", tc.body, got, tc.wantType)
		}
		at, ok, err := n.SentAt()
		if err != nil {
			t.Fatal(err)
		}
		if got := ""; ok {
			got = at.In(testkit.Beijing).Format(time.RFC3339)
			if got != tc.wantTime {
				t.Errorf("%s: time %s, want %s", tc.body, got, tc.wantTime)
			}
		} else if tc.wantTime != "" {
			t.Errorf("%s: no time", tc.body)
		}
	}
}

func TestJSONEscaping(t *testing.T) {
	in := "q\"b\\n\n\r\t\x01\u2028\u2029<>&中"
	out := appendJSONString(nil, in)
	var back string
	if err := json.Unmarshal(out, &back); err != nil || back != in {
		t.Fatalf("round trip: %q -> %s -> %q (%v)", in, out, back, err)
	}
	if strings.ContainsRune(string(out), '\u2028') {
		t.Error("U+2028 not escaped")
	}
}
