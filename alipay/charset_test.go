package alipay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// A legacy mapi notification names no charset and comes in GBK when the
// payment request named no _input_charset: read as UTF-8 (the default) it
// is refused with a reason that says so; a Parser whose default is GBK
// reads it, and its MD5 signature, over the GBK bytes, verifies. A charset
// the notification declares still wins over the default.
func TestDefaultCharset(t *testing.T) {
	const md5Key = "legacy-md5-key"
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("白色杯子")
	params := testkit.Set(testkit.LegacyParams("n1", "TRADE_SUCCESS", time.Now()), "subject", gbkSubject)
	body := []byte(testkit.EncodeForm(testkit.MD5Signed(params, md5Key)))

	_, err := ParseNotification(body)
	if !errors.Is(err, ErrCharset) || !strings.Contains(err.Error(), "names no charset") || !strings.Contains(err.Error(), "gbk") {
		t.Fatalf("GBK without a charset read as UTF-8: %v", err)
	}
	n, err := Parser{DefaultCharset: "GBK"}.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Get("subject"); got != "白色杯子" {
		t.Errorf("subject %q", got)
	}
	if n.Charset() != "" {
		t.Errorf("Charset() = %q for a notification that names none", n.Charset())
	}
	if _, err := MD5Key(md5Key).Verify(n); err != nil {
		t.Errorf("the MD5 signature over the GBK bytes: %v", err)
	}

	// Declared UTF-8 is read as UTF-8 whatever the default.
	utf8Body := []byte(testkit.EncodeForm(testkit.MD5Signed(testkit.Set(params, "subject", "白色杯子"), md5Key)))
	declared := []byte("charset=utf-8&" + string(utf8Body))
	if n, err := (Parser{DefaultCharset: "gbk"}).Parse(declared); err != nil || n.Get("subject") != "白色杯子" {
		t.Errorf("declared utf-8 under a GBK default: %v", err)
	}
	if _, err := (Parser{DefaultCharset: "gbk"}).Parse([]byte("charset=utf-8&" + string(body))); !errors.Is(err, ErrCharset) || !strings.Contains(err.Error(), `(charset "utf-8")`) {
		t.Errorf("GBK bytes declared utf-8: %v", err)
	}
	if _, err := (Parser{DefaultCharset: "latin1"}).Parse(body); err == nil {
		t.Error("a default charset Alipay never uses was accepted")
	}
	for cs, want := range map[string]bool{"utf-8": true, "UTF8": true, "gbk": true, "GB2312": true, "gb18030": true, "latin1": false, "": false} {
		if ValidCharset(cs) != want {
			t.Errorf("ValidCharset(%q) = %v", cs, !want)
		}
	}
}
