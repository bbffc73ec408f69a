package alipaynotify

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddy-alipay/caddy-alipay-notify/antom"
)

// FuzzAntomJSON: on every body antom accepts, compactJSON writes what
// json.Compact writes, and antomRequestIDs finds what json.Unmarshal finds.
func FuzzAntomJSON(f *testing.F) {
	for _, body := range []string{
		`{}`, ` { } `, `{"paymentRequestId":"P1","refundRequestId":"R1"}`,
		"{\n  \"notifyType\" : \"PAYMENT_RESULT\",\n  \"paymentRequestId\": \"P \\\" 1\",\n  \"x\": [1, {\"paymentRequestId\": \"inner\"}, \"]\"]\n}",
		`{"PAYMENTREQUESTID":"upper","paymentRequestId":"exact"}`, `{"paymentRequestId":"exact","PaymentRequestID":"later"}`,
		`{"paymentRequestId":null,"refundRequestId":5}`, `{"paymentRequestId":"a","paymentrequestid":{"b":1}}`,
		`{"\u0070aymentRequestId":"escaped key","refundRequestId":"\u00e9\ud83d\ude00"}`, `{"a":true,"b":false,"c":-1.5e3,"refundRequestId":"R"}`,
		`{"paymentRequeſtId":"long s"}`, `{"paymentRequestId":"tab\there"}`,
	} {
		f.Add([]byte(body))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "vectors", "antom", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var vec struct{ Body string }
		if json.Unmarshal(data, &vec) == nil && vec.Body != "" {
			f.Add([]byte(vec.Body))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := antom.ParseNotification(body); err != nil {
			return
		}
		var want bytes.Buffer
		if err := json.Compact(&want, body); err != nil {
			t.Fatalf("antom accepts what json.Compact refuses: %v", err)
		}
		if got := compactJSON([]byte("x"), body); !bytes.Equal(got[1:], want.Bytes()) || got[0] != 'x' {
			t.Fatalf("compactJSON\n got %q\nwant %q", got[1:], want.Bytes())
		}
		var ids struct {
			PaymentRequestID string `json:"paymentRequestId"`
			RefundRequestID  string `json:"refundRequestId"`
		}
		_ = json.Unmarshal(body, &ids)
		if payment, refund := antomRequestIDs(body); payment != ids.PaymentRequestID || refund != ids.RefundRequestID {
			t.Fatalf("antomRequestIDs %q, %q; json.Unmarshal %q, %q", payment, refund, ids.PaymentRequestID, ids.RefundRequestID)
		}
	})
}
