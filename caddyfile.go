package alipaynotify

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
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
//		app <app_id> {
//			alipay_public_key <base64 | PEM | path>
//			alipay_cert       <path>
//			alipay_root_cert  <path>
//		}
//		partner           <2088...>
//		md5_key           <key>
//		notify_verify     [<gateway url>]
//		seller_id         <seller_id>...
//		forward           <url>
//		webhook_secret    <whsec_...> [<whsec_...>]
//		timeout           <duration>
//		header_up         <field> <value>
//		trusted_ca        <pem file>...
//		forward_status    <trade_status>...
//		max_age           <duration>|off
//		max_body          <size>
//		default_charset   utf-8|gbk
//		antom <client_id> {
//			antom_public_key <base64 | PEM | path>
//		}
//		outbox {
//			retry   <duration>...
//			give_up <duration>
//			keep    <duration>
//		}
//	}
//
// app_id, seller_id, alipay_public_key, alipay_cert, app, header_up and
// forward_status may be repeated and accumulate; the others appear at most
// once. forward and webhook_secret are required, and keys: app_id with
// alipay_public_key or alipay_cert, app blocks, or partner with md5_key.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	missing, err := parseBlock(d, notifySubdirectives, func(name string) (bool, error) {
		if handled, err := h.Verifier.unmarshalSubdirective(d, name); handled || err != nil {
			return true, err
		}
		return h.unmarshalForwarding(d, name)
	})
	if err != nil {
		return err
	}
	if err := h.Verifier.checkConfig(); err != nil {
		return missing(err.Error())
	}
	switch {
	case h.Forward == "":
		return missing("forward is required: the URL of the upstream that receives verified notifications")
	case len(h.WebhookSecrets) == 0:
		return missing(`webhook_secret is required: a Standard Webhooks secret "whsec_..." shared with the upstream`)
	}
	return nil
}

// parseBlock reads a directive and its block: no arguments besides a
// matcher, each subdirective once unless repeatable, an unknown one an
// error. It returns a function that makes an error pointing at the
// directive's line, for what the block as a whole lacks.
func parseBlock(d *caddyfile.Dispenser, known []string, subdirective func(name string) (handled bool, err error)) (func(string) error, error) {
	d.Next() // the directive's name
	directive, file, line := d.Val(), d.File(), d.Line()
	if d.NextArg() {
		return nil, d.Errf("%s takes no arguments besides a matcher; put its settings in a block", directive)
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] && !repeatable[name] {
			return nil, d.Errf("%s: given twice; it may appear only once", name)
		}
		seen[name] = true
		handled, err := subdirective(name)
		if err != nil {
			return nil, err
		}
		if !handled {
			if guess := closest(name, known); guess != "" {
				return nil, d.Errf("unknown subdirective %q; did you mean %q?", name, guess)
			}
			return nil, d.Errf("unknown subdirective %q (%s takes: %s)", name, directive, strings.Join(known, ", "))
		}
	}
	return func(what string) error {
		return fmt.Errorf("%s: %s, at %s:%d", directive, what, file, line)
	}, nil
}

// The subdirectives of each directive, for "did you mean".
var (
	verifierSubdirectives = []string{"app_id", "alipay_public_key", "alipay_cert", "alipay_root_cert", "app",
		"partner", "md5_key", "notify_verify", "seller_id", "max_age", "max_body", "default_charset"}
	notifySubdirectives = append(slices.Clone(verifierSubdirectives),
		"forward", "webhook_secret", "timeout", "header_up", "forward_status", "trusted_ca", "antom", "outbox")
)

