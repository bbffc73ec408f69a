package diagnose

import (
	"bytes"
	cryptorsa "crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay-notify/antom"
)

// AntomKey is an Antom public key and the label a report gives it.
type AntomKey struct {
	Label string
	Key   *cryptorsa.PublicKey
}

// AntomKeys are keys tried in order, as an antom block's antom_public_key
// lines are.
type AntomKeys struct {
	ring   *antom.KeyRing
	labels []string
	keys   []*cryptorsa.PublicKey
}

// NewAntomKeys makes a ring of keys, in order. It fails as the handler's
// configuration does: no key, or a key shorter than antom.MinKeyBits.
func NewAntomKeys(keys ...AntomKey) (*AntomKeys, error) {
	k := &AntomKeys{}
	for _, key := range keys {
		if _, err := antom.NewKeyRing(key.Key); err != nil {
			return nil, fmt.Errorf("%s: %w", key.Label, err)
		}
		k.labels = append(k.labels, key.Label)
		k.keys = append(k.keys, key.Key)
	}
	ring, err := antom.NewKeyRing(k.keys...)
	if err != nil {
		return nil, err
	}
	k.ring = ring
	return k, nil
}

// Len returns the number of keys (0 for nil).
func (k *AntomKeys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.keys)
}

// verify is antom.KeyRing.Verify, with the label of the key that verified.
// A nil k stands for a client without keys (antom.ErrUnknownClient after
// the structural checks), as in the handler.
func (k *AntomKeys) verify(req antom.Request) (*antom.Verified, string, error) {
	var ring *antom.KeyRing
	if k != nil {
		ring = k.ring
	}
	v, err := ring.Verify(&req)
	if err != nil {
		return nil, "", err
	}
	return v, k.labels[v.Key], nil
}

// contains returns the label of a key equal to key.
func (k *AntomKeys) contains(key *cryptorsa.PublicKey) (string, bool) {
	for i, mine := range k.keys {
		if mine.Equal(key) {
			return k.labels[i], true
		}
	}
	return "", false
}

// AntomVerdict is the verdict on an Antom notification as alipay_notify
// reaches it, before its max_age check.
type AntomVerdict struct {
	// Request is what was checked.
	Request antom.Request
	// Verified is the verified notification; nil when it does not verify.
	Verified *antom.Verified
	// Key is the label of the key that verified.
	Key string
	// Err is the handler's refusal; nil when it verifies.
	Err error
	// Status is the handler's answer to a refusal: 405 (not a POST), 400
	// (antom.ErrMalformed) or 403 (antom.ErrNotVerified); 0 when verified.
	Status int
	// SignedContent is the content the signature was checked over:
	// POST <URI>\n<Client-Id>.<Request-Time>.<body>.
	SignedContent []byte
}

// CheckAntom verifies req exactly as the handler does: a POST, then
// antom.KeyRing.Verify with the client's keys (nil: a client without
// keys).
func CheckAntom(keys *AntomKeys, req antom.Request) *AntomVerdict {
	v := &AntomVerdict{Request: req, SignedContent: req.AppendSignedContent(nil)}
	if req.Method != http.MethodPost {
		v.Err, v.Status = fmt.Errorf("method %s: Antom notifications are POSTed", req.Method), http.StatusMethodNotAllowed
		return v
	}
	v.Verified, v.Key, v.Err = keys.verify(req)
	switch {
	case v.Err == nil:
	case errors.Is(v.Err, antom.ErrMalformed):
		v.Status = http.StatusBadRequest
	default:
		v.Status = http.StatusForbidden
	}
	return v
}

// AntomHints is what the user knows besides the capture.
type AntomHints struct {
	// URIs are other URIs Antom may have signed: each is tried as the
	// whole URI, and as a path prefix added to or removed from the
	// captured one (a proxy that rewrote the path).
	URIs []string
	// ClientIDs are other client IDs Antom may have signed.
	ClientIDs []string
	// AppKeys are the merchant's own public keys, to recognise them.
	AppKeys *AntomKeys
}

