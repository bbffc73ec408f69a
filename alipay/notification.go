package alipay

import (
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/ascii"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Notification is a parsed Alipay notification (or return_url parameter
// set): its parameters decoded once, in Alipay's order, blank ones dropped.
// It is not verified until a KeyRing or an MD5Key says so.
type Notification struct {
	// raw holds the parameters as Alipay signed them (bytes in the body's
	// charset), sorted by key, without blank values.
	raw form
	// text holds the same parameters, index for index, converted to UTF-8;
	// for a UTF-8 body it is raw itself.
	text form
	// noAmpersand: parse found no '&' in any value (it can only come from
	// %26), so no value can hold a folded parameter (foldedParameter).
	// False, the safe default, unless parse says so.
	noAmpersand bool
}

// ParseNotification reads a form body exactly once, with every rule that
// does not depend on the key (DESIGN.md §7): parameter names are ASCII
// letters, digits and '_'; no name twice; the values are valid in the
// body's charset parameter (utf-8, the default, or gbk/gb2312/gb18030); and
// blank parameters (empty or whitespace, as Java's Character.isWhitespace
// sees it), which Alipay's signature does not cover, are dropped, so that
// they do not exist for anything read from the notification.
func ParseNotification(body []byte) (*Notification, error) {
	return Parser{}.Parse(body)
}

// Parser reads notifications as ParseNotification does, with settings
// that a merchant's integration may need.
type Parser struct {
	// DefaultCharset is the charset of a notification that carries no
	// charset parameter: "" is UTF-8 (open-platform notifications always
	// carry one). Legacy mapi notifications carry none and come in the
	// _input_charset of the payment request, which is GBK when the request
	// named none: "gbk" reads them. Any value ValidCharset accepts.
	DefaultCharset string
}

// Parse is ParseNotification with p's settings.
func (p Parser) Parse(body []byte) (*Notification, error) {
	if p.DefaultCharset != "" && !ValidCharset(p.DefaultCharset) {
		return nil, fmt.Errorf("alipay: default charset %q: want utf-8 or gbk", p.DefaultCharset)
	}
	n := new(Notification)
	if err := n.parse(body, p.DefaultCharset); err != nil {
		return nil, err
	}
	return n, nil
}

// parse fills n from body: Parse without the allocation of n, for callers
// that keep the notification on their stack.
func (n *Notification) parse(body []byte, defaultCharset string) error {
	raw, facts, err := decodeForm(body)
	if err != nil {
		return err
	}
	text, err := decodeCharset(raw, facts.validUTF8, defaultCharset)
	if err != nil {
		return err
	}
	n.raw, n.text = dropBlanks(raw, text)
	n.noAmpersand = !facts.ampersand
	return nil
}

// ValidCharset reports whether a notification's charset parameter may name
// cs: utf-8 (or utf8), or gbk and its kin (IsGBK), in any case.
func ValidCharset(cs string) bool {
	return strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8") || IsGBK(cs)
}

// Get returns a parameter as UTF-8 text: "" when the notification does not
// carry it, when it is blank, and for sign, which is not signed. A nil
// notification has no parameters.
func (n *Notification) Get(key string) string {
	if n == nil || key == "sign" {
		return ""
	}
	return n.text.get(key)
}

// Params yields every parameter but sign, as UTF-8 text, in key order:
// what the signature covers, and sign_type (which it covers under V2 only).
func (n *Notification) Params() iter.Seq2[string, string] {
	return func(yield func(key, value string) bool) {
		for _, p := range n.text {
			if p.Key == "sign" {
				continue
			}
			if !yield(p.Key, p.Value) {
				return
			}
		}
	}
}

// Len returns the number of parameters that Params yields, for sizing.
func (n *Notification) Len() int {
	if n.raw.get("sign") != "" {
		return len(n.text) - 1
	}
	return len(n.text)
}

// Sign returns the sign parameter as sent ("" when absent).
func (n *Notification) Sign() string { return n.raw.get("sign") }

// SignType returns the sign_type parameter ("" when absent).
func (n *Notification) SignType() string { return n.raw.get("sign_type") }

// Charset returns the charset parameter in lower case; "" when there is
// none (then the Parser's DefaultCharset, UTF-8 unless set, applied).
func (n *Notification) Charset() string { return strings.ToLower(n.raw.get("charset")) }

// dropBlanks removes the parameters whose value is blank, from raw and text
// alike (they are index for index; text may be raw itself). Alipay's SDKs
// leave blank values out of the signed string, so nothing vouches for them:
// a blank parameter does not exist for the webhook, the policy, headers,
// placeholders or logs (DESIGN.md §7). Blankness is judged on the text, as
// Java judges the decoded String.
func dropBlanks(raw, text form) (form, form) {
	same := len(raw) > 0 && &raw[0] == &text[0]
	kept := 0
	for i := range raw {
		if IsBlank(text[i].Value) {
			continue
		}
		if kept != i { // nothing moves until the first blank value
			raw[kept] = raw[i]
			if !same {
				text[kept] = text[i]
			}
		}
		kept++
	}
	if same {
		return raw[:kept], raw[:kept]
	}
	return raw[:kept], text[:kept]
}

// gbkCharsets are the charset values read as GBK: GB2312 is a subset, and
// GB18030 a superset that the decoder also reads.
var gbkCharsets = []string{"gbk", "gb2312", "gb18030"}

// IsGBK reports whether a charset parameter names GBK or one of its kin.
func IsGBK(charset string) bool {
	for _, cs := range gbkCharsets {
		if strings.EqualFold(charset, cs) {
			return true
		}
	}
	return false
}

// decodeCharset converts the parameters to UTF-8 according to the body's
// charset parameter, or defaultCharset ("": UTF-8) when it has none. A
// value that is not valid in its charset makes the notification malformed:
// it can be neither shown nor forwarded faithfully. validUTF8 says whether
// every key and value is valid UTF-8 (decodeForm knows).
func decodeCharset(raw form, validUTF8 bool, defaultCharset string) (form, error) {
	cs := strings.ToLower(raw.get("charset"))
	declared := cs != ""
	if !declared {
		cs = strings.ToLower(defaultCharset)
	}
	switch {
	case cs == "" || cs == "utf-8" || cs == "utf8":
		if validUTF8 {
			return raw, nil
		}
		for _, p := range raw {
			if !utf8.ValidString(p.Key) || !utf8.ValidString(p.Value) {
				return nil, refuse(ErrCharset, notUTF8(p.Key, cs, declared))
			}
		}
		return raw, nil
	case IsGBK(cs):
		return decodeGBK(raw)
	default:
		return nil, refuse(ErrCharset, fmt.Sprintf("unsupported charset %q (Alipay sends utf-8 or gbk)", Truncate(cs)))
	}
}

// notUTF8 is the reason for a parameter that is not valid UTF-8.
func notUTF8(key, cs string, declared bool) string {
	if declared {
		return fmt.Sprintf("parameter %q is not valid UTF-8 (charset %q)", Truncate(key), cs)
	}
	return fmt.Sprintf("parameter %q is not valid UTF-8, and the notification names no charset (legacy mapi notifications, which name none, are GBK unless the payment request's _input_charset said utf-8: the default charset must then be gbk)", Truncate(key))
}

// decodeGBK converts every key and value from GBK to UTF-8.
func decodeGBK(raw form) (form, error) {
	text := make(form, len(raw))
	for i, p := range raw {
		key, err := GBKToUTF8(p.Key)
		if err != nil {
			return nil, refuse(ErrCharset, fmt.Sprintf("parameter name %q: %v", Truncate(p.Key), err))
		}
		value, err := GBKToUTF8(p.Value)
		if err != nil {
			return nil, refuse(ErrCharset, fmt.Sprintf("parameter %q: %v", key, err))
		}
		text[i] = Param{Key: key, Value: value}
	}
	return text, nil
}

// GBKToUTF8 converts GBK (or GB18030) bytes to UTF-8, refusing invalid ones.
func GBKToUTF8(s string) (string, error) {
	if ascii.Only(s) {
		return s, nil
	}
	out, err := simplifiedchinese.GB18030.NewDecoder().String(s)
	// The decoder replaces invalid sequences with U+FFFD instead of failing;
	// a GBK body cannot contain U+FFFD itself, so its presence means garbage.
	if err != nil || strings.ContainsRune(out, utf8.RuneError) {
		return "", errors.New("not valid GBK")
	}
	return out, nil
}

// IsBlank reports whether s is empty or only whitespace as Java's
// Character.isWhitespace sees it, the test Alipay's Java SDK applies
// (through StringUtils.isEmpty) before putting a value into the signed
// string: such a value is not signed.
func IsBlank(s string) bool {
	if len(s) > 0 && s[0] > ' ' && s[0] < utf8.RuneSelf {
		return false // the common case: a value that starts with a visible ASCII character
	}
	for _, r := range s {
		if !isJavaWhitespace(r) {
			return false
		}
	}
	return true
}

func isJavaWhitespace(r rune) bool {
	if r < utf8.RuneSelf { // the common case, without unicode's table lookups
		return r == ' ' || '\t' <= r && r <= '\r' || 0x1c <= r && r <= 0x1f
	}
	switch r {
	case 0xa0, 0x2007, 0x202f: // Java excludes the non-breaking spaces
		return false
	}
	return unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp)
}

