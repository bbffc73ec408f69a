package alipaynotify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/emmansun/gmsm/smx509"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"go.uber.org/zap"
)

// Outcomes of a notification: the log field "outcome" and the metrics label.
// A small fixed set, so that it stays low-cardinality.
const (
	outcomeForwarded          = "forwarded"
	outcomeFiltered           = "filtered"
	outcomeDeliveredEarlier   = "delivered_earlier" // the outbox delivered it before this retry
	outcomeMethodNotAllowed   = "method_not_allowed"
	outcomeTooLarge           = "too_large"
	outcomeBadRequest         = "bad_request"
	outcomeBadSignature       = "bad_signature"
	outcomeAppRefused         = "app_refused"
	outcomeSellerRefused      = "seller_refused"
	outcomeStale              = "stale"
	outcomeNotifyVerifyFailed = "notify_verify_refused"
	outcomeNotifyVerifyError  = "notify_verify_error"
	outcomeUpstreamError      = "upstream_error"
	outcomeUpstreamTimeout    = "upstream_timeout"
	outcomeVerified           = "verified" // alipay_verify passed the request on
)

const (
	defaultMaxAge        = 72 * time.Hour
	defaultMaxBody       = 64 << 10
	defaultNotifyGateway = "https://mapi.alipay.com/gateway.do"
	notifyVerifyTimeout  = 10 * time.Second
)

// KeySource is where an app's Alipay keys come from: public keys,
// certificates, or both.
type KeySource struct {
	// AlipayPublicKeys are Alipay's public keys (支付宝公钥, from the open
	// platform console; not the app's own public key): each one line of
	// base64 as the console shows it, a PEM "PUBLIC KEY" block, or the path
	// of a file holding either. RSA keys verify sign_type RSA2 and RSA, SM2
	// keys sign_type SM2. They are tried in order, so that a key can be
	// rotated by listing the new one next to the old. Accepts placeholders
	// such as {env.*} and {file.*}, resolved when the config loads.
	AlipayPublicKeys []string `json:"alipay_public_keys,omitempty"`

	// AlipayCerts are, in public-key-certificate mode, the paths of Alipay's
	// public key certificates (alipayCertPublicKey_RSA2.crt, or the SM2 one);
	// the first PEM block of each is the key, further blocks are
	// intermediates. Several may be given for rotation. An expired
	// certificate is logged as a warning but still used: Alipay's SDKs do
	// not check expiry when verifying notifications. Accepts placeholders.
	AlipayCerts []string `json:"alipay_certs,omitempty"`

	// AlipayRootCert is the optional path of Alipay's root certificate file
	// (alipayRootCert.crt). When set, every certificate of AlipayCerts must
	// chain to one of its roots, checked by signature and not by date.
	// Accepts placeholders.
	AlipayRootCert string `json:"alipay_root_cert,omitempty"`
}

func (k KeySource) empty() bool { return len(k.AlipayPublicKeys) == 0 && len(k.AlipayCerts) == 0 }

// App is one Alipay app with its own keys, for platforms that run several:
// the notification's app_id selects the App.
type App struct {
	// AppID is the Alipay app ID these keys verify.
	AppID string `json:"app_id,omitempty"`

	KeySource
}