// AntomFinding is the likely cause of an Antom notification that does not
// verify.
type AntomFinding struct {
	// Cause is the cause, on one line.
	Cause string
	// Explain says what happened and what to do.
	Explain string
	// Repair is the repaired request that verifies; nil when none does.
	Repair *AntomRepair
}

// AntomRepair is a repaired copy that verifies.
type AntomRepair struct {
	// Changes name what was repaired, one cause each.
	Changes []string
	// Request is the repaired request.
	Request antom.Request
	// Key is the label of the key that verified it.
	Key string
	// SignedContent is the repaired signed content.
	SignedContent []byte
}

// variant is one way to repair one part of a request: the repaired value,
// the cause it shows and its explanation. The first variant of each part
// is the value as captured.
type variant struct {
	value   string
	cause   string
	explain string
}

// DiagnoseAntom looks for the likely cause of req (which CheckAntom
// refused) by verifying repaired copies with keys: another URI, the body
// compacted or its extra escapes undone, a '+' restored in the signature,
// another client ID; it recognises the merchant's own key, and a body that
// was re-serialised beyond repair.
func DiagnoseAntom(keys *AntomKeys, req antom.Request, hints AntomHints) *AntomFinding {
	if req.Method != http.MethodPost {
		return &AntomFinding{
			Cause: fmt.Sprintf("method %s: Antom POSTs its notifications (the plugin answers 405)", req.Method),
			Explain: "A request with a Signature header is an Antom notification whatever its method, and Antom only POSTs. " +
				"This one was sent otherwise (a browser, a probe, a test of your own).",
		}
	}
	_, _, err := keys.verify(req)
	var missing *antom.MissingHeaderError
	if errors.As(err, &missing) {
		return &AntomFinding{
			Cause: "there is no " + missing.Name + " header",
			Explain: "Antom sends Client-Id, Request-Time and Signature with every notification, and the plugin refuses a request " +
				"without one of them (400). The capture lost it (a log that leaves headers out), something in front of the " +
				"capture point removed it, or Antom did not send this request. A value you know can be given with --" +
				strings.ToLower(missing.Name) + ".",
		}
	}
	if r := searchRepairs(keys, req, hints); r != nil {
		explains := make([]string, 0, len(r.explains))
		for _, e := range r.explains {
			if e != "" {
				explains = append(explains, e)
			}
		}
		return &AntomFinding{Cause: strings.Join(r.Changes, "; "), Explain: strings.Join(explains, " "), Repair: &r.AntomRepair}
	}
	if errors.Is(err, antom.ErrMalformed) {
		return malformedFinding(req, err)
	}
	return antomKeyFinding(keys, req, hints)
}

type repaired struct {
	AntomRepair
	explains []string
}

// maxTries bounds the repaired copies DiagnoseAntom verifies.
const maxTries = 4096

// searchRepairs verifies the combinations of part repairs, fewest changes
// first, and returns the first that verifies.
func searchRepairs(keys *AntomKeys, req antom.Request, hints AntomHints) *repaired {
	parts := [4][]variant{
		uriVariants(req.URI, hints.URIs),
		bodyVariants(req.Body),
		signatureVariants(req.Signature),
		clientIDVariants(req.ClientID, hints.ClientIDs),
	}
	tries := 0
	for changes := 1; changes <= len(parts); changes++ {
		var found *repaired
		forEach(parts, func(pick [4]int) bool {
			n := 0
			for _, i := range pick {
				if i > 0 {
					n++
				}
			}
			if n != changes {
				return true
			}
			if tries++; tries > maxTries {
				return false
			}
			fixed := req
			fixed.URI = parts[0][pick[0]].value
			fixed.Body = []byte(parts[1][pick[1]].value)
			fixed.Signature = parts[2][pick[2]].value
			fixed.ClientID = parts[3][pick[3]].value
			_, label, err := keys.verify(fixed)
			if err != nil {
				return true
			}
			found = &repaired{AntomRepair: AntomRepair{Request: fixed, Key: label, SignedContent: fixed.AppendSignedContent(nil)}}
			for p, i := range pick {
				if i > 0 {
					found.Changes = append(found.Changes, parts[p][i].cause)
					found.explains = append(found.explains, parts[p][i].explain)
				}
			}
			return false
		})
		if found != nil {
			return found
		}
	}
	return nil
}