// Beijing is the zone of Alipay's timestamps (notify_time, gmt_*), which
// carry no zone. A fixed zone, because China has no daylight saving time and
// a fixed zone needs no tzdata on the server.
var Beijing = time.FixedZone("CST", 8*60*60)

// TimeLayout is the layout of Alipay's timestamps: yyyy-MM-dd HH:mm:ss.
const TimeLayout = "2006-01-02 15:04:05"

// SentAt is the moment the notification states it was sent: notify_time
// (Beijing time), else utc_timestamp (milliseconds) for app-gateway
// messages. ok is false when it carries neither; err (ErrTime) when the one
// it carries cannot be parsed.
func (n *Notification) SentAt() (t time.Time, ok bool, err error) {
	if s := n.Get("notify_time"); s != "" {
		t, err := time.ParseInLocation(TimeLayout, s, Beijing)
		if err != nil {
			return time.Time{}, true, refuse(ErrTime, fmt.Sprintf("notify_time %q is not yyyy-MM-dd HH:mm:ss", Truncate(s)))
		}
		return t, true, nil
	}
	if s := n.Get("utc_timestamp"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			return time.Time{}, true, refuse(ErrTime, fmt.Sprintf("utc_timestamp %q is not milliseconds since 1970", Truncate(s)))
		}
		return time.UnixMilli(ms), true, nil
	}
	return time.Time{}, false, nil
}

