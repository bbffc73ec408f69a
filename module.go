// Package alipaynotify is a Caddy HTTP handler, alipay_notify, that verifies
// Alipay's asynchronous payment notifications at the edge, byte for byte like
// Alipay's own SDKs, forwards each verified one to the merchant's upstream as
// a Standard Webhooks signed JSON POST, and answers Alipay "success" only when
// the upstream accepted it.
package alipaynotify

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/antom"
)

func init() {
	caddy.RegisterModule(Handler{})
}

const defaultTimeout = 10 * time.Second

// The only two answers Alipay understands: exactly "success" stops its
// retries, anything else makes it try again (8 times over about 25 hours).
const (
	answerSuccess = "success"
	answerFail    = "fail"
)

// Handler is the alipay_notify handler: it terminates Alipay's notify_url
// POSTs. It verifies each notification's signature and the merchant's
// policy, forwards the verified notification to Forward as a Standard
// Webhooks signed JSON POST, and answers Alipay "success" only when the
// upstream answered 2xx; every other case is answered "fail" (with a 4xx or
// 5xx status) so that Alipay retries and no payment is lost.
type Handler struct {
	Verifier

	// Forward is the upstream URL (http or https) that receives each verified
	// notification as a Standard Webhooks POST. Accepts placeholders such as
	// {env.*}. Required.
	Forward string `json:"forward,omitempty"`

	// WebhookSecrets are the Standard Webhooks secrets ("whsec_" + base64 of
	// 24 to 64 random bytes) that sign the webhook; with two, both sign, so
	// that the upstream can move from one to the other without downtime.
	// Required. Accepts placeholders such as {env.ALIPAY_WEBHOOK_SECRET}.
	WebhookSecrets []string `json:"webhook_secrets,omitempty"`

	// Timeout bounds each upstream request, from connecting to reading its
	// answer. Past it Alipay is answered 504 "fail" and will retry. Default
	// 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// HeaderUp are extra request headers sent to the upstream, e.g. an
	// Authorization. Values accept placeholders such as {env.*}. The
	// Standard Webhooks headers and Content-Type cannot be overridden.
	HeaderUp http.Header `json:"header_up,omitempty"`

	// ForwardStatus, when set, lists the trade_status values that are
	// forwarded (e.g. TRADE_SUCCESS, TRADE_FINISHED). A verified notification
	// with another trade_status is answered "success" without forwarding, so
	// that Alipay stops resending it. Notifications without trade_status are
	// always forwarded.
	ForwardStatus []string `json:"forward_status,omitempty"`

	// TrustedCA are files of PEM CA certificates trusted, besides the
	// system's roots, for an https:// Forward whose certificate a private CA
	// issued. Accepts placeholders.
	TrustedCA []string `json:"trusted_ca,omitempty"`

	// Antom lists the Antom (cross-border) clients whose notifications this
	// endpoint verifies: a request with a Signature header is one
	// (DESIGN.md §10). An endpoint may serve Antom and domestic
	// notifications alike.
	Antom []AntomClient `json:"antom,omitempty"`

	// Outbox, when set, keeps the notifications the upstream did not accept
	// in Caddy's storage and redelivers them (see Outbox). Off by default.
	Outbox *Outbox `json:"outbox,omitempty"`

	antomRings map[string]*antom.KeyRing // by client ID
	forwarder  *forwarder
	outbox     *pooledWorker // nil without an outbox
	outboxKey  string
	metrics    *metrics
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.alipay_notify",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves placeholders, loads keys and secrets, and prepares the
// upstream client.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	timeout := time.Duration(h.Timeout)
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	h.Verifier.gatewayTimeout = timeout
	h.Verifier.notificationsOnly = true
	h.Verifier.otherKeys = len(h.Antom) > 0
	if err := h.Verifier.provision(h.logger); err != nil {
		return err
	}
	if err := h.provisionAntom(); err != nil {
		return err
	}
	if h.Forward == "" {
		return errors.New("forward is required: the URL of the upstream that receives verified notifications")
	}
	forward, err := resolve(caddy.NewReplacer(), h.Forward, "forward")
	if err != nil {
		return err
	}
	if err := checkHTTPURL("forward", forward); err != nil {
		return err
	}
	signer, err := h.provisionSecrets()
	if err != nil {
		return err
	}
	headers, err := provisionHeaders(h.HeaderUp)
	if err != nil {
		return err
	}
	if h.metrics, err = newMetrics(ctx.GetMetricsRegistry(), h.appLabels()); err != nil {
		return err
	}
	trustedCAs, err := h.loadTrustedCAs()
	if err != nil {
		return err
	}
	h.forwarder = newForwarder(upstream{url: forward, headers: headers, timeout: timeout, signer: signer, trustedCAs: trustedCAs})
	if h.Outbox != nil {
		return h.provisionOutbox(ctx, h.forwarder)
	}
	return nil
}

