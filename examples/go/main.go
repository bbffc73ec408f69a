// Example upstream for caddy-alipay-notify: it receives the
// Standard Webhooks POST the plugin sends for every verified Alipay
// notification, domestic or Antom (cross-border).
//
//	WEBHOOK_SECRET=whsec_... PORT=8081 go run ./examples/go
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// event is the body the plugin sends. A domestic notification's data holds
// only strings; an Antom one's is Antom's JSON object as posted, with nested
// objects (and numbers, decoded as json.Number: exact digits, never float64).
type event struct {
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// field returns the string or number at path in data ("" when absent), e.g.
// field(d, "paymentAmount", "value") for Antom's nested amount.
func field(data map[string]any, path ...string) string {
	var v any = data
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k] // a nil map yields nil
	}
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// receiver remembers the webhook-ids it has processed: Alipay retries keep the
// same notify_id (Antom's the same body, hence the same antom_... id), so this
// is what makes a retry harmless. In production store
// it with the order instead (e.g. a unique index on notify_id, written in the
// same transaction that marks the order paid).
type receiver struct {
	wh   *standardwebhooks.Webhook
	mu   sync.Mutex
	seen map[string]bool
}

// reason maps the library's errors to the short reasons every example prints.
func reason(err error) string {
	switch {
	case errors.Is(err, standardwebhooks.ErrRequiredHeaders):
		return "missing headers"
	case errors.Is(err, standardwebhooks.ErrInvalidHeaders):
		return "bad timestamp"
	case errors.Is(err, standardwebhooks.ErrMessageTooOld), errors.Is(err, standardwebhooks.ErrMessageTooNew):
		return "stale timestamp"
	default:
		return "bad signature"
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The signature covers these exact bytes; never re-encode the JSON before verifying.
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	id := r.Header.Get("webhook-id")
	// Verify checks the 5-minute tolerance and accepts any matching "v1,..." entry
	// of the space-separated list (the plugin sends two while a secret rotates).
	if err := rc.wh.Verify(raw, r.Header); err != nil {
		fmt.Printf("rejected %s %s\n", dash(id), reason(err))
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var ev event
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		// Signed by the plugin yet unreadable: a retry would not fix it.
		fmt.Printf("rejected %s malformed payload\n", id)
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}

	// One lock around check, processing and marking, so two concurrent deliveries
	// of the same id cannot both be processed (a database does this with the
	// unique index and a transaction).
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.seen[id] {
		fmt.Printf("duplicate %s\n", id)
		io.WriteString(w, "duplicate")
		return
	}
	// A real app does its work here, before answering 2xx (a 2xx becomes
	// Alipay's "success" and stops the retries):
	//  - look up out_trade_no (Antom: paymentRequestId): it must be one of its
	//    own orders;
	//  - compare total_amount with the order amount as a string or a decimal,
	//    never a float64 ("0.10" must equal the stored 0.10); Antom's
	//    paymentAmount is {currency, value in minor units}: both must match;
	//  - mark the order paid only for TRADE_SUCCESS or TRADE_FINISHED (Antom:
	//    result.resultStatus "S").
	// If that fails, answer 5xx without marking the id seen, so Alipay retries.
	order, amount, status := field(ev.Data, "out_trade_no"), field(ev.Data, "total_amount"), field(ev.Data, "trade_status")
	if strings.HasPrefix(ev.Type, "antom.") {
		order, amount, status = field(ev.Data, "paymentRequestId"), field(ev.Data, "paymentAmount", "value"), field(ev.Data, "result", "resultStatus")
	}
	fmt.Printf("accepted %s %s %s %s %s\n", id, dash(ev.Type), dash(order), dash(amount), dash(status))
	rc.seen[id] = true
	io.WriteString(w, "ok")
}

func main() {
	secret := os.Getenv("WEBHOOK_SECRET")
	if secret == "" {
		fmt.Fprintln(os.Stderr, "WEBHOOK_SECRET is required (the whsec_... value given to the plugin as webhook_secret)")
		os.Exit(2)
	}
	// NewWebhook strips "whsec_" and base64-decodes the rest into the HMAC key.
	wh, err := standardwebhooks.NewWebhook(secret)
	if err == nil && secret == "whsec_" {
		err = errors.New("empty key")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "WEBHOOK_SECRET is not a valid whsec_ secret:", err)
		os.Exit(2)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8081"
	}

	mux := http.NewServeMux()
	mux.Handle("POST /hooks/alipay", &receiver{wh: wh, seen: map[string]bool{}}) // other methods: 405
	// Listen first, then announce: the line means connections are accepted.
	addr := "127.0.0.1:" + port
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// os.Stdout is unbuffered in Go, so every Printf line reaches a pipe at once.
	fmt.Println("listening on", addr)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	fmt.Fprintln(os.Stderr, srv.Serve(ln))
	os.Exit(1)
}