// Verifier is the part of the configuration that decides whether a request is
// a genuine Alipay notification for this merchant: which keys verify its
// signature and which apps, sellers and ages are accepted. alipay_notify and
// alipay_verify share it.
type Verifier struct {
	// AppIDs are the Alipay app IDs (APPID, e.g. "2021000000000000") whose
	// notifications the top-level keys verify. A notification for an app
	// neither listed here nor in Apps is refused with 403, even when its
	// signature verifies. Required with top-level keys.
	AppIDs []string `json:"app_ids,omitempty"`

	// The top-level keys, serving AppIDs.
	KeySource

	// Apps are further apps, each with its own keys.
	Apps []App `json:"apps,omitempty"`

	// Partner is the merchant's PID (2088...) for legacy mapi notifications
	// (sign_type MD5), which carry no app_id. With Partner, MD5Key is
	// required, and a legacy notification's seller_id must equal Partner
	// unless SellerIDs lists the allowed ones.
	Partner string `json:"partner,omitempty"`

	// MD5Key is the partner's MD5 key (安全校验码) that signs legacy mapi
	// notifications: sign = md5_hex(signed string + key). A secret: use a
	// placeholder such as {env.ALIPAY_MD5_KEY}.
	MD5Key string `json:"md5_key,omitempty"`

	// NotifyVerify, when set, is the legacy gateway URL (usually
	// https://mapi.alipay.com/gateway.do) asked to confirm each verified
	// MD5 notification (service=notify_verify&partner=...&notify_id=...)
	// before it is accepted: only the answer "true" confirms it. Another
	// answer is a 403; an unreachable gateway a 502, one that does not
	// answer in time (alipay_notify's timeout; 10s for alipay_verify) a 504,
	// so that Alipay retries.
	NotifyVerify string `json:"notify_verify,omitempty"`

	// SellerIDs, when set, are the only seller_id values (the merchant's
	// 2088... PID) accepted; a notification that carries another seller_id
	// is refused with 403. Notifications without seller_id pass.
	SellerIDs []string `json:"seller_ids,omitempty"`

	// MaxAge refuses, with 403, notifications whose signed notify_time (or
	// utc_timestamp for app-gateway messages) is older than this, so that a
	// captured notification cannot be replayed for ever. Default 72h (Alipay
	// stops retrying after about 25h); a negative value turns the check off.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// MaxBody is the largest request body accepted, in bytes; a larger one is
	// answered 413. Default 65536 (64 KiB; real notifications are 1 to 3 KiB).
	MaxBody int64 `json:"max_body,omitempty"`

	// DefaultCharset is the charset of notifications that name none: utf-8
	// (the default) or gbk. Open-platform notifications always name one;
	// legacy mapi notifications never do, and come in the _input_charset of
	// the payment request, GBK when it named none: set gbk for those. It
	// decides only how the bytes become text (the signature covers the
	// bytes); a value not valid in it is a 400.
	DefaultCharset string `json:"default_charset,omitempty"`

	// notificationsOnly refuses what is not an asynchronous notification
	// (alipay_notify); the gate also takes return_url redirects.
	notificationsOnly bool
	// otherKeys: the handler verifies another kind too (Antom clients), so
	// domestic keys are optional.
	otherKeys bool

	parser         alipay.Parser
	rings          map[string]*alipay.KeyRing // by app_id
	md5            alipay.MD5Key              // nil: no legacy mode
	gateway        *http.Client
	gatewayTimeout time.Duration // alipay_notify uses its timeout
	maxAge         time.Duration // 0: off
	maxBody        int64
	now            func() time.Time
}

// refusal is why a request is not accepted: the answer's status, the outcome
// for logs and metrics, and the reason in words.
type refusal struct {
	status  int
	outcome string
	reason  string
	// signed, for a signature that does not verify, builds the string that
	// was checked, for a DEBUG line: only when DEBUG is on
	// (logSignedString).
	signed signedContent
}

func refuse(status int, outcome, format string, args ...any) *refusal {
	return &refusal{status: status, outcome: outcome, reason: fmt.Sprintf(format, args...)}
}

