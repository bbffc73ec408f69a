package cli

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/antom"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/capture"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/diagnose"
	"github.com/spf13/cobra"
)

// defaultAntomMaxAge is alipay_notify's default max_age, which applies to
// Request-Time.
const defaultAntomMaxAge = 72 * time.Hour

// verifyAntomOptions are verify's flags for Antom captures.
type verifyAntomOptions struct {
	enabled     bool
	uris        []string
	clientIDs   []string
	requestTime string
	signature   string
}

func (o *verifyAntomOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.enabled, "antom", false, "the capture is an Antom notification: a whole HTTP request, or its body with the flags below")
	f.StringArrayVar(&o.uris, "uri", nil, "Antom: the request URI (with a body capture); otherwise another URI or path prefix Antom may have signed; repeatable")
	f.StringArrayVar(&o.clientIDs, "client-id", nil, "Antom: the Client-Id (with a body capture, or a request without one); otherwise another to try; repeatable")
	f.StringVar(&o.requestTime, "request-time", "", "Antom: the Request-Time, with a body capture (or a request without one)")
	f.StringVar(&o.signature, "signature", "", "Antom: the Signature header value, or only its signature, with a body capture (or a request without one)")
}

func (o *verifyAntomOptions) changed(cmd *cobra.Command) string {
	for _, flag := range []string{"uri", "client-id", "request-time", "signature"} {
		if cmd.Flags().Changed(flag) {
			return flag
		}
	}
	return ""
}

// antomCapture reads an Antom capture: a whole HTTP request with a
// Signature header (or any request, or a body, with --antom). It returns
// nil when the capture is not Antom's.
func (o *verifyAntomOptions) antomCapture(data []byte, format string) (*capture.HTTPRequest, bool, error) {
	switch format {
	case capture.Auto, capture.Request:
	case capture.Body:
		if o.enabled {
			return nil, true, nil
		}
		return nil, false, nil
	default:
		if o.enabled {
			return nil, false, fmt.Errorf("--antom reads a whole HTTP request or a body, not --format %s", format)
		}
		return nil, false, nil
	}
	if !capture.LooksLikeHTTPRequest(data) {
		if format == capture.Request && o.enabled {
			_, err := capture.ParseHTTPRequest(data)
			return nil, false, err
		}
		return nil, o.enabled, nil
	}
	r, err := capture.ParseHTTPRequest(data)
	if err != nil {
		if o.enabled {
			return nil, false, err
		}
		return nil, false, nil // the domestic reader says what is wrong
	}
	if r.IsAntom() || o.enabled {
		return r, true, nil
	}
	return nil, false, nil
}

// looksLikeAntomBody reports whether a capture is the JSON body of an Antom
// notification.
func looksLikeAntomBody(data []byte) bool {
	text := bytes.TrimSpace(data)
	return bytes.HasPrefix(text, []byte("{")) && bytes.Contains(text, []byte(`"notifyType"`))
}

// request builds the request to check from the capture (r; nil for a body
// capture) and the flags. Values the capture lacks come from the flags;
// the other flag values are hints for the diagnosis.
func (o *verifyAntomOptions) request(r *capture.HTTPRequest, data []byte) (antom.Request, diagnose.AntomHints, []string, error) {
	var hints diagnose.AntomHints
	var notes []string
	if r == nil {
		var missing []string
		for _, m := range []struct {
			flag  string
			given bool
		}{{"--uri", len(o.uris) > 0}, {"--client-id", len(o.clientIDs) > 0}, {"--request-time", o.requestTime != ""}, {"--signature", o.signature != ""}} {
			if !m.given {
				missing = append(missing, m.flag)
			}
		}
		if len(missing) > 0 {
			return antom.Request{}, hints, nil, fmt.Errorf("an Antom body alone needs what its request line and headers carried: give %s (or capture the whole HTTP request)", strings.Join(missing, ", "))
		}
		body := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		// A body saved to a file usually gains a final newline that Antom
		// never sent.
		body = bytes.TrimRight(body, "\r\n")
		req := antom.Request{Method: http.MethodPost, URI: o.uris[0], ClientID: o.clientIDs[0], RequestTime: o.requestTime, Signature: signatureHeader(o.signature), Body: body}
		hints.URIs, hints.ClientIDs = o.uris[1:], o.clientIDs[1:]
		return req, hints, notes, nil
	}
	built, err := antom.NewRequest(r.Method, r.Target, r.Header, r.Body)
	if err != nil {
		return antom.Request{}, hints, nil, fmt.Errorf("alipay_notify answers this capture 400 FAIL: %w", err)
	}
	req := *built
	hints.URIs = o.uris
	hints.ClientIDs = o.clientIDs
	if req.ClientID == "" && len(o.clientIDs) > 0 {
		req.ClientID, hints.ClientIDs = o.clientIDs[0], o.clientIDs[1:]
		notes = append(notes, "Client-Id from --client-id: the capture has none")
	}
	if req.RequestTime == "" && o.requestTime != "" {
		req.RequestTime = o.requestTime
		notes = append(notes, "Request-Time from --request-time: the capture has none")
	} else if o.requestTime != "" && o.requestTime != req.RequestTime {
		return req, hints, nil, errors.New("--request-time applies to a capture without a Request-Time header: this one has " + req.RequestTime)
	}
	if req.Signature == "" && o.signature != "" {
		req.Signature = signatureHeader(o.signature)
		notes = append(notes, "Signature from --signature: the capture has none")
	} else if o.signature != "" && signatureHeader(o.signature) != req.Signature {
		return req, hints, nil, errors.New("--signature applies to a capture without a Signature header: this one has one")
	}
	return req, hints, notes, nil
}