func (h *Handler) provisionSecrets() (webhookSigner, error) {
	if len(h.WebhookSecrets) == 0 {
		return webhookSigner{}, errors.New(`webhook_secret is required: a Standard Webhooks secret "whsec_..." shared with the upstream`)
	}
	if len(h.WebhookSecrets) > 2 {
		return webhookSigner{}, errors.New("webhook_secret: at most two secrets (the current one and the next)")
	}
	repl := caddy.NewReplacer()
	var keys [][]byte
	for i, value := range h.WebhookSecrets {
		secret, err := resolve(repl, value, fmt.Sprintf("webhook_secret #%d", i+1))
		if err != nil {
			return webhookSigner{}, err
		}
		key, err := parseWebhookSecret(strings.TrimSpace(secret))
		if err != nil {
			return webhookSigner{}, fmt.Errorf("webhook_secret #%d: %w", i+1, err)
		}
		keys = append(keys, key)
	}
	return newWebhookSigner(keys...), nil
}

// loadTrustedCAs reads trusted_ca: each file must hold at least one PEM
// certificate.
func (h *Handler) loadTrustedCAs() ([][]byte, error) {
	repl := caddy.NewReplacer()
	var out [][]byte
	for i, value := range h.TrustedCA {
		label := fmt.Sprintf("trusted_ca #%d", i+1)
		path, err := resolve(repl, value, label)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", label, path)
		}
		out = append(out, data)
	}
	return out, nil
}

// reservedHeaders are set by the forwarder itself; header_up cannot change them.
var reservedHeaders = []string{"Content-Type", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}

func provisionHeaders(configured http.Header) (http.Header, error) {
	repl := caddy.NewReplacer()
	headers := make(http.Header, len(configured))
	for name, values := range configured {
		canonical := textproto.CanonicalMIMEHeaderKey(name)
		for _, reserved := range reservedHeaders {
			if canonical == reserved {
				return nil, fmt.Errorf("header_up %s: this header is set by alipay_notify itself", name)
			}
		}
		for _, value := range values {
			resolved, err := repl.ReplaceOrErr(value, false, true)
			if err != nil {
				return nil, fmt.Errorf("header_up %s: %w", name, err)
			}
			headers[canonical] = append(headers[canonical], resolved)
		}
	}
	return headers, nil
}

// Cleanup closes the idle upstream connections when the config is unloaded,
// and leaves the outbox worker, which stops when no loaded config uses it.
func (h *Handler) Cleanup() error {
	if h.forwarder != nil {
		h.forwarder.close()
	}
	if h.outbox != nil {
		return h.cleanupOutbox()
	}
	return nil
}

// ServeHTTP answers one notification. It never calls next: alipay_notify is
// a terminal handler, and it never returns an error, because the answer to
// Alipay must be exactly "success" or "fail" (Antom: its JSON result), not
// an error page. A request with a Signature header is an Antom notification
// (DESIGN.md §10), whatever its method; any other a domestic one.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	start := time.Now()
	var res result
	if isAntom(r) {
		res = h.handleAntom(r)
	} else {
		res = h.handle(r)
	}
	h.finish(w, r, res, time.Since(start))
	return nil
}

// result is how one notification ended: the answer, and what is logged,
// counted and exposed as placeholders.
type result struct {
	status  int
	outcome string
	about   subject // zero when the body was not parsed
	antom   bool    // answered with Antom's JSON
	message string
	level   zapcore.Level
	// reason is why a notification was refused ("" when it was not),
	// logged with the status.
	reason string
	fields []zap.Field
	// signed builds the string a refused signature was checked over, for
	// a DEBUG line; only called when DEBUG is on.
	signed signedContent
}

// subject is what a notification is about, for logs, placeholders and the
// access log: raw values from the request, cut to 128 bytes when shown.
type subject struct {
	notifyID, appID, outTradeNo, tradeStatus string
}

// subjectOf describes a domestic notification (nil: not parsed).
func subjectOf(n *alipay.Notification) subject {
	if n == nil {
		return subject{}
	}
	return subject{notifyID: n.Get("notify_id"), appID: n.Get("app_id"), outTradeNo: n.Get("out_trade_no"), tradeStatus: n.Get("trade_status")}
}