// forEach calls f with every combination of indexes into parts, until f
// returns false.
func forEach(parts [4][]variant, f func([4]int) bool) {
	var pick [4]int
	var walk func(p int) bool
	walk = func(p int) bool {
		if p == len(parts) {
			return f(pick)
		}
		for i := range parts[p] {
			pick[p] = i
			if !walk(p + 1) {
				return false
			}
		}
		return true
	}
	walk(0)
}

// add appends v unless its value is already there.
func add(vs []variant, v variant) []variant {
	for _, have := range vs {
		if have.value == v.value {
			return vs
		}
	}
	return append(vs, v)
}

const uriExplain = "Antom signs the URI it posted to (path and query). The plugin verifies over the URI Caddy receives, before " +
	"any rewrite inside Caddy ({http.request.orig_uri}); a proxy in front of Caddy that changes the path or the query makes " +
	"it refuse the notification (403): let the proxy pass the URI unchanged, or set the notification URL in Antom to the " +
	"URI that reaches Caddy."

func uriVariants(uri string, hints []string) []variant {
	vs := []variant{{value: uri}}
	path, query, hasQuery := strings.Cut(uri, "?")
	if abs, ok := absolutePathAndQuery(uri); ok {
		vs = add(vs, variant{value: abs, cause: "the request line has an absolute URI (" + uri + "): its path and query, " + abs + ", verify",
			explain: "Antom signs the path and query only. A request line in absolute form comes from a forward proxy or a hand-made request; " +
				"the plugin checks the request URI as received, so it refuses this one."})
		path, query, hasQuery = strings.Cut(abs, "?")
	}
	for _, hint := range hints {
		if hint == "" {
			continue
		}
		vs = add(vs, variant{value: hint, cause: fmt.Sprintf("the URI differs: Antom signed %s, the request line has %s", hint, uri), explain: uriExplain})
		prefix := strings.TrimRight(hint, "/")
		if strings.HasPrefix(hint, "/") && !strings.Contains(hint, "?") && prefix != "" {
			added := prefix + path
			vs = add(vs, withQuery(added, query, hasQuery, fmt.Sprintf("the path lost a prefix: Antom signed %s, the request line has %s", joinQuery(added, query, hasQuery), uri)))
			if rest, ok := strings.CutPrefix(path, prefix); ok && strings.HasPrefix(rest, "/") {
				vs = add(vs, withQuery(rest, query, hasQuery, fmt.Sprintf("the path gained a prefix: Antom signed %s, the request line has %s", joinQuery(rest, query, hasQuery), uri)))
			}
		}
	}
	if hasQuery {
		vs = add(vs, variant{value: path, cause: "the URI's query was not signed: without it (" + path + ") it verifies",
			explain: "The query was added after Antom signed the request (a proxy or load balancer that appends parameters, a rewrite), " +
				"or it is in the capture but not in the notification URL Antom knows. " + uriExplain})
	}
	if len(path) > 1 {
		other := path + "/"
		if strings.HasSuffix(path, "/") {
			other = strings.TrimSuffix(path, "/")
		}
		vs = add(vs, withQuery(other, query, hasQuery, "the path differs by a trailing slash: "+joinQuery(other, query, hasQuery)+" verifies"))
	}
	return vs
}

func joinQuery(path, query string, hasQuery bool) string {
	if hasQuery {
		return path + "?" + query
	}
	return path
}

func withQuery(path, query string, hasQuery bool, cause string) variant {
	return variant{value: joinQuery(path, query, hasQuery), cause: cause, explain: uriExplain}
}