// provision resolves placeholders and loads the keys.
func (v *Verifier) provision(logger *zap.Logger) error {
	if v.now == nil {
		v.now = time.Now
	}
	if err := v.checkConfig(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	if err := v.provisionApps(repl, logger); err != nil {
		return err
	}
	if err := v.provisionMD5(repl); err != nil {
		return err
	}
	switch {
	case v.MaxAge == 0:
		v.maxAge = defaultMaxAge
	case v.MaxAge > 0:
		v.maxAge = time.Duration(v.MaxAge)
	}
	v.maxBody = v.MaxBody
	if v.maxBody <= 0 {
		v.maxBody = defaultMaxBody
	}
	v.parser = alipay.Parser{DefaultCharset: v.DefaultCharset}
	return nil
}

// checkConfig checks, without reading any key, that the configuration can
// verify something and is consistent: the one place for these rules, run
// when a Caddyfile is parsed (with its line) and when JSON is provisioned.
func (v *Verifier) checkConfig() error {
	hasTopKeys := !v.KeySource.empty()
	legacy := v.Partner != "" || v.MD5Key != ""
	switch {
	case hasTopKeys && len(v.AppIDs) == 0:
		return errors.New("app_id is required: the Alipay app ID(s) this endpoint serves")
	case len(v.AppIDs) > 0 && !hasTopKeys:
		return errors.New("a key is required: alipay_public_key (Alipay's public key, not your app's) or alipay_cert")
	case !hasTopKeys && len(v.Apps) == 0 && !legacy && !v.otherKeys:
		return errors.New("app_id with a key (alipay_public_key or alipay_cert), app blocks, partner with md5_key, or antom blocks are required")
	case legacy && (v.Partner == "" || v.MD5Key == ""):
		return errors.New("partner and md5_key go together: legacy MD5 notifications need both")
	case v.NotifyVerify != "" && !legacy:
		return errors.New("notify_verify needs partner and md5_key (it confirms legacy MD5 notifications)")
	}
	if v.NotifyVerify != "" {
		if err := checkHTTPURL("notify_verify", v.NotifyVerify); err != nil {
			return err
		}
	}
	if err := checkIDs(v.AppIDs, v.SellerIDs, v.Partner); err != nil {
		return err
	}
	if v.DefaultCharset != "" && !alipay.ValidCharset(v.DefaultCharset) {
		return fmt.Errorf("default_charset: %q is not a charset Alipay sends: give utf-8 or gbk", v.DefaultCharset)
	}
	seen := make(map[string]bool)
	for _, id := range v.AppIDs {
		seen[id] = true
	}
	for _, app := range v.Apps {
		where := "app " + app.AppID + ": "
		switch {
		case app.AppID == "":
			return errors.New("app: an app block needs its app_id")
		case seen[app.AppID]:
			return fmt.Errorf("%sapp_id given twice", where)
		case app.KeySource.empty():
			return fmt.Errorf("%sno key: give alipay_public_key or alipay_cert in the block", where)
		}
		if err := checkIDs([]string{app.AppID}, nil, ""); err != nil {
			return err
		}
		seen[app.AppID] = true
	}
	return nil
}

// checkIDs checks that app IDs, seller IDs and the partner are what Alipay
// issues (checkID).
func checkIDs(appIDs, sellerIDs []string, partner string) error {
	for _, id := range appIDs {
		if err := checkID("app_id", id); err != nil {
			return err
		}
	}
	for _, id := range sellerIDs {
		if err := checkID("seller_id", id); err != nil {
			return err
		}
	}
	if partner != "" {
		return checkID("partner", partner)
	}
	return nil
}

// checkID checks that an ID is all digits, as Alipay's are (app IDs are
// 16, PIDs 2088 and 12 more). A comma-separated list, a typo or a
// placeholder left unresolved would otherwise pass validation and then
// refuse every notification with a reason that seems to contradict itself.
func checkID(subdirective, id string) error {
	if isDigits(id) {
		return nil
	}
	if strings.ContainsAny(id, ", ") {
		return fmt.Errorf("%s %q: Alipay's IDs are all digits; give several as separate values (%s 2021... 2021...)", subdirective, id, subdirective)
	}
	return fmt.Errorf("%s %q: Alipay's IDs are all digits", subdirective, id)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// provisionApps loads the top-level keys for AppIDs and each App's keys.
func (v *Verifier) provisionApps(repl *caddy.Replacer, logger *zap.Logger) error {
	v.rings = make(map[string]*alipay.KeyRing)
	if len(v.AppIDs) > 0 {
		ring, err := v.KeySource.load(repl, logger, "")
		if err != nil {
			return err
		}
		for _, id := range v.AppIDs {
			v.rings[id] = ring
		}
	}
	for _, app := range v.Apps {
		ring, err := app.KeySource.load(repl, logger, "app "+app.AppID+": ")
		if err != nil {
			return err
		}
		v.rings[app.AppID] = ring
	}
	return nil
}

// provisionMD5 sets up legacy mapi mode.
func (v *Verifier) provisionMD5(repl *caddy.Replacer) error {
	if v.MD5Key == "" {
		return nil
	}
	key, err := resolve(repl, v.MD5Key, "md5_key")
	if err != nil {
		return err
	}
	v.md5 = alipay.MD5Key(strings.TrimSpace(key))
	if v.NotifyVerify != "" {
		if v.gatewayTimeout <= 0 {
			v.gatewayTimeout = notifyVerifyTimeout
		}
		v.gateway = newNoRedirectClient(nil)
	}
	return nil
}

// load parses the source's keys and certificates into a key ring; where
// prefixes errors and key labels ("app 2021...: ").
func (k KeySource) load(repl *caddy.Replacer, logger *zap.Logger, where string) (*alipay.KeyRing, error) {
	ring := new(alipay.KeyRing)
	for i, value := range k.AlipayPublicKeys {
		label := fmt.Sprintf("%salipay_public_key #%d", where, i+1)
		resolved, err := resolve(repl, value, label)
		if err != nil {
			return nil, err
		}
		key, err := alipay.LoadPublicKey(resolved)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if err := ring.Add(label, key); err != nil {
			return nil, err
		}
	}
	roots, err := k.loadRoots(repl, where)
	if err != nil {
		return nil, err
	}
	for i, value := range k.AlipayCerts {
		label := fmt.Sprintf("%salipay_cert #%d", where, i+1)
		path, err := resolve(repl, value, label)
		if err != nil {
			return nil, err
		}
		cert, err := alipay.LoadCertificate(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if roots != nil {
			if err := cert.ChainsTo(roots); err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
		}
		label += " (SN " + cert.SerialNumber() + ")"
		if cert.Expired(time.Now()) {
			logger.Warn("alipay_cert has expired; still using it, as Alipay's SDKs do, but download the current one from the open platform console",
				zap.String("cert", label), zap.Time("not_after", cert.Leaf.NotAfter))
		}
		if err := ring.Add(label, cert.PublicKey()); err != nil {
			return nil, err
		}
	}
	return ring, nil
}

// loadRoots reads alipay_root_cert, if set.
func (k KeySource) loadRoots(repl *caddy.Replacer, where string) ([]*smx509.Certificate, error) {
	if k.AlipayRootCert == "" {
		return nil, nil
	}
	path, err := resolve(repl, k.AlipayRootCert, where+"alipay_root_cert")
	if err != nil {
		return nil, err
	}
	roots, err := alipay.ReadCertificates(path)
	if err != nil {
		return nil, fmt.Errorf("%salipay_root_cert %s: %w", where, path, err)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("%salipay_root_cert %s: no certificate in it could be parsed", where, path)
	}
	return roots, nil
}

// resolve replaces the global placeholders ({env.*}, {file.*}) of a
// configured value; what names the value in the error.
func resolve(repl *caddy.Replacer, value, what string) (string, error) {
	resolved, err := repl.ReplaceOrErr(value, true, true)
	if err != nil {
		if file, ferr := unreadableFilePlaceholder(value); ferr != nil {
			return "", fmt.Errorf("%s: %s: cannot read %s: %w", what, value, file, ferr)
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return resolved, nil
}

// unreadableFilePlaceholder finds a {file.<path>} placeholder in value whose
// file cannot be read: Caddy only reports that it evaluated to nothing.
func unreadableFilePlaceholder(value string) (string, error) {
	for rest := value; ; {
		start := strings.Index(rest, "{file.")
		if start < 0 {
			return "", nil
		}
		end := strings.IndexByte(rest[start:], '}')
		if end < 0 {
			return "", nil
		}
		path := rest[start+len("{file.") : start+end]
		if _, err := os.Stat(path); err != nil {
			return path, err
		}
		rest = rest[start+end:]
	}
}

// checkHTTPURL checks that a URL subdirective is an absolute http(s) URL.
func checkHTTPURL(subdirective, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an absolute http:// or https:// URL", subdirective, raw)
	}
	return nil
}

// newNoRedirectClient is the HTTP client for the upstream and the legacy
// gateway: a redirect is not an answer (following it could post a
// notification somewhere the merchant never configured).
func newNoRedirectClient(transport http.RoundTripper) *http.Client {
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// verified is a request that passed check: the notification, what verified
// it, and the time it states it was sent.
type verified struct {
	n      *alipay.Notification
	match  alipay.Match
	sentAt time.Time // zero when it states none (a return_url through the gate)
	legacy bool      // verified with the MD5 key
}

// check decides whether the form (a POST body or a return_url query) is a
// genuine notification for this merchant. The app is checked first, because
// it selects the keys; then the signature and the one reading of the signed
// string; then, on what the signature covers, whether it is a notification
// (alipay_notify) and the rest of the policy, so that a forgery is reported
// as a bad signature whatever fields it claims. On a refusal, v.n is the
// notification when it could be parsed (for the log line).
func (v *Verifier) check(ctx context.Context, form []byte) (verified, *refusal) {
	n, err := v.parser.Parse(form)
	if err != nil {
		return verified{}, refuse(http.StatusBadRequest, outcomeBadRequest, "malformed notification: %v", err)
	}
	res := verified{n: n}
	if ref := v.verifySignature(&res); ref != nil {
		return res, ref
	}
	if v.notificationsOnly {
		if err := n.CheckNotification(); err != nil {
			return res, refusalFor(err)
		}
	}
	if ref := v.checkPolicy(&res); ref != nil {
		return res, ref
	}
	if res.legacy && v.gateway != nil {
		if ref := v.confirmWithGateway(ctx, n); ref != nil {
			return res, ref
		}
	}
	return res, nil
}

// verifySignature picks the keys (the MD5 key for sign_type MD5, else the
// keys of the notification's app_id) and verifies with them.
func (v *Verifier) verifySignature(res *verified) *refusal {
	n := res.n
	var err error
	if n.SignType() == "MD5" && v.md5 != nil {
		res.legacy = true
		res.match, err = v.md5.Verify(n)
	} else {
		if n.Sign() == "" {
			return refusalFor(alipay.ErrNoSign)
		}
		if err := alipay.CheckSignType(n.SignType()); err != nil {
			return refusalFor(err)
		}
		appID := n.Get("app_id")
		ring, ok := v.rings[appID]
		if !ok {
			if len(v.rings) == 0 {
				return refuse(http.StatusForbidden, outcomeAppRefused, "app_id %q: this endpoint has no domestic Alipay keys (only antom blocks)", alipay.Truncate(appID))
			}
			return refuse(http.StatusForbidden, outcomeAppRefused, "app_id %q is not one of the configured apps %v", alipay.Truncate(appID), v.appList())
		}
		res.match, err = ring.Verify(n)
	}
	if err == nil {
		return nil
	}
	ref := refusalFor(err)
	if ref.outcome == outcomeBadSignature {
		switch {
		case res.legacy:
			ref.reason += "; check md5_key: the partner's MD5 key (安全校验码) of the legacy mapi gateway"
		case err == alipay.ErrSignatureMismatch: // what every forgery gets: no concatenation per request
			ref.reason = signatureMismatchReason
		default:
			ref.reason += "; " + alipay.WrongKeyHint
		}
		ref.signed = (*alipaySigned)(n)
	}
	return ref
}

// signatureMismatchReason is the reason of an RSA or SM2 signature that no
// key verifies, with the wrong-key hint.
var signatureMismatchReason = alipay.ErrSignatureMismatch.Error() + "; " + alipay.WrongKeyHint

// refusalFor maps the protocol's errors to the answer: the one place where
// a malformed notification becomes a 400 and one that does not verify a 403.
func refusalFor(err error) *refusal {
	switch {
	case errors.Is(err, alipay.ErrNotVerified):
		return &refusal{status: http.StatusForbidden, outcome: outcomeBadSignature, reason: err.Error()}
	default:
		return &refusal{status: http.StatusBadRequest, outcome: outcomeBadRequest, reason: err.Error()}
	}
}

func (v *Verifier) appList() []string {
	apps := make([]string, 0, len(v.rings))
	for id := range v.rings {
		apps = append(apps, id)
	}
	slices.Sort(apps)
	return apps
}

// checkPolicy applies the merchant's seller and age rules to a verified
// notification, and records when it was sent.
func (v *Verifier) checkPolicy(res *verified) *refusal {
	if seller := res.n.Get("seller_id"); seller != "" {
		allowed := v.SellerIDs
		if len(allowed) == 0 && res.legacy {
			allowed = []string{v.Partner} // a legacy notification is the partner's own
		}
		if len(allowed) > 0 && !slices.Contains(allowed, seller) {
			return refuse(http.StatusForbidden, outcomeSellerRefused, "seller_id %q is not one of %v", alipay.Truncate(seller), allowed)
		}
	}
	sent, ok, err := res.n.SentAt()
	if err != nil {
		return refusalFor(err)
	}
	if !ok {
		return nil
	}
	res.sentAt = sent
	if v.maxAge > 0 {
		if age := v.now().Sub(sent); age > v.maxAge {
			return refuse(http.StatusForbidden, outcomeStale,
				"notification sent %s ago, more than max_age %s (a replay, or a clock far off)", age.Round(time.Second), v.maxAge)
		}
	}
	return nil
}

// confirmWithGateway asks the legacy gateway whether Alipay really sent the
// notification (notify_verify); only the answer "true" confirms it.
func (v *Verifier) confirmWithGateway(ctx context.Context, n *alipay.Notification) *refusal {
	notifyID := n.Get("notify_id")
	if notifyID == "" {
		return refuse(http.StatusBadRequest, outcomeBadRequest, "no notify_id to confirm with notify_verify")
	}
	query := "service=notify_verify&partner=" + url.QueryEscape(v.Partner) + "&notify_id=" + url.QueryEscape(notifyID)
	target := v.NotifyVerify + "?" + query
	if strings.Contains(v.NotifyVerify, "?") {
		target = v.NotifyVerify + "&" + query
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.gatewayTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return refuse(http.StatusBadGateway, outcomeNotifyVerifyError, "notify_verify: %v", err)
	}
	resp, err := v.gateway.Do(req)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		return refuse(status, outcomeNotifyVerifyError, "notify_verify gateway unreachable; Alipay will retry: %v", err)
	}
	defer resp.Body.Close()
	answer := make([]byte, 64)
	size, _ := io.ReadFull(resp.Body, answer)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(answer[:size])) != "true" {
		return refuse(http.StatusForbidden, outcomeNotifyVerifyFailed,
			"notify_verify gateway did not confirm notify_id %q (status %d, answer %q)", alipay.Truncate(notifyID), resp.StatusCode, alipay.Truncate(string(answer[:size])))
	}
	return nil
}

// appLabels are the app_id label values of the configured apps.
func (v *Verifier) appLabels() []string {
	apps := slices.Clone(v.AppIDs)
	for _, app := range v.Apps {
		apps = append(apps, app.AppID)
	}
	return apps
}
