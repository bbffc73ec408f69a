package alipaynotify

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
)

func init() {
	caddy.RegisterModule(Gate{})
	httpcaddyfile.RegisterHandlerDirective("alipay_verify", parseGateCaddyfile)
	// Before basic_auth, so that it gates whatever follows it in a site
	// block (reverse_proxy, php_fastcgi, file_server...) without a route.
	httpcaddyfile.RegisterDirectiveOrder("alipay_verify", httpcaddyfile.Before, "basic_auth")
}

// Gate is the alipay_verify middleware: it verifies the Alipay signature of
// a request (the query of a GET, such as the buyer's return_url redirect, or
// the form body of a POST, such as a notification to an existing notify
// handler) with the same keys and policy as alipay_notify, and either
// refuses it (400, 403, 405 or 413 with the body "fail"; nothing reaches the
// next handler) or passes it on untouched, the body still readable, with
// Alipay-* request headers and {http.alipay.*} placeholders describing it.
// Client-sent request headers starting with "Alipay-" are removed first, so
// that a client cannot forge them.
type Gate struct {
	Verifier

	logger   *zap.Logger
	requests outcomeCounters // caddy_alipay_verify_requests_total
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.alipay_verify",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision loads the keys and registers the metrics.
func (g *Gate) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	if err := g.Verifier.provision(g.logger); err != nil {
		return err
	}
	var err error
	g.requests, err = newGateMetrics(ctx.GetMetricsRegistry(), g.appLabels())
	return err
}

// gateHeaders are the request headers set for the next handler, from the
// verified fields; each only when the field is present.
var gateHeaders = []struct{ header, field string }{
	{"Alipay-App-Id", "app_id"},
	{"Alipay-Out-Trade-No", "out_trade_no"},
	{"Alipay-Trade-No", "trade_no"},
	{"Alipay-Total-Amount", "total_amount"},
	{"Alipay-Trade-Status", "trade_status"},
}

// ServeHTTP verifies the request and calls next only when it is genuine.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	signed, ref := g.signedForm(r)
	var v verified
	if ref == nil {
		v, ref = g.check(r.Context(), signed)
	}
	about := subjectOf(v.n)
	if ref != nil {
		g.requests.count(ref.outcome, about.appID)
		g.logger.Warn("request refused", about.logFields(
			zap.String("outcome", ref.outcome), zap.String("reason", ref.reason), zap.Int("status", ref.status),
			zap.String("method", r.Method), zap.String("uri", alipay.Truncate(r.RequestURI)), zap.String("remote_ip", clientIP(r)))...)
		if ref.signed != nil {
			logSignedString(g.logger, about, ref.signed)
		}
		if ref.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, HEAD, POST")
		}
		closeAfterTooLarge(w, r, ref.status)
		answer(w, ref.status, answerFail)
		return nil
	}
	passOn(r, v.n)
	g.requests.count(outcomeVerified, about.appID)
	if ce := g.logger.Check(zapcore.InfoLevel, "request verified"); ce != nil {
		ce.Write(about.logFields(zap.String("outcome", outcomeVerified), zap.String("rule", string(v.match.Rule)),
			zap.String("key", v.match.Key), zap.String("method", r.Method), zap.String("remote_ip", clientIP(r)), zap.Duration("duration", time.Since(start)))...)
	}
	return next.ServeHTTP(w, r)
}

// signedForm returns what Alipay signed: the query of a GET or HEAD, the
// body of a POST. A POST body is read (bounded) and put back for next. The
// other half of the request must be empty, since nothing verifies it and
// the next handler would read it: a GET with a body, or a POST with a query
// (Alipay's notify_url carries no parameters), is a 400.
func (g *Gate) signedForm(r *http.Request) ([]byte, *refusal) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if r.ContentLength != 0 {
			return nil, refuse(http.StatusBadRequest, outcomeBadRequest, "a %s with a body: only its query is signed, and the body would reach the next handler unverified", r.Method)
		}
		return []byte(r.URL.RawQuery), nil
	case http.MethodPost:
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			return nil, refuse(http.StatusBadRequest, outcomeBadRequest, "a POST with a query string: only its body is signed, and the query would reach the next handler unverified")
		}
		body, ref := readBody(r, g.maxBody)
		if ref != nil {
			return nil, ref
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		return body, nil
	default:
		return nil, refuse(http.StatusMethodNotAllowed, outcomeMethodNotAllowed, "method %s: Alipay sends GET (return_url) or POST (notify_url)", r.Method)
	}
}

// passOn describes the verified request to the next handler: headers (after
// removing any the client sent) and placeholders. Trailers are removed:
// they arrive after the body, unsigned, and a backend may read them as
// headers (Alipay-Verified: spoof).
func passOn(r *http.Request, n *alipay.Notification) {
	r.Trailer = nil
	r.Header.Del("Trailer")
	for name := range r.Header {
		if strings.HasPrefix(name, "Alipay-") {
			delete(r.Header, name)
		}
	}
	r.Header.Set("Alipay-Verified", "true")
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.alipay.verified", "true")
	}
	for _, h := range gateHeaders {
		value := n.Get(h.field)
		if value != "" {
			r.Header.Set(h.header, value)
		}
		if repl != nil {
			repl.Set("http.alipay."+h.field, value)
		}
	}
}

func parseGateCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	gate := new(Gate)
	if err := gate.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return gate, nil
}

// UnmarshalCaddyfile sets up the gate from Caddyfile tokens. Syntax:
//
//	alipay_verify [<matcher>] {
//		app_id            <app_id>...
//		alipay_public_key <base64 | PEM | path>
//		alipay_cert       <path>
//		alipay_root_cert  <path>
//		app <app_id> {
//			alipay_public_key <base64 | PEM | path>
//			alipay_cert       <path>
//			alipay_root_cert  <path>
//		}
//		partner           <2088...>
//		md5_key           <key>
//		notify_verify     [<gateway url>]
//		seller_id         <seller_id>...
//		max_age           <duration>|off
//		max_body          <size>
//	}
func (g *Gate) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	missing, err := parseBlock(d, verifierSubdirectives, func(name string) (bool, error) {
		return g.Verifier.unmarshalSubdirective(d, name)
	})
	if err != nil {
		return err
	}
	if err := g.Verifier.checkConfig(); err != nil {
		return missing(err.Error())
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
	_ caddyfile.Unmarshaler       = (*Gate)(nil)
)
