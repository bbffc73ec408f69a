package alipaynotify

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/antom"
)

// AntomClient is one Antom (Alipay's cross-border acquiring) client with
// the keys that verify its notifications (DESIGN.md §10). A client is
// verified only with its own keys, never another client's or a domestic
// key.
type AntomClient struct {
	// ClientID is the Client-Id header of the client's notifications, e.g.
	// SANDBOX_5X00000000000000.
	ClientID string `json:"client_id,omitempty"`

	// AntomPublicKeys are Antom's public keys for this client, as Antom
	// Dashboard shows them: each one line of base64, a PEM "PUBLIC KEY"
	// block, or the path of a file holding either. They are tried in
	// order (rotation); the Signature header's keyVersion does not pick
	// one, since the header is not signed. Accepts placeholders such as
	// {env.*} and {file.*}, resolved when the config loads.
	AntomPublicKeys []string `json:"antom_public_keys,omitempty"`
}

// isAntom reports whether a request is an Antom notification: it carries a
// Signature header, even an empty one, so that it is answered in Antom's
// JSON (DESIGN.md §10): the empty value is Antom's "missing header
// Signature" 400, not the domestic path's text "fail".
func isAntom(r *http.Request) bool {
	_, ok := r.Header["Signature"] // the server canonicalizes header names
	return ok
}

// provisionAntom loads each client's keys.
func (h *Handler) provisionAntom() error {
	repl := caddy.NewReplacer()
	h.antomRings = make(map[string]*antom.KeyRing, len(h.Antom))
	for _, client := range h.Antom {
		where := "antom " + client.ClientID
		if client.ClientID == "" {
			return errors.New("antom: a block needs its client ID, e.g. antom SANDBOX_5X00000000000000 { antom_public_key ... }")
		}
		if _, dup := h.antomRings[client.ClientID]; dup {
			return fmt.Errorf("%s: client ID given twice", where)
		}
		if len(client.AntomPublicKeys) == 0 {
			return fmt.Errorf("%s: no key; give antom_public_key in the block", where)
		}
		var keys []*rsa.PublicKey
		for i, value := range client.AntomPublicKeys {
			label := fmt.Sprintf("%s: antom_public_key #%d", where, i+1)
			resolved, err := resolve(repl, value, label)
			if err != nil {
				return err
			}
			key, err := alipay.LoadPublicKey(resolved)
			if err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			rsaKey, ok := key.(*rsa.PublicKey)
			if !ok {
				return fmt.Errorf("%s: Antom signs with RSA keys, this is a %T", label, key)
			}
			keys = append(keys, rsaKey)
		}
		ring, err := antom.NewKeyRing(keys...)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		h.antomRings[client.ClientID] = ring
	}
	return nil
}

// handleAntom answers one Antom notification: POST, bounded body, the
// signature over the original request URI, the headers and the exact body,
// max_age on Request-Time, then the webhook.
func (h *Handler) handleAntom(r *http.Request) result {
	res := h.verifyAntom(r)
	res.antom = true
	return res
}

func (h *Handler) verifyAntom(r *http.Request) result {
	if r.Method != http.MethodPost {
		return refused(subject{}, refuse(http.StatusMethodNotAllowed, outcomeMethodNotAllowed, "method %s, Antom notifications are POSTed", r.Method))
	}
	body, ref := readBody(r, h.maxBody)
	if ref != nil {
		return refused(subject{}, ref)
	}
	clientID := r.Header.Get("Client-Id")
	about := subject{appID: clientID}
	req, err := antom.NewRequest(r.Method, originalURI(r), r.Header, body)
	if err != nil {
		return refused(about, antomRefusal(err))
	}
	verifyStart := time.Now()
	// An unknown client gets a nil ring, whose Verify still makes every
	// structural check first, then answers ErrUnknownClient.
	v, err := h.antomRings[clientID].Verify(req)
	h.metrics.verifyDuration.Observe(time.Since(verifyStart).Seconds())
	if err != nil {
		ref := antomRefusal(err)
		if errors.Is(err, antom.ErrSignatureMismatch) {
			// What was checked is logged at DEBUG, as for a domestic
			// signature failure (DESIGN.md §5; §10: logs work the same).
			ref.signed = (*antomSigned)(req)
		}
		return refused(about, ref)
	}
	about = antomSubject(clientID, v)
	if h.maxAge > 0 {
		if age := h.now().Sub(v.RequestTime); age > h.maxAge {
			return refused(about, refuse(http.StatusForbidden, outcomeStale,
				"notification sent %s ago (Request-Time), more than max_age %s (a replay, or a clock far off)", age.Round(time.Second), h.maxAge))
		}
	}
	wh := antomWebhook(v)
	about.notifyID = wh.id
	fields := []zap.Field{zap.Int("key_version", v.KeyVersion), zap.String("key", "antom_public_key #"+strconv.Itoa(v.Key+1))}
	return h.deliver(r, wh, about, fields)
}