// logFields are the fields that identify a notification in logs, each cut
// to 128 bytes (DESIGN.md §7).
func (s subject) logFields(extra ...zap.Field) []zap.Field {
	if s == (subject{}) {
		return extra
	}
	fields := make([]zap.Field, 0, 4+len(extra))
	return append(s.appendLogFields(fields), extra...)
}

// appendLogFields appends the four fields of logFields.
func (s subject) appendLogFields(fields []zap.Field) []zap.Field {
	return append(fields,
		zap.String("notify_id", alipay.Truncate(s.notifyID)),
		zap.String("app_id", alipay.Truncate(s.appID)),
		zap.String("out_trade_no", alipay.Truncate(s.outTradeNo)),
		zap.String("trade_status", alipay.Truncate(s.tradeStatus)),
	)
}

func (h *Handler) handle(r *http.Request) result {
	if r.Method != http.MethodPost {
		return refused(subject{}, refuse(http.StatusMethodNotAllowed, outcomeMethodNotAllowed, "method %s, notifications are POSTed", r.Method))
	}
	// The body is only read by check: the notification holds a decoded
	// copy of its parameters. So its buffer is reused.
	buf := bodyBuffers.Get().(*[]byte)
	body, ref := readBodyInto(r, h.maxBody, *buf)
	if ref != nil {
		putBodyBuffer(buf, body)
		return refused(subject{}, ref)
	}
	verifyStart := time.Now()
	v, ref := h.check(r.Context(), body)
	h.metrics.verifyDuration.Observe(time.Since(verifyStart).Seconds())
	putBodyBuffer(buf, body)
	about := subjectOf(v.n)
	if ref != nil {
		return refused(about, ref)
	}
	// Room for what deliver adds (the upstream's status and duration, an
	// error, the timeout): one allocation.
	fields := make([]zap.Field, 0, 8)
	fields = append(fields,
		zap.String("trade_no", alipay.Truncate(v.n.Get("trade_no"))),
		zap.String("total_amount", alipay.Truncate(v.n.Get("total_amount"))),
		zap.String("rule", string(v.match.Rule)), zap.String("key", v.match.Key),
	)
	if status := v.n.Get("trade_status"); status != "" && len(h.ForwardStatus) > 0 && !slices.Contains(h.ForwardStatus, status) {
		return result{status: http.StatusOK, outcome: outcomeFiltered, about: about, level: zapcore.InfoLevel,
			message: "notification verified, not forwarded: trade_status not in forward_status", fields: fields}
	}
	// alipay_notify accepts only notifications, which state when they were
	// sent (CheckNotification), so v.sentAt is set.
	wh := webhook{id: v.n.Get("notify_id"), body: webhookBody(v.n, v.sentAt)}
	if h.outbox != nil { // only the outbox keeps the type apart from the body
		wh.typ = eventType(v.n)
	}
	return h.deliver(r, wh, about, fields)
}

// webhook is what is sent upstream: its id, type and exact body.
type webhook struct {
	id, typ string
	body    []byte
}

// deliver sends a verified notification's webhook upstream, through the
// outbox when there is one; the answer is what the upstream did.
func (h *Handler) deliver(r *http.Request, wh webhook, about subject, fields []zap.Field) result {
	// The outbox's storage errors go on this notification's one log line
	// (obx.annotate), not on lines of their own (DESIGN §9).
	var obx outboxNote
	if h.outbox != nil && h.deliveredEarlier(r.Context(), wh.id, &obx) {
		return result{status: http.StatusOK, outcome: outcomeDeliveredEarlier, about: about, level: zapcore.InfoLevel,
			message: "notification verified, not forwarded: the outbox delivered it earlier", fields: fields}
	}
	sent := h.forwarder.send(context.WithoutCancel(r.Context()), wh.id, wh.body)
	h.metrics.upstreamDuration.Observe(sent.duration.Seconds())
	fields = append(fields, zap.Int("upstream_status", sent.status), zap.Duration("upstream_duration", sent.duration))
	if sent.err != nil {
		fields = append(fields, zap.Error(sent.err))
	}
	if h.outbox != nil && h.recordOutcome(context.WithoutCancel(r.Context()), wh.id, wh.typ, wh.body, sent, &obx) {
		return obx.annotate(result{status: http.StatusOK, outcome: outcomeDeliveredEarlier, about: about, level: zapcore.InfoLevel,
			message: "notification verified, not accepted now, but the outbox delivered it meanwhile", fields: fields})
	}
	switch {
	case sent.accepted():
		return obx.annotate(result{status: http.StatusOK, outcome: outcomeForwarded, about: about, level: zapcore.InfoLevel,
			message: "notification forwarded", fields: fields})
	case sent.timedOut:
		return obx.annotate(result{status: http.StatusGatewayTimeout, outcome: outcomeUpstreamTimeout, about: about, level: zapcore.WarnLevel,
			message: "upstream did not answer within timeout; Alipay will retry",
			fields:  append(fields, zap.Duration("timeout", h.forwarder.timeout))})
	case sent.err != nil:
		return obx.annotate(result{status: http.StatusBadGateway, outcome: outcomeUpstreamError, about: about, level: zapcore.WarnLevel,
			message: "upstream unreachable; Alipay will retry", fields: fields})
	default:
		return obx.annotate(result{status: http.StatusBadGateway, outcome: outcomeUpstreamError, about: about, level: zapcore.WarnLevel,
			message: "upstream did not accept the notification; Alipay will retry", fields: fields})
	}
}

