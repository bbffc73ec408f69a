package alipaynotify

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// This file checks a captured notification the way the handler does and,
// when it does not verify, finds the likely cause by actually verifying
// repaired copies of it: another hash, HTML-unescaped values, '+' restored,
// the other charset, parameters left out.

// verification is the verdict on a capture, as the handler would reach it.
type verification struct {
	raw       form          // the parsed fields (bytes as sent); nil when unparseable
	n         *notification // nil when malformed
	malformed string        // why the handler finds it malformed (400), if so
	verified  bool
	m         match
	alg       signatureAlgorithm
	refusal   string // the handler's reason, when not verified
	content   []byte // the signed string: the one that verified, else V1
}

// checkCapture verifies body exactly as the handler does: a legacy MD5
// signature with md5 when given, any other with ring.
func checkCapture(ring keyRing, md5 md5Key, body []byte) *verification {
	v := &verification{}
	raw, err := parseForm(body)
	if err != nil {
		v.malformed = "malformed notification: " + err.Error()
		v.refusal = v.malformed
		return v
	}
	v.raw = raw
	n, err := newNotification(body)
	if err != nil {
		v.malformed = "malformed notification: " + err.Error()
		v.refusal = v.malformed
		v.content = (&notification{raw: raw, text: raw}).signedContent(ruleV1)
		return v
	}
	v.n = n
	v.alg, _ = algorithmFor(raw.get("sign_type"))
	var m match
	var verr *verifyError
	if raw.get("sign_type") == "MD5" && md5 != nil {
		m, verr = md5.verify(n)
	} else {
		m, verr = ring.verify(n)
	}
	if verr != nil {
		v.refusal = verr.reason
		if verr.status == http.StatusBadRequest {
			v.malformed = verr.reason
		}
		v.content = n.signedContent(ruleV1)
		return v
	}
	v.verified, v.m = true, m
	v.content = n.signedContent(m.rule)
	return v
}

// finding is a repair under which the notification verifies, and what it
// says about the cause.
type finding struct {
	cause   string // one line
	explain string // what happened and what to do
	hit     hit
}

// hit is a successful verification of a (repaired) form.
type hit struct {
	rule    string
	alg     signatureAlgorithm
	key     string
	content []byte
	gbk     bool // content is GBK bytes
}

var (
	algRSA2 = signatureAlgorithm{name: "RSA2", hash: crypto.SHA256}
	algRSA  = signatureAlgorithm{name: "RSA", hash: crypto.SHA1}
)

func hashName(a signatureAlgorithm) string {
	switch a.hash {
	case crypto.SHA1:
		return "SHA1"
	case crypto.SHA256:
		return "SHA256"
	}
	return "SM3"
}

// algorithmName is the algorithm in Java's terms, e.g. SHA256withRSA.
func algorithmName(a signatureAlgorithm) string {
	if a.hash == 0 {
		return "SM3withSM2"
	}
	return hashName(a) + "withRSA"
}

// try verifies f (sorted, raw bytes) with every key under V1 then V2, with
// each of algs, without the handler's charset checks.
func try(ring keyRing, f form, algs ...signatureAlgorithm) (hit, bool) {
	sig, err := base64.StdEncoding.DecodeString(f.get("sign"))
	if err != nil || len(sig) == 0 {
		return hit{}, false
	}
	n := &notification{raw: f, text: f}
	for _, alg := range algs {
		for _, rule := range []string{ruleV1, ruleV2} {
			if rule == ruleV2 && !f.has("sign_type") {
				continue
			}
			content := n.signedContent(rule)
			if key, ok := ring.find(alg, content, sig); ok {
				return hit{rule: rule, alg: alg, key: key, content: content, gbk: isGBK(f)}, true
			}
		}
	}
	return hit{}, false
}

func isGBK(f form) bool {
	switch strings.ToLower(f.get("charset")) {
	case "gbk", "gb2312", "gb18030":
		return true
	}
	return false
}

// declaredAlgs is the algorithm sign_type names, or both when it names none.
func declaredAlgs(f form) []signatureAlgorithm {
	if alg, err := algorithmFor(f.get("sign_type")); err == nil {
		return []signatureAlgorithm{alg}
	}
	return []signatureAlgorithm{algRSA2, algRSA}
}

