package alipaynotify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
)

// upstreamBodyLimit bounds how much of the upstream's answer is read (and
// discarded) so that the connection can be reused.
const upstreamBodyLimit = 64 << 10

// eventType is the webhook's type: alipay.<notify_type>, or for an app-gateway
// message without notify_type its msg_method, which already starts with
// "alipay.".
func eventType(n *alipay.Notification) string {
	prefix, name := eventTypeParts(n)
	return prefix + name
}

// eventTypeParts is the rule of eventType, as a prefix and the
// notification's own part, so that appendEventType need not build it.
func eventTypeParts(n *alipay.Notification) (prefix, name string) {
	if t := n.Get("notify_type"); t != "" {
		return "alipay.", t
	}
	if m := n.Get("msg_method"); m != "" {
		if strings.HasPrefix(m, "alipay.") {
			return "", m
		}
		return "alipay.", m
	}
	return "", "alipay.notification"
}

// appendEventType appends eventType(n) as a JSON string, without building
// it.
func appendEventType(b []byte, n *alipay.Notification) []byte {
	prefix, name := eventTypeParts(n)
	return append(appendJSONText(append(append(b, '"'), prefix...), name), '"')
}

// webhookBody is the JSON sent upstream:
// {"type":...,"timestamp":...,"data":{...}}, compact, UTF-8, with every
// signed field plus sign_type as strings, keys in Alipay's order, never sign.
func webhookBody(n *alipay.Notification, at time.Time) []byte {
	size := 64
	for key, value := range n.Params() {
		size += len(key) + len(value) + 6
	}
	b := make([]byte, 0, size+size/8)
	b = append(b, `{"type":`...)
	b = appendEventType(b, n)
	b = append(b, `,"timestamp":"`...)
	b = at.In(alipay.Beijing).AppendFormat(b, time.RFC3339) // nothing in it to escape
	b = append(b, `","data":{`...)
	first := true
	for key, value := range n.Params() {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, key)
		b = append(b, ':')
		b = appendJSONString(b, value)
	}
	return append(b, "}}"...)
}

// appendJSONString appends s as a JSON string. Besides what JSON requires it
// escapes U+2028 and U+2029, which JavaScript source cannot hold raw.
func appendJSONString(b []byte, s string) []byte {
	return append(appendJSONText(append(b, '"'), s), '"')
}

// appendJSONText appends s escaped as the inside of a JSON string. The
// runs of characters that need no escape are copied whole.
func appendJSONText(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	run := 0 // the start of the run not yet copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[run:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			run = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[run:i]...), `\ufffd`...) // unreachable: text was validated
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[run:i]...), `\u202`...)
			b = append(b, hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		run = i
	}
	return append(b, s[run:]...)
}

// webhookSigner signs webhooks the Standard Webhooks way with every
// configured secret, so that a secret can be rotated without downtime.
type webhookSigner struct {
	keys [][]byte   // the HMAC keys, decoded from the whsec_ secrets
	macs []*macPool // one per key
}

// newWebhookSigner returns a signer for the HMAC keys.
func newWebhookSigner(keys ...[]byte) webhookSigner {
	s := webhookSigner{keys: keys}
	for _, key := range keys {
		s.macs = append(s.macs, newMACPool(key))
	}
	return s
}

// macPool keeps HMAC-SHA256 states keyed with one secret for reuse: an
// HMAC built per webhook costs its allocations and the hashing of the two
// padded keys, while a reused one, after Reset, starts from the inner
// state it saved when it was first reset.
type macPool struct {
	pool sync.Pool // of *pooledMAC
}

// pooledMAC is one reusable HMAC with the buffers of one signature.
type pooledMAC struct {
	mac     hash.Hash
	sum     [sha256.Size]byte
	scratch []byte // id.timestamp.
}

func newMACPool(key []byte) *macPool {
	p := new(macPool)
	p.pool.New = func() any { return &pooledMAC{mac: hmac.New(sha256.New, key)} }
	return p
}

// appendSignature appends the base64 HMAC of id.timestamp.body to dst.
func (p *macPool) appendSignature(dst []byte, id string, timestamp []byte, body []byte) []byte {
	m := p.pool.Get().(*pooledMAC)
	m.mac.Reset()
	m.scratch = append(append(append(append(m.scratch[:0], id...), '.'), timestamp...), '.')
	m.mac.Write(m.scratch)
	m.mac.Write(body)
	dst = base64.StdEncoding.AppendEncode(dst, m.mac.Sum(m.sum[:0]))
	if cap(m.scratch) <= 1<<10 { // an outbox entry's id can be long; don't keep a big buffer
		p.pool.Put(m)
	}
	return dst
}