// absolutePathAndQuery returns the path and query of a URI in absolute
// form (http://host/path?query).
func absolutePathAndQuery(target string) (string, bool) {
	if strings.HasPrefix(target, "/") {
		return "", false
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return "", false
	}
	uri := u.EscapedPath()
	if uri == "" {
		uri = "/"
	}
	if u.RawQuery != "" {
		uri += "?" + u.RawQuery
	}
	return uri, true
}

const rawBodyExplain = "Antom signs the exact bytes it posts: verify over the raw body (php://input, request.getInputStream(), " +
	"express.raw(), request.get_data(), Rails request.raw_post) before any JSON parsing. The plugin reads the raw body, so " +
	"real notifications are not affected; if this is what reached Caddy, something in front of it rewrites bodies, and the " +
	"plugin refuses them."

func bodyVariants(body []byte) []variant {
	vs := []variant{{value: string(body)}}
	var compact bytes.Buffer
	compacted := json.Compact(&compact, body) == nil && !bytes.Equal(compact.Bytes(), body)
	if compacted {
		vs = add(vs, variant{value: compact.String(), cause: "the body is pretty-printed: compacting it verifies",
			explain: "This copy was re-indented after Antom sent it (a log, a JSON viewer, a documentation page). " + rawBodyExplain})
	}
	if unescaped, ok := undoEscapes(body); ok {
		vs = add(vs, variant{value: string(unescaped), cause: `the body was re-encoded with escapes Antom does not write (\/, \uXXXX): undoing them verifies`,
			explain: `It was parsed and serialised again after it arrived (PHP's json_encode writes \/, Java, Python and Go escape non-ASCII or <, >, & as \uXXXX). ` + rawBodyExplain})
		if compacted {
			if both, ok := undoEscapes(compact.Bytes()); ok {
				vs = add(vs, variant{value: string(both), cause: "the body was re-serialised (pretty-printed, with extra escapes): compacting it and undoing the escapes verifies",
					explain: "It was parsed and serialised again after it arrived. " + rawBodyExplain})
			}
		}
	}
	return vs
}

// undoEscapes rewrites the escapes of the body's JSON strings that a JSON
// writer may add but need not: \/ and \uXXXX of a character other than a
// control character, '"' or '\' become the character itself. It reports
// whether anything changed.
func undoEscapes(body []byte) ([]byte, bool) {
	out := make([]byte, 0, len(body))
	changed, inString := false, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !inString {
			inString = c == '"'
			out = append(out, c)
			continue
		}
		switch {
		case c == '"':
			inString = false
			out = append(out, c)
		case c == '\\' && i+1 < len(body):
			next := body[i+1]
			if next == '/' {
				out, changed = append(out, '/'), true
				i++
				continue
			}
			if next == 'u' {
				if r, n := unicodeEscape(body[i:]); n > 0 {
					out, changed = utf8.AppendRune(out, r), true
					i += n - 1
					continue
				}
			}
			out = append(out, c, next)
			i++
		default:
			out = append(out, c)
		}
	}
	return out, changed
}

// unicodeEscape reads \uXXXX (or a surrogate pair \uXXXX\uXXXX) at the
// start of b and returns the character and the bytes read; n is 0 when the
// escape is needed (a control character, '"', '\', a lone surrogate) or
// malformed.
func unicodeEscape(b []byte) (rune, int) {
	hex4 := func(b []byte) (rune, bool) {
		if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[2:6]), 16, 16)
		return rune(v), err == nil
	}
	r, ok := hex4(b)
	if !ok {
		return 0, 0
	}
	if utf16.IsSurrogate(r) {
		low, ok := hex4(b[6:])
		if !ok {
			return 0, 0
		}
		if pair := utf16.DecodeRune(r, low); pair != utf8.RuneError {
			return pair, 12
		}
		return 0, 0
	}
	if r < 0x20 || r == '"' || r == '\\' {
		return 0, 0
	}
	return r, 6
}

