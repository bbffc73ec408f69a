package diagnose

import (
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/ascii"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Finding is the likely cause of a failed verification: a repair under
// which the notification verifies, or what no repair leaves.
type Finding struct {
	// Cause is the cause, on one line.
	Cause string
	// Explain says what happened and what to do.
	Explain string
	// Repair is the repaired copy that verifies; nil when the finding
	// shows none.
	Repair *Repair
}

// Repair is a successful verification of a repaired copy.
type Repair struct {
	Rule alipay.Rule
	// SignType is the algorithm that verified: RSA2 or RSA.
	SignType string
	// Key is the label of the key that verified.
	Key string
	// SignedString is the repaired signed string.
	SignedString []byte
	// GBK is true when SignedString is GBK bytes.
	GBK bool
}

// The algorithms a repair may verify with, as sign_type names them.
const (
	rsa2 = "RSA2"
	rsa  = "RSA"
)

// try verifies params (sorted, raw bytes) with every key of ring under V1
// then V2, with each of signTypes, without the handler's other checks
// (charset, canonical sign): the repaired copy only has to carry Alipay's
// signature.
func try(ring *alipay.KeyRing, params []alipay.Param, signTypes ...string) (*Repair, bool) {
	sig, err := base64.StdEncoding.DecodeString(Get(params, "sign"))
	if err != nil || len(sig) == 0 {
		return nil, false
	}
	for _, signType := range signTypes {
		for _, rule := range []alipay.Rule{alipay.RuleV1, alipay.RuleV2} {
			if rule == alipay.RuleV2 && !Has(params, "sign_type") {
				continue
			}
			content := alipay.SignedString(params, rule)
			if key, ok := ring.Check(signType, content, sig); ok {
				return &Repair{Rule: rule, SignType: signType, Key: key, SignedString: content, GBK: IsGBK(params)}, true
			}
		}
	}
	return nil, false
}

// declaredSignTypes is the algorithm sign_type names, or both RSA ones
// when it names none that a key ring verifies.
func declaredSignTypes(params []alipay.Param) []string {
	if signType := Get(params, "sign_type"); alipay.CheckSignType(signType) == nil {
		return []string{signType}
	}
	return []string{rsa2, rsa}
}

// Diagnose looks for the repair under which params (as Verdict.Params
// holds them) verify with ring. appRing holds the merchant's own app
// public keys (--app-key), to recognise them; nil when none is given.
func Diagnose(ring, appRing *alipay.KeyRing, params []alipay.Param) *Finding {
	if ring == nil {
		ring = new(alipay.KeyRing)
	}
	if appRing == nil {
		appRing = new(alipay.KeyRing)
	}
	if Get(params, "sign") == "" {
		return &Finding{
			Cause: "there is no sign parameter",
			Explain: "Every Alipay notification is signed. This is not one from Alipay (a probe, a test of your own, a browser), " +
				"or the capture left sign out (a log that filters it).",
		}
	}
	if strings.EqualFold(Get(params, "sign_type"), "MD5") {
		return &Finding{
			Cause: "a legacy MD5 signature (the old mapi gateway): sign = md5_hex(signed string + the partner's MD5 key)",
			Explain: "It is checked with the partner's secret MD5 key (--md5-key), not with a public key. If --md5-key was given, " +
				"it is not the key that signed this notification, or the notification was changed. " +
				"Notifications of the open platform (with an app_id) are signed RSA2, RSA or SM2.",
		}
	}
	for _, check := range []func(*alipay.KeyRing, []alipay.Param) *Finding{
		diagnoseHash, diagnoseHTMLEscape, diagnosePlus, diagnoseCharset, diagnoseExtraParams,
	} {
		if f := check(ring, params); f != nil {
			return f
		}
	}
	return diagnoseKey(ring, appRing, params)
}

// diagnoseHash: the signature was made with the other hash than sign_type names.
func diagnoseHash(ring *alipay.KeyRing, params []alipay.Param) *Finding {
	signType := Get(params, "sign_type")
	var other []string
	switch signType {
	case rsa2:
		other = []string{rsa}
	case rsa:
		other = []string{rsa2}
	default:
		other = []string{rsa2, rsa}
	}
	r, ok := try(ring, params, other...)
	if !ok {
		return nil
	}
	if signType == rsa2 || signType == rsa {
		return &Finding{
			Cause: fmt.Sprintf("RSA vs RSA2: signed with %s (sign_type %s), but it says sign_type=%s", Algorithm(r.SignType), r.SignType, signType),
			Explain: "Alipay always signs with the algorithm that sign_type names: RSA2 is SHA256withRSA, RSA is SHA1withRSA. " +
				"Here the two disagree, so whatever made this notification (a test tool, your own code, a hand edit of sign_type) " +
				"signed it with the other hash. The plugin, like Alipay's SDKs, takes the hash from sign_type and refuses it.",
			Repair: r,
		}
	}
	what := "there is no sign_type"
	if signType != "" {
		what = fmt.Sprintf("sign_type is %q", alipay.Truncate(signType))
	}
	return &Finding{
		Cause: fmt.Sprintf("%s, but the signature verifies with %s (sign_type %s)", what, Algorithm(r.SignType), r.SignType),
		Explain: "Alipay always sends sign_type (RSA2 or RSA) and the plugin refuses a notification without a supported one. " +
			"The capture lost or changed it (a log that leaves it out?).",
		Repair: r,
	}
}

// diagnoseHTMLEscape: values were HTML-escaped after Alipay signed them.
func diagnoseHTMLEscape(ring *alipay.KeyRing, params []alipay.Param) *Finding {
	fixed := slices.Clone(params)
	var changed []string
	for i, p := range fixed {
		if p.Key == "sign" || !strings.Contains(p.Value, "&") {
			continue
		}
		if u := html.UnescapeString(p.Value); u != p.Value {
			fixed[i].Value = u
			changed = append(changed, p.Key)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	r, ok := try(ring, fixed, declaredSignTypes(fixed)...)
	if !ok {
		return nil
	}
	return &Finding{
		Cause: "HTML-escaped values: " + strings.Join(changed, ", ") + " hold &quot; (or &amp;, &lt;, ...) where Alipay signed \", &, <",
		Explain: "Alipay signs JSON-valued fields such as fund_bill_list as raw JSON. A framework escaped them after they " +
			"arrived (PHP frameworks' input filters such as htmlspecialchars, a global XSS filter), so the values no longer match " +
			"the signature. Read the raw values (the request body) instead of the filtered ones. The plugin reads the raw body, " +
			"so a real notification is not affected; if this is the body that reached Caddy, something in front of Caddy " +
			"rewrites it, and the plugin refuses it.",
		Repair: r,
	}
}

// maxPlusValues bounds the values diagnosePlus repairs in every
// combination: 1024 combinations at most.
const maxPlusValues = 10

// diagnosePlus: a '+' was turned into a space (the body was decoded twice,
// or a '+' was not percent-encoded).
func diagnosePlus(ring *alipay.KeyRing, params []alipay.Param) *Finding {
	var spaced []int // indexes of values with spaces, sign excluded
	signIndex := -1
	for i, p := range params {
		if !strings.Contains(p.Value, " ") {
			continue
		}
		if p.Key == "sign" {
			signIndex = i
		} else {
			spaced = append(spaced, i)
		}
	}
	if signIndex < 0 && len(spaced) == 0 {
		return nil
	}
	if len(spaced) > maxPlusValues {
		spaced = spaced[:maxPlusValues]
	}
	// Try every subset of the spaced values, always with sign repaired:
	// timestamps such as notify_time hold real spaces.
	for mask := 0; mask < 1<<len(spaced); mask++ {
		if signIndex < 0 && mask == 0 {
			continue
		}
		fixed := slices.Clone(params)
		var changed []string
		if signIndex >= 0 {
			fixed[signIndex].Value = strings.ReplaceAll(fixed[signIndex].Value, " ", "+")
			changed = append(changed, "sign")
		}
		for b, i := range spaced {
			if mask&(1<<b) != 0 {
				fixed[i].Value = strings.ReplaceAll(fixed[i].Value, " ", "+")
				changed = append(changed, fixed[i].Key)
			}
		}
		if r, ok := try(ring, fixed, declaredSignTypes(fixed)...); ok {
			return &Finding{
				Cause: "'+' turned into a space in " + strings.Join(changed, ", "),
				Explain: "In a form body '+' means a space and a real '+' is sent as %2B. Here a '+' became a space: the body " +
					"was URL-decoded twice (a proxy or framework that decodes it, then decodes the values again), or whatever " +
					"built or relayed it wrote '+' without encoding it. Verify over the body decoded exactly once. The plugin decodes " +
					"the body it receives once; if this is what reached Caddy, fix whatever rewrites the body in front of it.",
				Repair: r,
			}
		}
	}
	return nil
}

var (
	errNotUTF8 = errors.New("not UTF-8")
	errNotGBK  = errors.New("not GBK")
)

// diagnoseCharset: the values are in another charset than the one signed.
func diagnoseCharset(ring *alipay.KeyRing, params []alipay.Param) *Finding {
	declared := strings.ToLower(Get(params, "charset"))
	if declared == "" {
		declared = "utf-8 (no charset parameter)"
	}
	signTypes := declaredSignTypes(params)
	// The values as GBK bytes, then as UTF-8 bytes.
	for _, c := range []struct {
		convert      func(string) (string, error)
		gbk          bool
		signed, here string
		explain      string
	}{
		{func(s string) (string, error) {
			if !utf8.ValidString(s) {
				return "", errNotUTF8
			}
			return simplifiedchinese.GBK.NewEncoder().String(s)
		}, true, "GBK", "UTF-8",
			"Alipay signs the bytes of the notification's charset, and an app whose charset is GBK gets GBK " +
				"notifications with charset=gbk. Something between Alipay and here converted the values to UTF-8 (a proxy or " +
				"framework that decodes the form as UTF-8 and re-encodes it; a Java servlet that needs " +
				"request.setCharacterEncoding(\"GBK\") before reading parameters). Verify over the bytes as sent. The plugin " +
				"verifies the raw bytes of the body it receives and converts GBK to UTF-8 only after verifying."},
		{func(s string) (string, error) {
			out, err := alipay.GBKToUTF8(s)
			if err != nil {
				return "", errNotGBK
			}
			return out, nil
		}, false, "UTF-8", "GBK",
			"Alipay signs the bytes of the notification's charset. These values were converted to GBK after Alipay " +
				"signed them (a framework or proxy configured for GBK that re-encodes the form), or the charset parameter " +
				"does not match the bytes. Verify over the bytes as sent; the plugin verifies the raw bytes of the body it receives."},
	} {
		converted, ok := convertValues(params, c.convert)
		if !ok {
			continue
		}
		if r, ok := try(ring, converted, signTypes...); ok {
			r.GBK = c.gbk
			return &Finding{
				Cause:   "wrong charset: Alipay signed the " + c.signed + " bytes of these values, but they are " + c.here + " here (charset " + declared + ")",
				Explain: c.explain,
				Repair:  r,
			}
		}
	}
	// The bytes as they are, ignoring a charset they are not valid in.
	if r, ok := try(ring, params, signTypes...); ok {
		return &Finding{
			Cause: "wrong charset parameter: the signature verifies over these bytes, but they are not valid " + declared,
			Explain: "The charset parameter does not describe the bytes of the values, so the plugin cannot convert them to UTF-8 " +
				"for the webhook and refuses the notification as malformed. Alipay sends charset=gbk with GBK values and " +
				"charset=utf-8 with UTF-8 values: whatever produced this body changed one without the other.",
			Repair: r,
		}
	}
	return nil
}

// convertValues converts every non-ASCII value with conv; ok is false when
// no value changed or one cannot be converted.
func convertValues(params []alipay.Param, conv func(string) (string, error)) ([]alipay.Param, bool) {
	fixed := slices.Clone(params)
	changed := false
	for i, p := range fixed {
		if ascii.Only(p.Value) {
			continue
		}
		out, err := conv(p.Value)
		if err != nil {
			return nil, false
		}
		if out != p.Value {
			fixed[i].Value, changed = out, true
		}
	}
	return fixed, changed
}

// alipayParams are the parameters Alipay's notifications carry, new and
// legacy. A parameter outside this list was probably added after Alipay
// signed the notification.
var alipayParams = map[string]bool{
	"notify_time": true, "notify_type": true, "notify_id": true, "app_id": true, "auth_app_id": true,
	"charset": true, "version": true, "sign_type": true, "sign": true, "trade_no": true, "out_trade_no": true,
	"out_biz_no": true, "out_request_no": true, "buyer_id": true, "buyer_open_id": true, "buyer_logon_id": true,
	"seller_id": true, "seller_email": true, "trade_status": true, "total_amount": true, "receipt_amount": true,
	"invoice_amount": true, "buyer_pay_amount": true, "point_amount": true, "refund_fee": true,
	"send_back_fee": true, "subject": true, "body": true, "gmt_create": true, "gmt_payment": true,
	"gmt_refund": true, "gmt_close": true, "fund_bill_list": true, "passback_params": true,
	"voucher_detail_list": true, "msg_method": true, "biz_content": true, "utc_timestamp": true,
	"method": true, "timestamp": true, "merchant_app_id": true, "refund_preset_paytool_list": true,
	"hb_fq_pay_info": true, "charge_amount": true, "charge_flags": true, "settlement_id": true,
	"trade_fund_bill": true, "business_params": true, "enterprise_pay_info": true, "refund_status": true,
	// legacy mapi gateway
	"discount": true, "payment_type": true, "quantity": true, "price": true, "total_fee": true,
	"is_total_fee_adjust": true, "use_coupon": true, "buyer_email": true, "gmt_send_goods": true,
	"gmt_logistics_modify": true, "logistics_type": true, "logistics_fee": true, "logistics_payment": true,
	"receive_name": true, "receive_address": true, "receive_zip": true, "receive_phone": true,
	"receive_mobile": true, "extra_common_param": true, "out_channel_type": true, "out_channel_amount": true,
	"out_channel_inst": true, "business_scene": true, "partner": true, "notify_url": true, "return_url": true,
}

// diagnoseExtraParams: parameters were added after Alipay signed it.
func diagnoseExtraParams(ring *alipay.KeyRing, params []alipay.Param) *Finding {
	signTypes := declaredSignTypes(params)
	var drops [][]string
	var unknown []string
	for _, p := range params {
		if !alipayParams[p.Key] {
			unknown = append(unknown, p.Key)
		}
	}
	if len(unknown) > 0 {
		drops = append(drops, unknown)
	}
	for _, p := range params {
		if p.Key != "sign" && p.Key != "sign_type" && !(len(unknown) == 1 && unknown[0] == p.Key) {
			drops = append(drops, []string{p.Key})
		}
	}
	for _, drop := range drops {
		var kept []alipay.Param
		for _, p := range params {
			if !slices.Contains(drop, p.Key) {
				kept = append(kept, p)
			}
		}
		if r, ok := try(ring, kept, signTypes...); ok {
			return &Finding{
				Cause: "parameters mixed in: it verifies without " + strings.Join(drop, ", "),
				Explain: "Alipay did not sign these parameters: they were added after it sent the notification, most often " +
					"the notify_url's own query string merged into the parameters by the framework (PHP $_REQUEST, Rails params, " +
					"Java getParameterMap), or parameters added by a gateway, a rewrite or your code. Verify over the POST body only. " +
					"The plugin ignores the query string, so query parameters do not matter there; but if they are in the body that " +
					"reaches Caddy, something in front of Caddy adds them, and the plugin refuses it.",
				Repair: r,
			}
		}
	}
	return nil
}

// diagnoseKey explains a notification that no repair verifies: the key.
func diagnoseKey(ring, appRing *alipay.KeyRing, params []alipay.Param) *Finding {
	for _, app := range appRing.Keys() {
		if label, ok := ring.Contains(app); ok {
			return &Finding{Cause: label + " is your app's public key (应用公钥), not Alipay's public key (支付宝公钥)", Explain: alipay.WrongKeyHint + "."}
		}
	}
	if appRing.Len() > 0 {
		if r, ok := try(appRing, params, rsa2, rsa); ok {
			return &Finding{
				Cause: "signed with your app's private key (" + r.Key + "), not by Alipay",
				Explain: "Alipay signs notifications with its own private key; they verify with Alipay's public key (支付宝公钥). " +
					"This one was signed with the app's private key, which your own code or a test tool holds: Alipay did not send it.",
			}
		}
	}
	return &Finding{
		Cause:   "no repair makes it verify: the key is not the one that signed it, or the notification was altered",
		Explain: "About the key: " + alipay.WrongKeyHint + ". If the key is right, the notification was changed after Alipay signed it (a forgery, a hand edit, or a copy that lost or changed characters).",
	}
}