func refused(about subject, ref *refusal) result {
	return result{status: ref.status, outcome: ref.outcome, about: about, level: zapcore.WarnLevel,
		message: "notification refused", reason: ref.reason, signed: ref.signed}
}

// finish counts, exposes, logs and answers a result: placeholders are set
// before the answer is written, so that deferred header operations see them.
// duration is the time the handler took.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, res result, duration time.Duration) {
	h.metrics.notifications.count(res.outcome, res.about.appID)
	exposeResult(r, res)
	if ce := h.logger.Check(res.level, res.message); ce != nil {
		fields := logFieldBuffers.Get().(*[]zap.Field)
		*fields = res.appendLogFields((*fields)[:0], clientIP(r), duration)
		ce.Write(*fields...) // the encoders are done with the fields when it returns
		clear(*fields)
		logFieldBuffers.Put(fields)
	}
	if res.signed != nil {
		logSignedString(h.logger, res.about, res.signed)
	}
	if res.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	closeAfterTooLarge(w, r, res.status)
	switch {
	case res.antom:
		answerAntom(w, res.status)
	case res.status == http.StatusOK:
		answer(w, res.status, answerSuccess)
	default:
		answer(w, res.status, answerFail)
	}
}

// logFieldBuffers are reused for the fields of the log lines.
var logFieldBuffers = sync.Pool{New: func() any { f := make([]zap.Field, 0, 24); return &f }}

// appendLogFields appends the fields of a result's log line: the
// notification's, the outcome and the client's address, the reason and
// status of a refusal, the result's own, and the handler's duration.
func (res result) appendLogFields(fields []zap.Field, remoteIP string, duration time.Duration) []zap.Field {
	if res.about != (subject{}) {
		fields = res.about.appendLogFields(fields)
	}
	fields = append(fields, zap.String("outcome", res.outcome), zap.String("remote_ip", remoteIP))
	if res.reason != "" {
		fields = append(fields, zap.String("reason", res.reason), zap.Int("status", res.status))
	}
	fields = append(fields, res.fields...)
	return append(fields, zap.Duration("duration", duration))
}

// appLabels are the app_id label values of the handler's configured apps
// and Antom clients.
func (h *Handler) appLabels() []string {
	apps := h.Verifier.appLabels()
	for _, client := range h.Antom {
		apps = append(apps, client.ClientID)
	}
	return apps
}

// placeholders are the {http.alipay_notify.*} names, built once.
const (
	placeholderOutcome     = "http.alipay_notify.outcome"
	placeholderNotifyID    = "http.alipay_notify.notify_id"
	placeholderOutTradeNo  = "http.alipay_notify.out_trade_no"
	placeholderTradeStatus = "http.alipay_notify.trade_status"
	placeholderAppID       = "http.alipay_notify.app_id"
)

// exposeResult sets the {http.alipay_notify.*} placeholders and adds the
// outcome and notify_id to Caddy's access log entry.
func exposeResult(r *http.Request, res result) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(placeholderOutcome, res.outcome)
		repl.Set(placeholderNotifyID, res.about.notifyID)
		repl.Set(placeholderOutTradeNo, res.about.outTradeNo)
		repl.Set(placeholderTradeStatus, res.about.tradeStatus)
		repl.Set(placeholderAppID, res.about.appID)
	}
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.Object("alipay_notify", accessLogFields{outcome: res.outcome, notifyID: res.about.notifyID}))
	}
}

// accessLogFields is the alipay_notify object of Caddy's access log entry:
// {"outcome": ..., "notify_id": ...}, as zap.Dict would write it, in one
// allocation.
type accessLogFields struct{ outcome, notifyID string }

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (f accessLogFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("outcome", f.outcome)
	enc.AddString("notify_id", alipay.Truncate(f.notifyID))
	return nil
}