// diagnose looks for the repair under which raw verifies. appRing holds the
// merchant's own app public keys (--app-key), to recognise them.
func diagnose(ring, appRing keyRing, raw form) *finding {
	if raw.get("sign") == "" {
		return &finding{
			cause: "there is no sign parameter",
			explain: "Every Alipay notification is signed. This is not one from Alipay (a probe, a test of your own, a browser), " +
				"or the capture left sign out (a log that filters it).",
		}
	}
	if strings.EqualFold(raw.get("sign_type"), "MD5") {
		return &finding{
			cause: "a legacy MD5 signature (the old mapi gateway): sign = md5_hex(signed string + the partner's MD5 key)",
			explain: "It is checked with the partner's secret MD5 key (--md5-key), not with a public key. If --md5-key was given, " +
				"it is not the key that signed this notification, or the notification was changed. " +
				"Notifications of the open platform (with an app_id) are signed RSA2, RSA or SM2.",
		}
	}
	for _, check := range []func(keyRing, form) *finding{
		diagnoseHash, diagnoseHTMLEscape, diagnosePlus, diagnoseCharset, diagnoseExtraParams,
	} {
		if f := check(ring, raw); f != nil {
			return f
		}
	}
	return diagnoseKey(ring, appRing, raw)
}

// diagnoseHash: the signature was made with the other hash than sign_type names.
func diagnoseHash(ring keyRing, raw form) *finding {
	signType := raw.get("sign_type")
	var other []signatureAlgorithm
	switch signType {
	case "RSA2":
		other = []signatureAlgorithm{algRSA}
	case "RSA":
		other = []signatureAlgorithm{algRSA2}
	default:
		other = []signatureAlgorithm{algRSA2, algRSA}
	}
	h, ok := try(ring, raw, other...)
	if !ok {
		return nil
	}
	if signType == "RSA2" || signType == "RSA" {
		return &finding{
			cause: fmt.Sprintf("RSA vs RSA2: signed with %swithRSA (sign_type %s), but it says sign_type=%s", hashName(h.alg), h.alg.name, signType),
			explain: "Alipay always signs with the algorithm that sign_type names: RSA2 is SHA256withRSA, RSA is SHA1withRSA. " +
				"Here the two disagree, so whatever made this notification (a test tool, your own code, a hand edit of sign_type) " +
				"signed it with the other hash. The plugin, like Alipay's SDKs, takes the hash from sign_type and refuses it.",
			hit: h,
		}
	}
	what := "there is no sign_type"
	if signType != "" {
		what = fmt.Sprintf("sign_type is %q", truncate([]byte(signType)))
	}
	return &finding{
		cause: fmt.Sprintf("%s, but the signature verifies with %swithRSA (sign_type %s)", what, hashName(h.alg), h.alg.name),
		explain: "Alipay always sends sign_type (RSA2 or RSA) and the plugin refuses a notification without a supported one. " +
			"The capture lost or changed it (a log that leaves it out?).",
		hit: h,
	}
}