// parseWebhookSecret decodes a whsec_ secret into its HMAC key.
func parseWebhookSecret(secret string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New(`must start with "whsec_" (generate one with: caddy alipay-notify webhook-secret)`)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		if key, err = base64.RawStdEncoding.DecodeString(encoded); err != nil {
			return nil, errors.New("the part after whsec_ is not valid base64")
		}
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("decodes to %d bytes; Standard Webhooks secrets are 24 to 64 bytes", len(key))
	}
	return key, nil
}

// headerValues returns the webhook-timestamp header and the
// webhook-signature header, "v1,<base64 HMAC-SHA256>" per secret,
// space-separated, over id.timestamp.body; the two share one string.
func (s webhookSigner) headerValues(id string, timestamp int64, body []byte) (ts, signature string) {
	var buf [24 + 2*48]byte // the timestamp and two signatures
	b := strconv.AppendInt(buf[:0], timestamp, 10)
	tsLen := len(b)
	for i, mac := range s.macs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, "v1,"...)
		b = mac.appendSignature(b, id, b[:tsLen], body)
	}
	both := string(b)
	return both[:tsLen], both[tsLen:]
}

// forwarder posts verified notifications to the upstream.
type forwarder struct {
	upstream
	client *http.Client
}

// upstream is everything that shapes a webhook delivery.
type upstream struct {
	url     string
	headers http.Header
	timeout time.Duration
	signer  webhookSigner
	// trustedCAs are the PEM certificates of trusted_ca (none: the
	// system's roots only).
	trustedCAs [][]byte
}

func newForwarder(u upstream) *forwarder {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: u.timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64, // Alipay bursts at the top of the retry schedule
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   u.timeout,
		ExpectContinueTimeout: time.Second,
	}
	if len(u.trustedCAs) > 0 {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		for _, pem := range u.trustedCAs {
			roots.AppendCertsFromPEM(pem)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &forwarder{upstream: u, client: newNoRedirectClient(transport)}
}

// forwardResult is what the upstream did with a webhook.
type forwardResult struct {
	status   int // 0 when no answer came
	duration time.Duration
	timedOut bool
	err      error
}

func (r forwardResult) accepted() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

// send posts one webhook, within the forwarder's timeout. The inline path
// passes a context detached from the request (context.WithoutCancel): once
// the upstream starts processing, it finishes even if Alipay hangs up, so
// the merchant's state never depends on a disconnect. The outbox passes its
// own, which its Stop cancels.
func (f *forwarder) send(ctx context.Context, id string, body []byte) forwardResult {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return forwardResult{err: err}
	}
	for name, values := range f.headers {
		req.Header[name] = values
	}
	ts, signature := f.signer.headerValues(id, time.Now().Unix(), body)
	// One array backs the five headers' values; each slice is capped, so
	// that an append by anyone reallocates instead of overwriting the next.
	values := [...]string{"application/json", "caddy-alipay-notify", id, ts, signature}
	req.Header["Content-Type"] = values[0:1:1]
	req.Header["User-Agent"] = values[1:2:2]
	req.Header["webhook-id"] = values[2:3:3]
	req.Header["webhook-timestamp"] = values[3:4:4]
	req.Header["webhook-signature"] = values[4:5:5]

	resp, err := f.client.Do(req)
	if err != nil {
		return forwardResult{duration: time.Since(start), err: err, timedOut: errors.Is(ctx.Err(), context.DeadlineExceeded)}
	}
	// Drain a bounded amount so that the connection can be reused; a larger
	// answer just costs that connection.
	_, err = io.CopyN(io.Discard, resp.Body, upstreamBodyLimit)
	resp.Body.Close()
	result := forwardResult{status: resp.StatusCode, duration: time.Since(start)}
	if err != nil && err != io.EOF && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The status arrived in time but the body did not: the upstream may
		// still be working, so this is not an acceptance.
		result.err, result.timedOut = err, true
	}
	return result
}

// outcome is the result as the outbox counts it.
func (r forwardResult) outcome() outbox.Result {
	switch {
	case r.accepted():
		return outbox.Accepted(r.status)
	case r.timedOut:
		// The same last_error as an inline timeout (describe).
		return outbox.TimedOut(errors.New(r.describe()))
	case r.err != nil:
		return outbox.Failed(r.err)
	default:
		return outbox.Refused(r.status)
	}
}

// describe says why an attempt failed, for the outbox's last_error.
func (r forwardResult) describe() string {
	switch {
	case r.timedOut:
		return "timeout: " + r.errText()
	case r.err != nil:
		return r.errText()
	default:
		return "upstream answered " + strconv.Itoa(r.status)
	}
}

func (r forwardResult) errText() string {
	if r.err == nil {
		return "no answer"
	}
	return r.err.Error()
}

// close releases the idle upstream connections of an unloaded config.
func (f *forwarder) close() { f.client.CloseIdleConnections() }
