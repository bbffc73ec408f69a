package alipaynotify

import (
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Outcomes of a notification: the log field "outcome" and, later, a metrics
// label. A small fixed set, so that it stays low-cardinality.
const (
	outcomeForwarded        = "forwarded"
	outcomeFiltered         = "filtered"
	outcomeMethodNotAllowed = "method_not_allowed"
	outcomeTooLarge         = "too_large"
	outcomeBadRequest       = "bad_request"
	outcomeBadSignature     = "bad_signature"
	outcomeAppRefused       = "app_refused"
	outcomeSellerRefused    = "seller_refused"
	outcomeStale            = "stale"
	outcomeUpstreamError    = "upstream_error"
	outcomeUpstreamTimeout  = "upstream_timeout"
)

const (
	defaultMaxAge  = 72 * time.Hour
	defaultMaxBody = 64 << 10
)

// Verifier is the part of the configuration that decides whether a request is
// a genuine Alipay notification for this merchant: which keys verify its
// signature and which apps, sellers and ages are accepted.
type Verifier struct {
	// AppIDs are the Alipay app IDs (APPID, e.g. "2021000000000000") this
	// endpoint serves. A notification whose app_id is not listed is refused
	// with 403, even when its signature verifies. Required.
	AppIDs []string `json:"app_ids,omitempty"`

	// AlipayPublicKeys are Alipay's public keys (支付宝公钥, from the open
	// platform console; not the app's own public key): each one line of
	// base64 as the console shows it, a PEM "PUBLIC KEY" block, or the path
	// of a file holding either. They are tried in order, so that a key can
	// be rotated by listing the new one next to the old. Accepts
	// placeholders such as {env.*} and {file.*}, resolved when the config
	// loads.
	AlipayPublicKeys []string `json:"alipay_public_keys,omitempty"`

	// AlipayCerts are, in public-key-certificate mode, the paths of Alipay's
	// public key certificates (alipayCertPublicKey_RSA2.crt); the first PEM
	// block of each is the key, further blocks are intermediates. Several
	// may be given for rotation. An expired certificate is logged as a
	// warning but still used: Alipay's SDKs do not check expiry when
	// verifying notifications. Accepts placeholders.
	AlipayCerts []string `json:"alipay_certs,omitempty"`

	// AlipayRootCert is the optional path of Alipay's root certificate file
	// (alipayRootCert.crt). When set, every certificate of AlipayCerts must
	// chain to one of its roots, checked by signature and not by date.
	// Roots Go cannot parse (Alipay's SM2 root) are skipped. Accepts
	// placeholders.
	AlipayRootCert string `json:"alipay_root_cert,omitempty"`

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

	keys    keyRing
	maxAge  time.Duration // 0: off
	maxBody int64
	now     func() time.Time
}

// refusal is why a request is not accepted: the answer's status, the outcome
// for logs and metrics, and the reason in words.
type refusal struct {
	status  int
	outcome string
	reason  string
	fields  []zap.Field
}

func refuse(status int, outcome, format string, args ...any) *refusal {
	return &refusal{status: status, outcome: outcome, reason: fmt.Sprintf(format, args...)}
}

// provision resolves placeholders and loads the keys.
func (v *Verifier) provision(logger *zap.Logger) error {
	repl := caddy.NewReplacer()
	for i, value := range v.AlipayPublicKeys {
		resolved, err := repl.ReplaceOrErr(value, true, true)
		if err != nil {
			return fmt.Errorf("alipay_public_key #%d: %w", i+1, err)
		}
		key, err := parsePublicKey(resolved)
		if err != nil {
			return fmt.Errorf("alipay_public_key #%d: %w", i+1, err)
		}
		v.keys = append(v.keys, publicKey{label: fmt.Sprintf("alipay_public_key #%d", i+1), rsa: key})
	}
	if err := v.provisionCerts(repl, logger); err != nil {
		return err
	}
	if len(v.keys) == 0 {
		return fmt.Errorf("no key to verify Alipay's signatures: give alipay_public_key or alipay_cert")
	}
	if len(v.AppIDs) == 0 {
		return fmt.Errorf("app_id is required: the Alipay app ID(s) this endpoint serves")
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
	if v.now == nil {
		v.now = time.Now
	}
	return nil
}

func (v *Verifier) provisionCerts(repl *caddy.Replacer, logger *zap.Logger) error {
	var rootCerts []*x509.Certificate
	if v.AlipayRootCert != "" {
		path, err := repl.ReplaceOrErr(v.AlipayRootCert, true, true)
		if err != nil {
			return fmt.Errorf("alipay_root_cert: %w", err)
		}
		if rootCerts, err = readCertificates(path); err != nil {
			return fmt.Errorf("alipay_root_cert %s: %w", path, err)
		}
		if len(rootCerts) == 0 {
			return fmt.Errorf("alipay_root_cert %s: no certificate Go can parse in it", path)
		}
	}
	for i, value := range v.AlipayCerts {
		path, err := repl.ReplaceOrErr(value, true, true)
		if err != nil {
			return fmt.Errorf("alipay_cert #%d: %w", i+1, err)
		}
		cert, err := loadAlipayCert(path)
		if err != nil {
			return fmt.Errorf("alipay_cert #%d: %w", i+1, err)
		}
		if rootCerts != nil {
			if err := cert.chainsTo(rootCerts); err != nil {
				return fmt.Errorf("alipay_cert #%d: %w", i+1, err)
			}
		}
		label := fmt.Sprintf("alipay_cert #%d (SN %s)", i+1, cert.serialNumber())
		if cert.expired(v.nowOrDefault()) {
			logger.Warn("alipay_cert has expired; still using it, as Alipay's SDKs do, but download the current one from the open platform console",
				zap.String("cert", label), zap.Time("not_after", cert.leaf.NotAfter))
		}
		v.keys = append(v.keys, publicKey{label: label, rsa: cert.leaf.PublicKey.(*rsa.PublicKey)})
	}
	return nil
}

func (v *Verifier) nowOrDefault() time.Time {
	if v.now != nil {
		return v.now()
	}
	return time.Now()
}

// check decides whether the form in body is a genuine notification for this
// merchant. The signature is checked before the policy, so that a forgery
// is reported as a bad signature whatever fields it claims.
func (v *Verifier) check(body []byte) (*notification, match, *refusal) {
	n, err := newNotification(body)
	if err != nil {
		return nil, match{}, refuse(http.StatusBadRequest, outcomeBadRequest, "malformed notification: %v", err)
	}
	m, verr := v.keys.verify(n)
	if verr != nil {
		if verr.status == http.StatusBadRequest {
			return n, match{}, refuse(verr.status, outcomeBadRequest, "%s", verr.reason)
		}
		r := refuse(verr.status, outcomeBadSignature, "%s; %s", verr.reason, wrongKeyHint)
		r.fields = append(r.fields, zap.ByteString("signed_string", verr.content))
		return n, match{}, r
	}
	if r := v.checkPolicy(n); r != nil {
		return n, m, r
	}
	return n, m, nil
}

// checkPolicy applies the merchant's app, seller and age rules to a verified
// notification.
func (v *Verifier) checkPolicy(n *notification) *refusal {
	if appID := n.get("app_id"); !slices.Contains(v.AppIDs, appID) {
		return refuse(http.StatusForbidden, outcomeAppRefused, "app_id %q is not one of app_id %v", truncate([]byte(appID)), v.AppIDs)
	}
	if seller := n.get("seller_id"); seller != "" && len(v.SellerIDs) > 0 && !slices.Contains(v.SellerIDs, seller) {
		return refuse(http.StatusForbidden, outcomeSellerRefused, "seller_id %q is not one of seller_id %v", truncate([]byte(seller)), v.SellerIDs)
	}
	sent, ok, err := n.signedTime()
	if err != nil {
		return refuse(http.StatusBadRequest, outcomeBadRequest, "%v", err)
	}
	if ok && v.maxAge > 0 {
		if age := v.now().Sub(sent); age > v.maxAge {
			return refuse(http.StatusForbidden, outcomeStale,
				"notification sent %s ago, more than max_age %s (a replay, or a clock far off)", age.Round(time.Second), v.maxAge)
		}
	}
	return nil
}