func signatureVariants(value string) []variant {
	vs := []variant{{value: value}}
	h, err := antom.ParseSignatureHeader(value)
	if err != nil {
		return vs
	}
	if strings.Contains(h.Signature, " ") {
		fixed := h
		fixed.Signature = strings.ReplaceAll(h.Signature, " ", "+")
		vs = add(vs, variant{value: fixed.String(), cause: "'+' turned into a space in the Signature: restoring it verifies",
			explain: "Antom percent-encodes the signature's '+' as %2B; here a '+' became a space: the header value was " +
				"form-decoded (which turns '+' into a space, as Antom's own Java, Go and Python SDKs do), or copied through a tool " +
				"that does. Percent-decode it without turning '+' into a space. The plugin does, and refuses a signature with a " +
				"space (400); if this is what reached Caddy, something in front of it decodes headers."})
	}
	if strings.Contains(h.Signature, "%25") {
		if once, err := url.PathUnescape(h.Signature); err == nil {
			fixed := h
			fixed.Signature = once
			vs = add(vs, variant{value: fixed.String(), cause: "the Signature is percent-encoded twice (%25): decoding it once verifies",
				explain: "Antom percent-encodes the base64 signature once. This one was encoded again after (a log, a proxy, " +
					"a copy through a URL); the plugin decodes it once and refuses it."})
		}
	}
	return vs
}

func clientIDVariants(clientID string, hints []string) []variant {
	vs := []variant{{value: clientID}}
	for _, id := range hints {
		if id == "" {
			continue
		}
		vs = add(vs, variant{value: id, cause: fmt.Sprintf("the Client-Id differs: the signature verifies with Client-Id %s, not %s", id, clientID),
			explain: "Antom signs its Client-Id header with the rest. The Client-Id here is not the one signed: it was changed after " +
				"(a proxy, a hand edit), or the capture or the flags give another client's (sandbox and production client IDs differ). " +
				"The plugin picks the antom block by the Client-Id received and verifies over it."})
	}
	return vs
}

// malformedFinding explains a request the handler refuses as malformed
// (400), which no repair made verify.
func malformedFinding(req antom.Request, err error) *AntomFinding {
	const refused = " The plugin refuses it as malformed (400) whatever the signature, and Antom would retry it in vain."
	switch {
	case errors.Is(err, antom.ErrBadClientID):
		return &AntomFinding{Cause: fmt.Sprintf("the Client-Id %q has a '.'", req.ClientID),
			Explain: "Antom's client IDs have none, and a '.' would make the signed content <Client-Id>.<Request-Time>.<body> ambiguous." + refused}
	case errors.Is(err, antom.ErrUnsupportedAlgorithm):
		return &AntomFinding{Cause: "the Signature header names an algorithm other than RSA256",
			Explain: "Antom signs its notifications with RSA256 (SHA256withRSA) only: this request was not signed by Antom." + refused}
	case errors.Is(err, antom.ErrMalformedSignatureHeader):
		return &AntomFinding{Cause: "the Signature header does not parse",
			Explain: "Antom sends Signature: algorithm=RSA256,keyVersion=1,signature=<percent-encoded base64>. The capture " +
				"changed or cut it, or Antom did not send this request." + refused}
	case errors.Is(err, antom.ErrBadSignatureEncoding):
		return &AntomFinding{Cause: "the signature is not percent-encoded base64",
			Explain: "Antom's signature is standard base64, percent-encoded ('+' as %2B, '/' as %2F, '=' as %3D). This one has " +
				"other characters, lost some, or was wrapped over lines: the capture changed it." + refused}
	case errors.Is(err, antom.ErrBadRequestTime):
		return &AntomFinding{Cause: fmt.Sprintf("the Request-Time %q is neither epoch milliseconds nor RFC 3339", req.RequestTime),
			Explain: "Antom sends the time of sending as 1685599933871 or 2019-04-04T12:08:56.253+05:30." + refused}
	case errors.Is(err, antom.ErrDuplicateKey):
		return &AntomFinding{Cause: "the body has a duplicate key",
			Explain: "JSON readers disagree on which of two equal keys counts, so the body could mean two things." + refused}
	case errors.Is(err, antom.ErrMalformedBody):
		return &AntomFinding{Cause: "the body is not one JSON object",
			Explain: "Antom posts one JSON object. The capture cut the body or added to it (a log line's prefix, a second " +
				"object, invalid UTF-8), or Antom did not send it." + refused}
	}
	return &AntomFinding{Cause: "malformed: " + err.Error(), Explain: "The request is not an Antom notification as Antom sends them." + refused}
}

