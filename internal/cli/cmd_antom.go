package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/antom"
	"github.com/spf13/cobra"
)

// antomContentType is the Content-Type of Antom's notification POSTs.
const antomContentType = "application/json; charset=UTF-8"

// defaultAntomURI is the URI sign --antom signs without --uri: the path of
// DESIGN.md's example antom endpoint.
const defaultAntomURI = "/antom/notify"

// The formats of sign --antom.
const (
	antomFormatRequest = "request"
	antomFormatJSON    = "json"
)

// antomOptions are the flags of sign --antom and send --antom, besides
// --key (signOptions) and --body.
type antomOptions struct {
	enabled     bool
	clientID    string
	uri         string
	requestTime string
}

func (o *antomOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.enabled, "antom", false, "sign an Antom (Alipay global) notification instead of a domestic one")
	f.StringVar(&o.clientID, "client-id", "", "with --antom: the Client-Id header, one of the antom blocks of your alipay_notify")
	f.StringVar(&o.uri, "uri", "", "with --antom: the request URI that is signed (path and query, as the request line carries it)")
	f.StringVar(&o.requestTime, "request-time", "", "with --antom: the Request-Time header, RFC 3339 or epoch milliseconds (default now, RFC 3339 UTC)")
}

// antomOnlyFlags are the flags that apply only with --antom; domesticFlags
// the signOptions flags that do not apply with it.
var (
	antomOnlyFlags = []string{"client-id", "uri", "request-time"}
	domesticFlags  = []string{"app-id", "sign-type", "charset", "json", "v2"}
)

// checkFlags refuses the flags of the other kind of notification.
func (o *antomOptions) checkFlags(cmd *cobra.Command, args []string, extraAntomOnly ...string) error {
	if !o.enabled {
		for _, flag := range append(antomOnlyFlags, extraAntomOnly...) {
			if cmd.Flags().Changed(flag) {
				return fmt.Errorf("--%s applies to Antom notifications: add --antom", flag)
			}
		}
		return nil
	}
	for _, flag := range domesticFlags {
		if cmd.Flags().Changed(flag) {
			return fmt.Errorf("--antom signs an Antom notification: --%s applies to domestic ones only", flag)
		}
	}
	if len(args) > 0 {
		return fmt.Errorf("--antom takes the body from --body (or signs a default notifyPayment): the arguments %s do not apply", strings.Join(args, " "))
	}
	return nil
}

// antomNotification is a signed Antom notification.
type antomNotification struct {
	uri, clientID, requestTime, signature string
	body                                  []byte
	notifyType                            string
}

func (n *antomNotification) header() http.Header {
	h := make(http.Header)
	h.Set("Content-Type", antomContentType)
	h.Set("Client-Id", n.clientID)
	h.Set("Request-Time", n.requestTime)
	h.Set("Signature", n.signature)
	return h
}

// build signs an Antom notification over uri: the body of bodyFile ("":
// a default notifyPayment), the flags' Client-Id and Request-Time.
func (o *antomOptions) build(cmd *cobra.Command, keyFile, bodyFile, uri string, verbose bool) (*antomNotification, error) {
	if keyFile == "" {
		return nil, errors.New("--key is required: the private key file that signs (caddy alipay-notify keygen writes a test pair; its public key goes into antom_public_key)")
	}
	if o.clientID == "" {
		return nil, errors.New("--client-id is required with --antom: the Client-Id of the notification, one of the antom blocks of your alipay_notify (e.g. SANDBOX_5X00000000000000)")
	}
	if strings.Contains(o.clientID, ".") {
		return nil, fmt.Errorf("--client-id %q: Antom's client IDs have no '.' (alipay_notify refuses one)", o.clientID)
	}
	if !strings.HasPrefix(uri, "/") || strings.ContainsAny(uri, " \t\r\n") {
		return nil, fmt.Errorf("--uri %q: want the path and query as a request line carries them, e.g. %s", uri, defaultAntomURI)
	}
	key, err := alipay.LoadPrivateKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	now := time.Now()
	n := &antomNotification{uri: uri, clientID: o.clientID, requestTime: o.requestTime}
	if n.requestTime == "" {
		n.requestTime = now.UTC().Format(time.RFC3339)
	} else if _, err := antom.ParseRequestTime(n.requestTime); err != nil {
		return nil, fmt.Errorf("--request-time %q: want RFC 3339 (2025-05-19T01:52:32Z) or epoch milliseconds (1747619552000)", n.requestTime)
	}
	if bodyFile != "" {
		if n.body, err = readInput(cmd.InOrStdin(), bodyFile); err != nil {
			return nil, fmt.Errorf("--body: %w", err)
		}
	} else if n.body, err = defaultAntomBody(now); err != nil {
		return nil, err
	}
	if parsed, err := antom.ParseNotification(n.body); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: --body %s: %v: alipay_notify refuses this body (400) whatever its signature\n", bodyFile, err)
	} else {
		n.notifyType = parsed.NotifyType
	}
	if n.signature, err = antom.Sign(key, http.MethodPost, n.uri, n.clientID, n.requestTime, n.body); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if verbose {
		req := antom.Request{Method: http.MethodPost, URI: n.uri, ClientID: n.clientID, RequestTime: n.requestTime, Body: n.body}
		fmt.Fprintf(cmd.ErrOrStderr(), "signed content:\n%s\n", req.AppendSignedContent(nil))
	}
	return n, nil
}