// closest returns the known name within two edits of name (a typo), or "".
func closest(name string, known []string) string {
	best, bestDistance := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestDistance {
			best, bestDistance = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// repeatable subdirectives accumulate; every other one may appear once.
var repeatable = map[string]bool{
	"app_id": true, "seller_id": true, "alipay_public_key": true, "alipay_cert": true,
	"app": true, "header_up": true, "forward_status": true, "antom": true, "trusted_ca": true,
}

// unmarshalSubdirective parses the subdirectives shared with every directive
// that verifies Alipay signatures. handled is false for other names.
func (v *Verifier) unmarshalSubdirective(d *caddyfile.Dispenser, name string) (handled bool, err error) {
	if handled, err := v.KeySource.unmarshalSubdirective(d, name); handled {
		return true, err
	}
	switch name {
	case "app_id":
		v.AppIDs, err = appendIDs(d, v.AppIDs)
	case "app":
		var app App
		if app, err = unmarshalApp(d); err == nil {
			v.Apps = append(v.Apps, app)
		}
	case "partner":
		if v.Partner, err = singleArg(d); err == nil && !hasPlaceholder(v.Partner) {
			if bad := checkID("partner", v.Partner); bad != nil {
				err = d.Err(bad.Error())
			}
		}
	case "md5_key":
		v.MD5Key, err = singleArg(d)
	case "notify_verify":
		switch args := d.RemainingArgs(); len(args) {
		case 0:
			v.NotifyVerify = defaultNotifyGateway
		case 1:
			v.NotifyVerify = args[0]
			if err := checkHTTPURL("notify_verify", args[0]); err != nil {
				return true, d.Err(err.Error())
			}
		default:
			return true, d.Errf("notify_verify takes at most one gateway URL, got %d", len(args))
		}
	case "seller_id":
		v.SellerIDs, err = appendIDs(d, v.SellerIDs)
	case "max_age":
		v.MaxAge, err = parseMaxAge(d)
	case "max_body":
		v.MaxBody, err = parseSize(d)
	case "default_charset":
		if v.DefaultCharset, err = singleArg(d); err == nil && !alipay.ValidCharset(v.DefaultCharset) {
			err = d.Errf("default_charset: %q is not a charset Alipay sends: give utf-8 or gbk", v.DefaultCharset)
		}
	default:
		return false, nil
	}
	return true, err
}

// unmarshalSubdirective parses the key subdirectives, at the top level or
// in an app block.
func (k *KeySource) unmarshalSubdirective(d *caddyfile.Dispenser, name string) (handled bool, err error) {
	switch name {
	case "alipay_public_key":
		var key string
		if key, err = singleArg(d); err == nil {
			err = checkLiteralKey(d, "alipay_public_key", key)
			k.AlipayPublicKeys = append(k.AlipayPublicKeys, key)
		}
	case "alipay_cert":
		var path string
		path, err = singleArg(d)
		k.AlipayCerts = append(k.AlipayCerts, path)
	case "alipay_root_cert":
		if k.AlipayRootCert != "" {
			return true, d.Errf("alipay_root_cert: given twice; it may appear only once")
		}
		k.AlipayRootCert, err = singleArg(d)
	default:
		return false, nil
	}
	return true, err
}

// unmarshalApp parses "app <app_id> { keys }".
func unmarshalApp(d *caddyfile.Dispenser) (App, error) {
	var app App
	if !d.NextArg() {
		return app, d.Errf("app needs the app_id, e.g. app 2021000000000000 { alipay_public_key ... }")
	}
	app.AppID = d.Val()
	if d.NextArg() {
		return app, d.Errf("app takes one app_id and a block of keys")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		handled, err := app.KeySource.unmarshalSubdirective(d, name)
		if err != nil {
			return app, err
		}
		if !handled {
			return app, d.Errf("%q in app %s: an app block holds only alipay_public_key, alipay_cert and alipay_root_cert; policy goes at the top level", name, app.AppID)
		}
	}
	if app.KeySource.empty() {
		return app, d.Errf("app %s: no key; give alipay_public_key or alipay_cert in its block", app.AppID)
	}
	return app, nil
}

// unmarshalForwarding parses the subdirectives about the upstream.
func (h *Handler) unmarshalForwarding(d *caddyfile.Dispenser, name string) (handled bool, err error) {
	switch name {
	case "forward":
		if h.Forward, err = singleArg(d); err == nil && !hasPlaceholder(h.Forward) {
			if err = checkHTTPURL("forward", h.Forward); err != nil {
				return true, d.Err(err.Error())
			}
		}
	case "webhook_secret":
		h.WebhookSecrets = d.RemainingArgs()
		if len(h.WebhookSecrets) == 0 || len(h.WebhookSecrets) > 2 {
			return true, d.Errf("webhook_secret takes one or two secrets (the current one and the next), got %d", len(h.WebhookSecrets))
		}
		for i, secret := range h.WebhookSecrets {
			if hasPlaceholder(secret) {
				continue
			}
			if _, err := parseWebhookSecret(secret); err != nil {
				return true, d.Errf("webhook_secret #%d: %v", i+1, err)
			}
		}
	case "timeout":
		var dur caddy.Duration
		if dur, err = parseDuration(d); err == nil && dur <= 0 {
			return true, d.Errf("timeout must be positive, got %s", d.Val())
		}
		h.Timeout = dur
	case "header_up":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return true, d.Errf("header_up takes a field name and a value, e.g. header_up Authorization \"Bearer {env.TOKEN}\"")
		}
		if h.HeaderUp == nil {
			h.HeaderUp = make(map[string][]string)
		}
		h.HeaderUp.Add(args[0], args[1])
	case "forward_status":
		h.ForwardStatus, err = appendArgs(d, h.ForwardStatus)
	case "trusted_ca":
		h.TrustedCA, err = appendArgs(d, h.TrustedCA)
	case "outbox":
		h.Outbox, err = unmarshalOutbox(d)
	case "antom":
		var client AntomClient
		if client, err = unmarshalAntom(d, h.Antom); err == nil {
			h.Antom = append(h.Antom, client)
			h.Verifier.otherKeys = true
		}
	default:
		return false, nil
	}
	return true, err
}

// unmarshalAntom parses "antom <client_id> { antom_public_key ... }";
// earlier are the blocks already parsed.
func unmarshalAntom(d *caddyfile.Dispenser, earlier []AntomClient) (AntomClient, error) {
	var client AntomClient
	if !d.NextArg() {
		return client, d.Errf("antom needs the client ID, e.g. antom SANDBOX_5X00000000000000 { antom_public_key ... }")
	}
	client.ClientID = d.Val()
	// Refused here, with its line (DESIGN.md §2), not only when provisioned.
	for _, e := range earlier {
		if e.ClientID == client.ClientID {
			return client, d.Errf("antom %s: given twice; give one block per client ID, with all its keys (rotation) in it", client.ClientID)
		}
	}
	if d.NextArg() {
		return client, d.Errf("antom takes one client ID and a block of keys")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "antom_public_key" {
			return client, d.Errf("%q in antom %s: an antom block holds only antom_public_key; policy goes at the top level", d.Val(), client.ClientID)
		}
		key, err := singleArg(d)
		if err != nil {
			return client, err
		}
		if err := checkLiteralKey(d, "antom_public_key", key); err != nil {
			return client, err
		}
		client.AntomPublicKeys = append(client.AntomPublicKeys, key)
	}
	if len(client.AntomPublicKeys) == 0 {
		return client, d.Errf("antom %s: no key; give antom_public_key in its block", client.ClientID)
	}
	return client, nil
}

// unmarshalOutbox parses "outbox [{ retry ...; give_up ...; keep ... }]";
// without a block, the defaults.
func unmarshalOutbox(d *caddyfile.Dispenser) (*Outbox, error) {
	o := new(Outbox)
	if d.NextArg() {
		return nil, d.Errf("outbox takes a block, not arguments: outbox { retry 5s 30s 2m; give_up 7d; keep 30d }")
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("outbox: %s given twice; it may appear only once", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "retry":
			o.Retry, err = parseDurations(d)
		case "give_up":
			o.GiveUp, err = parsePositiveDuration(d)
		case "keep":
			o.Keep, err = parsePositiveDuration(d)
		default:
			return nil, d.Errf("unknown outbox setting %q (retry, give_up, keep)", name)
		}
		if err != nil {
			return nil, err
		}
	}
	if _, err := o.schedule(); err != nil {
		return nil, d.Err(err.Error())
	}
	return o, nil
}

// parsePositiveDuration reads one duration above zero (zero would read as
// "the default" in JSON, so it is refused here, at its line).
func parsePositiveDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	dur, err := parseDuration(d)
	if err == nil && dur <= 0 {
		return 0, d.Errf("%s must be positive, got %s", name, d.Val())
	}
	return dur, err
}