// signatureHeader takes a Signature header value, or only its signature.
func signatureHeader(value string) string {
	value = strings.TrimSpace(value)
	if _, err := antom.ParseSignatureHeader(value); err == nil || strings.Contains(strings.ToLower(value), "signature=") {
		return value
	}
	return "algorithm=" + antom.AlgorithmRSA256 + ",keyVersion=1,signature=" + value
}

// loadAntomKeys parses --key (or --app-key) values as Antom's RSA keys;
// private key files are taken for their public half when private is true.
func loadAntomKeys(flag string, values []string, private bool) (*diagnose.AntomKeys, error) {
	if len(values) == 0 {
		if flag == "--key" {
			return nil, errors.New("--key is required: Antom's public key for the client (Antom Dashboard > Developers > Key configuration), as for antom_public_key")
		}
		return nil, nil
	}
	var keys []diagnose.AntomKey
	for i, value := range values {
		label := keyLabel(flag, i, value)
		key, err := alipay.LoadPublicKey(value)
		if err != nil && private && fileExists(value) {
			if priv, perr := alipay.LoadPrivateKey(value); perr == nil {
				key, err = &priv.PublicKey, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		rsaKey, ok := key.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: Antom signs with RSA keys, this is a %T", label, key)
		}
		keys = append(keys, diagnose.AntomKey{Label: label, Key: rsaKey})
	}
	return diagnose.NewAntomKeys(keys...)
}

// verifyAntom checks an Antom capture and prints the report; it reports
// whether the capture verifies as it is.
func verifyAntom(cmd *cobra.Command, o *verifyAntomOptions, r *capture.HTTPRequest, data []byte, source string, keyValues, appKeyValues []string) error {
	keys, err := loadAntomKeys("--key", keyValues, false)
	if err != nil {
		return err
	}
	appKeys, err := loadAntomKeys("--app-key", appKeyValues, true)
	if err != nil {
		return err
	}
	req, hints, notes, err := o.request(r, data)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	hints.AppKeys = appKeys
	what := "Antom notification body (--antom)"
	if r != nil {
		what = fmt.Sprintf("HTTP request (%s %s), an Antom notification", r.Method, alipay.Truncate(r.Target))
		if !r.IsAntom() {
			what += " (--antom: no Signature header)"
		} else {
			what += " (Signature header)"
		}
		notes = append(r.Notes, notes...)
	}
	if ok := reportAntom(cmd.OutOrStdout(), what, notes, keys, req, hints, time.Now()); !ok {
		return errors.New("the notification does not verify as it is")
	}
	return nil
}

// reportAntom prints the verdict on req and, when it does not verify, the
// likely cause. It reports whether req verifies as it is.
func reportAntom(out io.Writer, what string, notes []string, keys *diagnose.AntomKeys, req antom.Request, hints diagnose.AntomHints, now time.Time) bool {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(out, "%-14s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	pw := func(label, format string, args ...any) {
		fmt.Fprintf(out, "%-14s %s\n", label+":", wrap(fmt.Sprintf(format, args...), 15))
	}
	p("capture", "%s, %d-byte body", what, len(req.Body))
	for _, note := range notes {
		pw("note", "%s", note)
	}
	if req.ClientID != "" {
		p("client_id", "%s", req.ClientID)
	}
	if req.RequestTime != "" {
		if at, err := antom.ParseRequestTime(req.RequestTime); err == nil {
			age := now.Sub(at).Round(time.Second)
			when := fmt.Sprintf("%s ago", age)
			if age < 0 {
				when = fmt.Sprintf("%s in the future", -age)
			}
			p("request_time", "%s (%s UTC, %s)", req.RequestTime, at.UTC().Format("2006-01-02 15:04:05"), when)
			if age > defaultAntomMaxAge {
				pw("note", "sent more than the default max_age (72h) ago: alipay_notify refuses it (403) unless its max_age allows that age; this check looks at the signature only")
			}
		} else {
			p("request_time", "%s", req.RequestTime)
		}
	}
	if n, err := antom.ParseNotification(req.Body); err == nil {
		if n.NotifyType != "" {
			p("notifyType", "%s (webhook type antom.%s)", n.NotifyType, n.NotifyType)
		}
		var ids struct {
			PaymentRequestID string `json:"paymentRequestId"`
			RefundRequestID  string `json:"refundRequestId"`
		}
		_ = json.Unmarshal(req.Body, &ids)
		if ids.PaymentRequestID != "" {
			p("request id", "%s (paymentRequestId)", ids.PaymentRequestID)
		} else if ids.RefundRequestID != "" {
			p("request id", "%s (refundRequestId)", ids.RefundRequestID)
		}
	}
	if h, err := antom.ParseSignatureHeader(req.Signature); err == nil {
		p("signature", "%s (SHA256withRSA), keyVersion %d", h.Algorithm, h.KeyVersion)
	}
	v := diagnose.CheckAntom(keys, req)
	if v.Err == nil {
		p("verdict", "VERIFIED: key %s", v.Key)
		fmt.Fprintf(out, "signed content:\n%s\n", v.SignedContent)
		return true
	}
	p("verdict", "NOT VERIFIED: %s (the plugin answers %d with the FAIL JSON)", v.Err, v.Status)
	fmt.Fprintf(out, "signed content (as checked):\n%s\n", v.SignedContent)
	f := diagnose.DiagnoseAntom(keys, req, hints)
	pw("likely cause", "%s", f.Cause)
	fmt.Fprintf(out, "%15s%s\n", "", wrap(f.Explain, 15))
	if r := f.Repair; r != nil {
		p("repaired", "it verifies: key %s", r.Key)
		fmt.Fprintf(out, "signed content that verifies:\n%s\n", r.SignedContent)
	}
	return false
}
