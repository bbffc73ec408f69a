package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
)

func TestPrintEntries(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := []outbox.Entry{
		{ID: "due", State: outbox.Pending, Type: "antom.PAYMENT_RESULT", Attempts: 3, FirstFailure: now.Add(-time.Hour), NextAttempt: now, LastError: "upstream answered 500\nInternal\tError", Forward: "http://u/hooks"},
		{ID: "later", State: outbox.Pending, Type: "alipay.trade_status_sync", Attempts: 1, FirstFailure: now, NextAttempt: now.Add(time.Minute), Forward: "http://u/hooks"},
		{ID: "gone", State: outbox.Delivered, Attempts: 2, FirstFailure: now, Forward: "http://u/hooks"},
	}
	var out bytes.Buffer
	printEntries(&out, entries, "", now)
	lines := strings.Split(out.String(), "\n")
	if strings.Contains(lines[0], "FORWARD") {
		t.Errorf("a forward column for one handler:\n%s", out.String())
	}
	if !strings.Contains(lines[1], formatTime(now)+" (due)") || !strings.HasSuffix(lines[1], "upstream answered 500 Internal Error") {
		t.Errorf("due row: %q", lines[1])
	}
	if strings.Contains(lines[2], "(due)") || !strings.HasSuffix(lines[2], "  -") {
		t.Errorf("later row: %q", lines[2])
	}
	if f := strings.Fields(lines[3]); f[1] != "delivered" || f[2] != "-" || f[6] != "-" {
		t.Errorf("delivered row: %q", lines[3])
	}
	if lines[4] != "3 entries: 2 pending, 1 delivered" {
		t.Errorf("summary %q", lines[4])
	}
	out.Reset()
	printEntries(&out, nil, "", now)
	if out.String() != "The outbox has no entries.\n" {
		t.Errorf("empty: %q", out.String())
	}
	if formatTime(time.Time{}) != "-" {
		t.Error("zero time")
	}
}