// antomKeyFinding explains a well-formed request that no repair made
// verify: the key, or a body beyond repair.
func antomKeyFinding(keys *AntomKeys, req antom.Request, hints AntomHints) *AntomFinding {
	const ownKey = "Antom signs notifications with its own private key; they verify with Antom's public key for this client " +
		"(Antom Dashboard > Developers > Key configuration: Antom public key), not with the public key of the key pair you " +
		"generated for your own API requests to Antom."
	if hints.AppKeys != nil && keys != nil {
		for _, app := range hints.AppKeys.keys {
			if label, ok := keys.contains(app); ok {
				return &AntomFinding{Cause: label + " is your own public key, not Antom's", Explain: ownKey}
			}
		}
	}
	if hints.AppKeys.Len() > 0 {
		if r := searchRepairs(hints.AppKeys, req, hints); r != nil || verifiesAsIs(hints.AppKeys, req) {
			key := ""
			if r != nil {
				key = r.Key
			} else {
				_, key, _ = hints.AppKeys.verify(req)
			}
			return &AntomFinding{
				Cause: "signed with your own private key (" + key + "), not by Antom",
				Explain: "Antom did not send this request: it was signed with the private key of your own key pair (a test of your own, " +
					"caddy alipay-notify sign --antom with that key?). " + ownKey,
			}
		}
	}
	if signs := reserialised(req.Body); len(signs) > 0 {
		return &AntomFinding{
			Cause: "the body was re-serialised: " + strings.Join(signs, "; ") + " (keys reordered or numbers reformatted: the bytes Antom signed are lost)",
			Explain: "Antom signs the exact bytes it posts. This body was parsed and serialised again after it arrived (a framework " +
				"that hands over a parsed object, a logger, a JSON tool), and no repair recovers the original bytes. " + rawBodyExplain +
				" If the capture is the raw body, the key is wrong: " + ownKey,
		}
	}
	return &AntomFinding{
		Cause: "no repair makes it verify: the key is not Antom's for this client, or the notification was altered",
		Explain: "About the key: " + ownKey + " Sandbox and production have different keys and client IDs. About the request: " +
			"Antom signs POST <URI>\\n<Client-Id>.<Request-Time>.<body> with the URI it posted to and the body's exact bytes; if a " +
			"proxy rewrote the URI before the capture, give the URI Antom posted to with --uri.",
	}
}

func verifiesAsIs(keys *AntomKeys, req antom.Request) bool {
	_, _, err := keys.verify(req)
	return err == nil
}

// reserialised names the signs that a body was written again by a JSON
// library after Antom sent it, when no repair undid it.
func reserialised(body []byte) []string {
	var signs []string
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil && !bytes.Equal(compact.Bytes(), body) {
		signs = append(signs, "it is pretty-printed, and compacting it does not make it verify")
	}
	if _, ok := undoEscapes(body); ok {
		signs = append(signs, `it has escapes Antom does not write (\/, \uXXXX), and undoing them does not make it verify`)
	}
	if floatNumbers(body) {
		signs = append(signs, "its numbers look re-formatted as floating point (1.0E2, 100.0)")
	}
	return signs
}

// floatNumbers reports whether a number of the body has an exponent or a
// fraction ending in 0, as a float formatter writes them.
func floatNumbers(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n, ok := tok.(json.Number); ok {
			s := string(n)
			if strings.ContainsAny(s, "eE") || (strings.Contains(s, ".") && strings.HasSuffix(s, "0")) {
				return true
			}
		}
	}
}