// MaxNotifyIDLength bounds notify_id, which becomes the webhook-id.
const MaxNotifyIDLength = 128

// CheckNotification refuses (ErrNotNotification) what is not an
// asynchronous notification: without notify_id (the upstream's idempotency
// key) and notify_time or utc_timestamp (its age), a signed parameter set
// such as a return_url redirect could be replayed for ever under new ids
// (DESIGN.md §7). notify_id must be a token of 1 to 128 ASCII letters,
// digits, '_' and '-'. Call it on a verified notification: only then are
// these parameters signed.
func (n *Notification) CheckNotification() error {
	id := n.Get("notify_id")
	if id == "" {
		return refuse(ErrNotNotification, "not a notification: no notify_id (a return_url redirect or a hand-made post)")
	}
	if !isNotifyID(id) {
		return refuse(ErrNotNotification, fmt.Sprintf("notify_id %q is not a token of 1 to %d ASCII letters, digits, _ and -", Truncate(id), MaxNotifyIDLength))
	}
	if n.Get("notify_time") == "" && n.Get("utc_timestamp") == "" {
		return refuse(ErrNotNotification, "not a notification: neither notify_time nor utc_timestamp")
	}
	return nil
}

// isNotifyID reports whether id is a token Alipay could have issued.
func isNotifyID(id string) bool {
	if id == "" || len(id) > MaxNotifyIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isNameByte(id[i]) && id[i] != '-' {
			return false
		}
	}
	return true
}