// defaultAntomBody is a notifyPayment PAYMENT_RESULT as Antom sends it
// (compact, keys in Antom's order), with a random paymentRequestId and
// paymentId, so that each is a new notification (its webhook-id is derived
// from the body).
func defaultAntomBody(now time.Time) ([]byte, error) {
	requestID, err := randomDigits(8)
	if err != nil {
		return nil, err
	}
	paymentID, err := randomDigits(20)
	if err != nil {
		return nil, err
	}
	at := now.UTC().Format(time.RFC3339)
	created := now.Add(-5 * time.Second).UTC().Format(time.RFC3339)
	return []byte(`{"notifyType":"PAYMENT_RESULT","result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},` +
		`"paymentRequestId":"PAY_` + now.UTC().Format("20060102150405") + requestID + `","paymentId":"` + now.UTC().Format("20060102") + paymentID + `",` +
		`"paymentAmount":{"currency":"USD","value":"100"},"paymentCreateTime":"` + created + `","paymentTime":"` + at + `"}`), nil
}

func randomDigits(n int) (string, error) {
	v, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*s", n, v.String()), nil
}

// printAntom prints a signed Antom notification in format: the whole HTTP
// request (what verify reads), or a JSON object for scripts.
func printAntom(out io.Writer, n *antomNotification, format string) error {
	switch format {
	case antomFormatRequest:
		fmt.Fprintf(out, "POST %s HTTP/1.1\nContent-Type: %s\nClient-Id: %s\nRequest-Time: %s\nSignature: %s\nContent-Length: %d\n\n",
			n.uri, antomContentType, n.clientID, n.requestTime, n.signature, len(n.body))
		_, _ = out.Write(n.body)
		if isTerminal(out) {
			fmt.Fprintln(out)
		}
		return nil
	case antomFormatJSON:
		v := struct {
			Method  string            `json:"method"`
			URI     string            `json:"uri"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}{http.MethodPost, n.uri, map[string]string{"Content-Type": antomContentType, "Client-Id": n.clientID, "Request-Time": n.requestTime, "Signature": n.signature}, string(n.body)}
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return fmt.Errorf("--format %q: want %s or %s", format, antomFormatRequest, antomFormatJSON)
}

// requestURI is the path and query of target, as its request line carries
// them: what Antom signs.
func requestURI(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return "/"
	}
	return u.RequestURI()
}

// sendAntom POSTs a signed notification like Antom and prints
// "<status> <answer>".
func sendAntom(cmd *cobra.Command, target string, n *antomNotification, timeout time.Duration) error {
	header := n.header()
	header.Set("User-Agent", "caddy alipay-notify send --antom")
	what := n.notifyType
	if what == "" {
		what = "no notifyType"
	}
	announce := fmt.Sprintf("POST %s (Antom %s, Client-Id %s, Request-Time %s, %d bytes)", target, what, n.clientID, n.requestTime, len(n.body))
	resp, data, err := post(cmd, target, bytes.NewReader(n.body), header, announce, timeout, 300)
	if err != nil {
		return err
	}
	status := antomResultStatus(data)
	if resp.StatusCode == http.StatusOK && status == "S" {
		return nil
	}
	return errors.New(antomSendHint(resp, string(data), status))
}

// antomResultStatus is result.resultStatus of an Antom answer, "" when the
// answer is not one.
func antomResultStatus(data []byte) string {
	var answer struct {
		Result struct {
			ResultStatus string `json:"resultStatus"`
		} `json:"result"`
	}
	if json.Unmarshal(data, &answer) != nil {
		return ""
	}
	return answer.Result.ResultStatus
}

// antomSendHint says what an answer other than 200 with resultStatus S
// means.
func antomSendHint(resp *http.Response, answer, status string) string {
	const retry = "Antom would retry: only 200 with resultStatus \"S\" stops it. "
	fromPlugin := status == "F"
	switch common := commonHint(resp, answer, fromPlugin, "Antom", "the notification URL"); {
	case fromPlugin && resp.StatusCode == http.StatusForbidden:
		return retry + "alipay_notify refused the notification: Caddy's log line \"notification refused\" gives the reason " +
			"(is --client-id one of the antom blocks? is antom_public_key the public half of --key? a proxy in front of Caddy " +
			"that changes the path changes the signed URI: give the URI Caddy receives with --uri)"
	case fromPlugin && resp.StatusCode == http.StatusRequestEntityTooLarge:
		return retry + "the body is larger than max_body"
	case common != "":
		return retry + common
	case answer == answerFail || answer == answerSuccess:
		return retry + "the answer is a domestic one (\"" + answer + "\"): this alipay_notify does not know Antom notifications (a version before Antom support?)"
	default:
		return retry + "this answer did not come from alipay_notify (it answers Antom in JSON, resultStatus S or F): is the URL right?"
	}
}