// diagnoseHTMLEscape: values were HTML-escaped after Alipay signed them.
func diagnoseHTMLEscape(ring keyRing, raw form) *finding {
	fixed := slices.Clone(raw)
	var changed []string
	for i, f := range fixed {
		if f.key == "sign" || !strings.Contains(f.value, "&") {
			continue
		}
		if u := html.UnescapeString(f.value); u != f.value {
			fixed[i].value = u
			changed = append(changed, f.key)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	h, ok := try(ring, fixed, declaredAlgs(fixed)...)
	if !ok {
		return nil
	}
	return &finding{
		cause: "HTML-escaped values: " + strings.Join(changed, ", ") + " hold &quot; (or &amp;, &lt;, ...) where Alipay signed \", &, <",
		explain: "Alipay signs JSON-valued fields such as fund_bill_list as raw JSON. A framework escaped them after they " +
			"arrived (PHP frameworks' input filters such as htmlspecialchars, a global XSS filter), so the values no longer match " +
			"the signature. Read the raw values (the request body) instead of the filtered ones. The plugin reads the raw body, " +
			"so a real notification is not affected; if this is the body that reached Caddy, something in front of Caddy " +
			"rewrites it, and the plugin refuses it.",
		hit: h,
	}
}

// diagnosePlus: a '+' was turned into a space (the body was decoded twice,
// or a '+' was not percent-encoded).
func diagnosePlus(ring keyRing, raw form) *finding {
	var spaced []int // indexes of values with spaces, sign excluded
	signIndex := -1
	for i, f := range raw {
		if !strings.Contains(f.value, " ") {
			continue
		}
		if f.key == "sign" {
			signIndex = i
		} else {
			spaced = append(spaced, i)
		}
	}
	if signIndex < 0 && len(spaced) == 0 {
		return nil
	}
	if len(spaced) > 10 {
		spaced = spaced[:10] // 1024 combinations at most
	}
	// Try every subset of the spaced values, always with sign repaired:
	// timestamps such as notify_time hold real spaces.
	for mask := 0; mask < 1<<len(spaced); mask++ {
		if signIndex < 0 && mask == 0 {
			continue
		}
		fixed := slices.Clone(raw)
		var changed []string
		if signIndex >= 0 {
			fixed[signIndex].value = strings.ReplaceAll(fixed[signIndex].value, " ", "+")
			changed = append(changed, "sign")
		}
		for b, i := range spaced {
			if mask&(1<<b) != 0 {
				fixed[i].value = strings.ReplaceAll(fixed[i].value, " ", "+")
				changed = append(changed, fixed[i].key)
			}
		}
		if h, ok := try(ring, fixed, declaredAlgs(fixed)...); ok {
			return &finding{
				cause: "'+' turned into a space in " + strings.Join(changed, ", "),
				explain: "In a form body '+' means a space and a real '+' is sent as %2B. Here a '+' became a space: the body " +
					"was URL-decoded twice (a proxy or framework that decodes it, then decodes the values again), or whatever " +
					"built or relayed it wrote '+' without encoding it. Verify over the body decoded exactly once. The plugin decodes " +
					"the body it receives once; if this is what reached Caddy, fix whatever rewrites the body in front of it.",
				hit: h,
			}
		}
	}
	return nil
}

// diagnoseCharset: the values are in another charset than the one signed.
func diagnoseCharset(ring keyRing, raw form) *finding {
	declared := strings.ToLower(raw.get("charset"))
	if declared == "" {
		declared = "utf-8 (no charset parameter)"
	}
	algs := declaredAlgs(raw)
	// The values as GBK bytes.
	if toGBK, ok := convertValues(raw, func(s string) (string, error) {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("not UTF-8")
		}
		return simplifiedchinese.GBK.NewEncoder().String(s)
	}); ok {
		if h, ok := try(ring, toGBK, algs...); ok {
			h.gbk = true
			return &finding{
				cause: "wrong charset: Alipay signed the GBK bytes of these values, but they are UTF-8 here (charset " + declared + ")",
				explain: "Alipay signs the bytes of the notification's charset, and an app whose charset is GBK gets GBK " +
					"notifications with charset=gbk. Something between Alipay and here converted the values to UTF-8 (a proxy or " +
					"framework that decodes the form as UTF-8 and re-encodes it; a Java servlet that needs " +
					"request.setCharacterEncoding(\"GBK\") before reading parameters). Verify over the bytes as sent. The plugin " +
					"verifies the raw bytes of the body it receives and converts GBK to UTF-8 only after verifying.",
				hit: h,
			}
		}
	}
	// The values as UTF-8 bytes.
	if toUTF8, ok := convertValues(raw, func(s string) (string, error) {
		out, err := simplifiedchinese.GB18030.NewDecoder().String(s)
		if err != nil || strings.ContainsRune(out, utf8.RuneError) {
			return "", fmt.Errorf("not GBK")
		}
		return out, nil
	}); ok {
		if h, ok := try(ring, toUTF8, algs...); ok {
			h.gbk = false
			return &finding{
				cause: "wrong charset: Alipay signed the UTF-8 bytes of these values, but they are GBK here (charset " + declared + ")",
				explain: "Alipay signs the bytes of the notification's charset. These values were converted to GBK after Alipay " +
					"signed them (a framework or proxy configured for GBK that re-encodes the form), or the charset parameter " +
					"does not match the bytes. Verify over the bytes as sent; the plugin verifies the raw bytes of the body it receives.",
				hit: h,
			}
		}
	}
	// The bytes as they are, ignoring a charset they are not valid in.
	if h, ok := try(ring, raw, algs...); ok {
		return &finding{
			cause: "wrong charset parameter: the signature verifies over these bytes, but they are not valid " + declared,
			explain: "The charset parameter does not describe the bytes of the values, so the plugin cannot convert them to UTF-8 " +
				"for the webhook and refuses the notification as malformed. Alipay sends charset=gbk with GBK values and " +
				"charset=utf-8 with UTF-8 values: whatever produced this body changed one without the other.",
			hit: h,
		}
	}
	return nil
}

// convertValues converts every non-ASCII value with conv; ok is false when
// no value changed or one cannot be converted.
func convertValues(raw form, conv func(string) (string, error)) (form, bool) {
	fixed := slices.Clone(raw)
	changed := false
	for i, f := range fixed {
		if isASCII(f.value) {
			continue
		}
		out, err := conv(f.value)
		if err != nil {
			return nil, false
		}
		if out != f.value {
			fixed[i].value, changed = out, true
		}
	}
	return fixed, changed
}

// alipayFields are the parameters Alipay's notifications carry, new and
// legacy. A parameter outside this list was probably added after Alipay
// signed the notification.
var alipayFields = map[string]bool{
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
func diagnoseExtraParams(ring keyRing, raw form) *finding {
	algs := declaredAlgs(raw)
	var drops [][]string
	var unknown []string
	for _, f := range raw {
		if !alipayFields[f.key] {
			unknown = append(unknown, f.key)
		}
	}
	if len(unknown) > 0 {
		drops = append(drops, unknown)
	}
	for _, f := range raw {
		if f.key != "sign" && f.key != "sign_type" && !(len(unknown) == 1 && unknown[0] == f.key) {
			drops = append(drops, []string{f.key})
		}
	}
	for _, drop := range drops {
		var kept form
		for _, f := range raw {
			if !slices.Contains(drop, f.key) {
				kept = append(kept, f)
			}
		}
		if h, ok := try(ring, kept, algs...); ok {
			return &finding{
				cause: "parameters mixed in: it verifies without " + strings.Join(drop, ", "),
				explain: "Alipay did not sign these parameters: they were added after it sent the notification, most often " +
					"the notify_url's own query string merged into the parameters by the framework (PHP $_REQUEST, Rails params, " +
					"Java getParameterMap), or parameters added by a gateway, a rewrite or your code. Verify over the POST body only. " +
					"The plugin ignores the query string, so query parameters do not matter there; but if they are in the body that " +
					"reaches Caddy, something in front of Caddy adds them, and the plugin refuses it.",
				hit: h,
			}
		}
	}
	return nil
}

// diagnoseKey explains a notification that no repair verifies: the key.
func diagnoseKey(ring, appRing keyRing, raw form) *finding {
	for _, app := range appRing {
		for _, k := range ring {
			if sameKey(k.key, app.key) {
				return &finding{cause: k.label + " is your app's public key (应用公钥), not Alipay's public key (支付宝公钥)", explain: wrongKeyHint + "."}
			}
		}
	}
	if len(appRing) > 0 {
		if h, ok := try(appRing, raw, algRSA2, algRSA); ok {
			return &finding{
				cause: "signed with your app's private key (" + h.key + "), not by Alipay",
				explain: "Alipay signs notifications with its own private key; they verify with Alipay's public key (支付宝公钥). " +
					"This one was signed with the app's private key, which your own code or a test tool holds: Alipay did not send it.",
			}
		}
	}
	return &finding{
		cause:   "no repair makes it verify: the key is not the one that signed it, or the notification was altered",
		explain: "About the key: " + wrongKeyHint + ". If the key is right, the notification was changed after Alipay signed it (a forgery, a hand edit, or a copy that lost or changed characters).",
	}
}

// sameKey reports whether two public keys are the same key.
func sameKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