// antomRefusal maps the antom package's errors to the answer: the one
// place where a malformed Antom request becomes a 400, an unknown client
// or a signature that does not verify a 403.
func antomRefusal(err error) *refusal {
	switch {
	case errors.Is(err, antom.ErrUnknownClient):
		return refuse(http.StatusForbidden, outcomeAppRefused, "%v: not one of the configured antom clients", err)
	case errors.Is(err, antom.ErrNotVerified):
		return refuse(http.StatusForbidden, outcomeBadSignature, "%v; check that antom_public_key is Antom's public key for this client ID (Antom Dashboard > Developer > Key configuration), and that the signed URI is the one Antom posted to (a rewrite in front of Caddy changes it)", err)
	default:
		return refuse(http.StatusBadRequest, outcomeBadRequest, "%v", err)
	}
}

// originalURI is the request URI as received, before any rewrite: what
// Antom signed (Caddy's {http.request.orig_uri}).
func originalURI(r *http.Request) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.RequestURI != "" {
		return orig.RequestURI
	}
	return r.RequestURI
}

// antomSubject describes an Antom notification for logs and placeholders:
// the client as app_id, the merchant's request ID as out_trade_no, and the
// notification's type as trade_status.
func antomSubject(clientID string, v *antom.Verified) subject {
	// One JSON object without duplicate keys: Verify checked.
	outTradeNo, refundRequestID := antomRequestIDs(v.Body)
	if outTradeNo == "" {
		outTradeNo = refundRequestID
	}
	return subject{appID: clientID, outTradeNo: outTradeNo, tradeStatus: v.NotifyType}
}

// antomWebhook is the webhook of a verified Antom notification
// (DESIGN.md §10): type antom.<notifyType>, timestamp the Request-Time
// instant, data the posted object (compacted; numbers keep their digits),
// and an id that Antom's retries keep: Antom re-sends the same body, with a
// new Request-Time, so the id is derived from the body.
func antomWebhook(v *antom.Verified) webhook {
	sum := sha256.Sum256(v.Body)
	typ := "antom.notification"
	if v.NotifyType != "" {
		typ = "antom." + v.NotifyType
	}
	b := make([]byte, 0, len(v.Body)+128)
	b = append(b, `{"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"timestamp":"`...)
	b = v.RequestTime.AppendFormat(b, time.RFC3339Nano) // nothing in it to escape
	b = append(b, `","data":`...)
	b = compactJSON(b, v.Body) // one JSON object: Verify checked
	b = append(b, '}')
	return webhook{id: "antom_" + hex.EncodeToString(sum[:16]), typ: typ, body: b}
}

// Antom's answers: exactly SUCCESS when the upstream accepted the
// notification; anything else makes Antom retry.
const (
	antomSuccess = `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}`
	antomFail    = `{"result":{"resultCode":"FAIL","resultStatus":"F","resultMessage":"fail"}}`
)

// answerAntom writes Antom's JSON answer, refusals included.
func answerAntom(w http.ResponseWriter, status int) {
	body := antomFail
	if status == http.StatusOK {
		body = antomSuccess
	}
	setContentHeaders(w.Header(), "application/json", len(body))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