// parseDurations reads one or more positive durations.
func parseDurations(d *caddyfile.Dispenser) ([]caddy.Duration, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("%s needs at least one duration, e.g. retry 5s 30s 2m 10m", d.Val())
	}
	out := make([]caddy.Duration, len(args))
	for i, arg := range args {
		dur, err := caddy.ParseDuration(arg)
		if err != nil || dur <= 0 {
			return nil, d.Errf("%q is not a positive duration (e.g. 5s, 10m, 7d)", arg)
		}
		out[i] = caddy.Duration(dur)
	}
	return out, nil
}

func appendArgs(d *caddyfile.Dispenser, list []string) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return list, d.Errf("%s needs at least one value", d.Val())
	}
	return append(list, args...), nil
}

// appendIDs is appendArgs for app_id and seller_id, whose values must be
// all digits: reported here, with the line.
func appendIDs(d *caddyfile.Dispenser, list []string) ([]string, error) {
	name, from := d.Val(), len(list)
	list, err := appendArgs(d, list)
	if err != nil {
		return list, err
	}
	for _, id := range list[from:] {
		if err := checkID(name, id); err != nil && !hasPlaceholder(id) {
			return list, d.Err(err.Error())
		}
	}
	return list, nil
}

func singleArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) > 1 && strings.HasPrefix(args[0], "-----BEGIN") {
		return "", d.Errf("%s: a PEM block spans several lines; give the path of a file that holds it, or wrap it in backticks: %s `-----BEGIN ...`", name, name)
	}
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
// at provisioning, on the server that runs the config; but a value that
// looks like an inline key rather than a path (see looksLikeInlineKey) is
// checked here, so that a damaged paste is reported as a malformed key at
// its line, not as a missing file.
func checkLiteralKey(d *caddyfile.Dispenser, subdirective, key string) error {
	if hasPlaceholder(key) {
		return nil
	}
	trimmed := strings.TrimSpace(key)
	if !strings.HasPrefix(trimmed, "-----BEGIN") && !alipay.LooksLikeInlineKey(trimmed) {
		return nil // a path
	}
	if _, err := alipay.LoadPublicKey(key); err != nil {
		return d.Errf("%s: malformed inline key: %v", subdirective, err)
	}
	return nil
}

func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