// clientIP is the client's address as Caddy resolved it (the trusted
// proxies' client IP header when configured, else the peer): forgery
// investigations start there.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// logSignedString logs, at DEBUG, the string a refused signature was
// checked over: the first thing to compare when every notification fails.
// It is built only when DEBUG is on, and is bounded by max_body.
func logSignedString(logger *zap.Logger, about subject, signed signedContent) {
	if ce := logger.Check(zapcore.DebugLevel, "refused notification details"); ce != nil {
		ce.Write(zap.ByteString("signed_string", signed.signedContent()), zap.String("notify_id", alipay.Truncate(about.notifyID)))
	}
}

// signedContent is what a refused signature was checked over, built on
// demand. The implementations are pointer conversions of what the handler
// already holds, so that a refusal records it without allocating (a
// closure would allocate for every forged notification).
type signedContent interface{ signedContent() []byte }

// alipaySigned is a domestic notification whose signature no key
// verified: its V1 signed string (V2 adds sign_type) is logged.
type alipaySigned alipay.Notification

func (n *alipaySigned) signedContent() []byte {
	return (*alipay.Notification)(n).SignedString(alipay.RuleV1)
}

// antomSigned is an Antom request whose signature no key verified.
type antomSigned antom.Request

func (r *antomSigned) signedContent() []byte {
	return (*antom.Request)(r).AppendSignedContent(nil)
}

// closeAfterTooLarge closes an HTTP/1 connection after a 413, whose body
// was not read whole, so that the connection cannot carry another request.
// "Connection: close" stops Go's server from reading (up to 256 KiB of) the
// announced body before it sends the answer; a read deadline in the past
// stops it from reading the rest after the answer, or waiting for a body
// that a client expecting "100 Continue" will never send. So the answer
// goes out at once, unread, as DESIGN.md §3 requires, and the connection
// closes right after.
func closeAfterTooLarge(w http.ResponseWriter, r *http.Request, status int) {
	if status != http.StatusRequestEntityTooLarge || r.ProtoMajor != 1 {
		return
	}
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// readBody reads at most limit bytes of the body; a longer body is a 413,
// answered without reading anything when Content-Length announces it.
func readBody(r *http.Request, limit int64) ([]byte, *refusal) {
	return readBodyInto(r, limit, nil)
}

// bodyBuffers are the buffers of the domestic notifications' bodies, which
// are dead once verified; buffers over maxPooledBody are not kept.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxPooledBody = 64 << 10

// putBodyBuffer returns body's buffer (grown from *buf, or *buf itself) to
// bodyBuffers.
func putBodyBuffer(buf *[]byte, body []byte) {
	if cap(body) > cap(*buf) {
		*buf = body
	}
	if cap(*buf) <= maxPooledBody {
		*buf = (*buf)[:0]
		bodyBuffers.Put(buf)
	}
}

// readBodyInto is readBody into buf's capacity when it is enough.
func readBodyInto(r *http.Request, limit int64, buf []byte) ([]byte, *refusal) {
	if r.ContentLength > limit {
		return nil, refuse(http.StatusRequestEntityTooLarge, outcomeTooLarge, "body of %d bytes exceeds max_body %d", r.ContentLength, limit)
	}
	size := int64(1024)
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1 // +1 to see EOF without growing
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, 0, size)
	}
	body, err := readAtMost(r.Body, buf[:0], limit+1)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, outcomeBadRequest, "reading body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, refuse(http.StatusRequestEntityTooLarge, outcomeTooLarge, "body exceeds max_body %d", limit)
	}
	return body, nil
}

// readAtMost reads from r into buf until EOF or until it holds max bytes.
func readAtMost(r io.Reader, buf []byte, max int64) ([]byte, error) {
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		end := cap(buf)
		if int64(end) > max {
			end = int(max)
		}
		room := buf[len(buf):end]
		n, err := r.Read(room)
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// answer writes one of Alipay's two answers and nothing else.
func answer(w http.ResponseWriter, status int, body string) {
	setContentHeaders(w.Header(), "text/plain; charset=utf-8", len(body))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// setContentHeaders sets Content-Type and Content-Length, as Header.Set
// would, with one array behind both values (each slice capped, so that an
// append elsewhere reallocates rather than overwrite the other).
func setContentHeaders(h http.Header, contentType string, length int) {
	values := [...]string{contentType, strconv.Itoa(length)}
	h["Content-Type"] = values[0:1:1]
	h["Content-Length"] = values[1:2:2]
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
