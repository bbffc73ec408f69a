package alipaynotify

import (
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("alipay_notify", parseCaddyfile)
	// Before respond, so that users need no order line and a site's catch-all
	// respond does not shadow the notify_url.
	httpcaddyfile.RegisterDirectiveOrder("alipay_notify", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return handler, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	alipay_notify [<matcher>] {
//		app_id            <app_id>...
//		alipay_public_key <base64 | PEM | path>
//		alipay_cert       <path>
//		alipay_root_cert  <path>
//		seller_id         <seller_id>...
//		forward           <url>
//		webhook_secret    <whsec_...> [<whsec_...>]
//		timeout           <duration>
//		header_up         <field> <value>
//		forward_status    <trade_status>...
//		max_age           <duration>|off
//		max_body          <size>
//	}
//
// app_id, seller_id, alipay_public_key, alipay_cert, header_up and
// forward_status may be repeated and accumulate; the others appear at most
// once. forward, webhook_secret, app_id and a key (alipay_public_key or
// alipay_cert) are required.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	directive, file, line := d.Val(), d.File(), d.Line()
	if d.NextArg() {
		return d.Errf("%s takes no arguments besides a matcher; put its settings in a block", directive)
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] && !repeatable[name] {
			return d.Errf("%s: given twice; it may appear only once", name)
		}
		seen[name] = true
		if handled, err := h.Verifier.unmarshalSubdirective(d, name); handled || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if err := h.unmarshalForwarding(d, name); err != nil {
			return err
		}
	}
	missing := func(what string) error {
		return fmt.Errorf("%s: %s, at %s:%d", directive, what, file, line)
	}
	switch {
	case len(h.AppIDs) == 0:
		return missing("app_id is required: the Alipay app ID(s) this endpoint serves")
	case len(h.AlipayPublicKeys) == 0 && len(h.AlipayCerts) == 0:
		return missing("a key is required: alipay_public_key (Alipay's public key, not your app's) or alipay_cert")
	case h.Forward == "":
		return missing("forward is required: the URL of the upstream that receives verified notifications")
	case len(h.WebhookSecrets) == 0:
		return missing(`webhook_secret is required: a Standard Webhooks secret "whsec_..." shared with the upstream`)
	}
	return nil
}

// repeatable subdirectives accumulate; every other one may appear once.
var repeatable = map[string]bool{
	"app_id": true, "seller_id": true, "alipay_public_key": true, "alipay_cert": true,
	"header_up": true, "forward_status": true,
}

// unmarshalSubdirective parses the subdirectives shared with every directive
// that verifies Alipay signatures. handled is false for other names.
func (v *Verifier) unmarshalSubdirective(d *caddyfile.Dispenser, name string) (handled bool, err error) {
	switch name {
	case "app_id":
		v.AppIDs, err = appendArgs(d, v.AppIDs)
	case "seller_id":
		v.SellerIDs, err = appendArgs(d, v.SellerIDs)
	case "alipay_public_key":
		var key string
		if key, err = singleArg(d); err == nil {
			err = checkLiteralKey(d, key)
			v.AlipayPublicKeys = append(v.AlipayPublicKeys, key)
		}
	case "alipay_cert":
		var path string
		path, err = singleArg(d)
		v.AlipayCerts = append(v.AlipayCerts, path)
	case "alipay_root_cert":
		v.AlipayRootCert, err = singleArg(d)
	case "max_age":
		v.MaxAge, err = parseMaxAge(d)
	case "max_body":
		v.MaxBody, err = parseSize(d)
	default:
		return false, nil
	}
	return true, err
}

// unmarshalForwarding parses the subdirectives about the upstream.
func (h *Handler) unmarshalForwarding(d *caddyfile.Dispenser, name string) error {
	var err error
	switch name {
	case "forward":
		if h.Forward, err = singleArg(d); err == nil && !hasPlaceholder(h.Forward) {
			if err = checkForwardURL(h.Forward); err != nil {
				return d.Err(err.Error())
			}
		}
	case "webhook_secret":
		h.WebhookSecrets = d.RemainingArgs()
		if len(h.WebhookSecrets) == 0 || len(h.WebhookSecrets) > 2 {
			return d.Errf("webhook_secret takes one or two secrets (the current one and the next), got %d", len(h.WebhookSecrets))
		}
		for i, secret := range h.WebhookSecrets {
			if hasPlaceholder(secret) {
				continue
			}
			if _, err := parseWebhookSecret(secret); err != nil {
				return d.Errf("webhook_secret #%d: %v", i+1, err)
			}
		}
	case "timeout":
		var dur caddy.Duration
		if dur, err = parseDuration(d); err == nil && dur <= 0 {
			return d.Errf("timeout must be positive, got %s", d.Val())
		}
		h.Timeout = dur
	case "header_up":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("header_up takes a field name and a value, e.g. header_up Authorization \"Bearer {env.TOKEN}\"")
		}
		if h.HeaderUp == nil {
			h.HeaderUp = make(map[string][]string)
		}
		h.HeaderUp.Add(args[0], args[1])
	case "forward_status":
		h.ForwardStatus, err = appendArgs(d, h.ForwardStatus)
	default:
		return d.Errf("unknown subdirective %q (see the README for the list of alipay_notify subdirectives)", name)
	}
	return err
}

func appendArgs(d *caddyfile.Dispenser, list []string) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return list, d.Errf("%s needs at least one value", d.Val())
	}
	return append(list, args...), nil
}

func singleArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		return "", d.Errf("%s takes exactly one value, got %d", name, len(args))
	}
	return args[0], nil
}

func parseDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	arg, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(arg)
	if err != nil {
		return 0, d.Errf("%q is not a duration (e.g. 10s, 72h): %v", arg, err)
	}
	return caddy.Duration(dur), nil
}

func parseMaxAge(d *caddyfile.Dispenser) (caddy.Duration, error) {
	if d.CountRemainingArgs() == 1 {
		d.NextArg()
		if d.Val() == "off" {
			return -1, nil
		}
		d.Prev()
	}
	dur, err := parseDuration(d)
	if err == nil && dur <= 0 {
		return 0, d.Errf("max_age must be positive, or off")
	}
	return dur, err
}

func parseSize(d *caddyfile.Dispenser) (int64, error) {
	arg, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	size, err := humanize.ParseBytes(arg)
	if err != nil || size == 0 || size > 1<<30 {
		return 0, d.Errf("%q is not a size between 1B and 1GiB (e.g. 64KiB)", arg)
	}
	return int64(size), nil
}

// checkLiteralKey reports, with the line, a key written inline in the
// Caddyfile that cannot be parsed. Paths and placeholders are only resolved
// at provisioning, on the server that runs the config.
func checkLiteralKey(d *caddyfile.Dispenser, key string) error {
	if hasPlaceholder(key) {
		return nil
	}
	trimmed := strings.TrimSpace(key)
	_, b64err := decodeBase64Loose(trimmed)
	if !strings.HasPrefix(trimmed, "-----BEGIN") && (b64err != nil || fileExists(trimmed)) {
		return nil // a path
	}
	if _, err := parsePublicKey(key); err != nil {
		return d.Errf("alipay_public_key: %v", err)
	}
	return nil
}

func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
