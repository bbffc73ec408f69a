package cli

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/capture"
	"github.com/spf13/cobra"
)

// signOptions are the flags that sign and send share.
type signOptions struct {
	key      string
	appID    string
	signType string
	charset  string
	jsonFile string
	v2       bool
	verbose  bool
}

func (o *signOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.key, "key", "", "private key file that signs (PKCS#8 or PKCS#1 PEM, or one line of base64), e.g. keygen's alipay-test.key.pem")
	f.StringVar(&o.appID, "app-id", "", "app_id of the notification: one of the app_id of your alipay_notify")
	f.StringVar(&o.signType, "sign-type", "RSA2", "RSA2 (SHA256withRSA) or RSA (SHA1withRSA)")
	f.StringVar(&o.charset, "charset", "utf-8", "utf-8 or gbk: the bytes that are signed and percent-encoded")
	f.StringVar(&o.jsonFile, "json", "", `file holding the parameters as a JSON object of strings ("-": stdin); key=value arguments override it`)
	f.BoolVar(&o.v2, "v2", false, "sign the V2 string, which includes sign_type (messages to an app gateway)")
	f.BoolVar(&o.verbose, "verbose", false, "print the signed string on stderr")
}

const signParamsHelp = `Parameters are key=value arguments (no percent-encoding: write the value
itself, spaces and Chinese included), or a JSON object of strings (--json),
or both. Missing ones get defaults:
  notify_id     a random one (Alipay keeps it across its retries; the
                webhook-id the upstream deduplicates on)
  notify_time   now, Beijing time, yyyy-MM-dd HH:mm:ss
  notify_type   trade_status_sync
  trade_status  TRADE_SUCCESS
  app_id        --app-id
  charset       --charset
  version       1.0
  sign_type     --sign-type
An empty value leaves the parameter out (e.g. trade_status= for a message
that is not a trade notification). The signed string is Alipay's: sorted by
key, without sign, without sign_type unless --v2, without empty values,
joined as k=v with '&', in the bytes of the charset.`

// build reads the parameters and signs them.
func (o *signOptions) build(cmd *cobra.Command, args []string, stdin io.Reader) (*alipay.Signed, error) {
	if o.key == "" {
		return nil, errors.New("--key is required: the private key file that signs (caddy alipay-notify keygen writes one)")
	}
	key, err := alipay.LoadPrivateKey(o.key)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	params, err := o.params(cmd, args, stdin)
	if err != nil {
		return nil, err
	}
	fields := make([]alipay.Param, 0, len(params))
	for k, v := range params {
		fields = append(fields, alipay.Param{Key: k, Value: v})
	}
	slices.SortFunc(fields, func(a, b alipay.Param) int { return strings.Compare(a.Key, b.Key) })
	signed, err := alipay.Sign(key, fields, alipay.SignOptions{SignType: params["sign_type"], Charset: params["charset"], V2: o.v2})
	if err != nil {
		return nil, err
	}
	if o.verbose {
		rule := "V1, without sign_type"
		if o.v2 {
			rule = "V2, with sign_type"
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "signed string (%s, %s):\n%s\n", rule, params["charset"], displayValue(string(signed.SignedString), alipay.IsGBK(params["charset"])))
	}
	return signed, nil
}

// params gathers the parameters from --json and the arguments, and applies
// the flags and defaults.
func (o *signOptions) params(cmd *cobra.Command, args []string, stdin io.Reader) (map[string]string, error) {
	params := make(map[string]string)
	if o.jsonFile != "" {
		data, err := readInput(stdin, o.jsonFile)
		if err != nil {
			return nil, fmt.Errorf("--json: %w", err)
		}
		if params, err = capture.JSONParams(string(data)); err != nil {
			return nil, fmt.Errorf("--json %s: %w", o.jsonFile, err)
		}
	}
	given := make(map[string]bool)
	for _, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("argument %q: want key=value, e.g. out_trade_no=order-1", arg)
		}
		if given[k] {
			return nil, fmt.Errorf("argument %s given twice: Alipay never sends a parameter twice", k)
		}
		given[k] = true
		params[k] = v
	}
	if _, ok := params["sign"]; ok {
		return nil, errors.New("sign is computed from the other parameters: leave it out")
	}
	for k, v := range params {
		if v == "" {
			delete(params, k) // Alipay never sends empty values: an empty one leaves the parameter out
		}
	}

	var err error
	if params["sign_type"], err = flagOrParam(cmd, "sign-type", o.signType, "sign_type", params, true); err != nil {
		return nil, err
	}
	if st := params["sign_type"]; st != "RSA2" && st != "RSA" {
		return nil, fmt.Errorf("sign type %q: want RSA2 (SHA256withRSA) or RSA (SHA1withRSA)", st)
	}
	if params["charset"], err = flagOrParam(cmd, "charset", o.charset, "charset", params, false); err != nil {
		return nil, err
	}
	if cs := strings.ToLower(params["charset"]); cs != "utf-8" && cs != "gbk" {
		return nil, fmt.Errorf("charset %q: want utf-8 or gbk", params["charset"])
	}
	if params["app_id"], err = flagOrParam(cmd, "app-id", o.appID, "app_id", params, true); err != nil {
		return nil, err
	}
	if params["app_id"] == "" {
		return nil, errors.New("--app-id is required: the app_id of the notification, one of the app_id of your alipay_notify (or give app_id=...)")
	}

	now := time.Now().In(alipay.Beijing)
	defaults := map[string]func() (string, error){
		"notify_id":    func() (string, error) { return randomNotifyID(now) },
		"notify_time":  func() (string, error) { return now.Format(alipay.TimeLayout), nil },
		"notify_type":  func() (string, error) { return "trade_status_sync", nil },
		"trade_status": func() (string, error) { return "TRADE_SUCCESS", nil },
		"version":      func() (string, error) { return "1.0", nil },
	}
	for k, def := range defaults {
		if _, ok := params[k]; ok || given[k] { // given empty: left out
			continue
		}
		if params[k], err = def(); err != nil {
			return nil, err
		}
	}
	return params, nil
}

// flagOrParam reconciles a flag with the parameter it sets: a parameter
// given explicitly wins over the flag's default, but not over the flag.
func flagOrParam(cmd *cobra.Command, flag, flagValue, param string, params map[string]string, caseSensitive bool) (string, error) {
	value, ok := params[param]
	if !ok {
		return flagValue, nil
	}
	same := value == flagValue || (!caseSensitive && strings.EqualFold(value, flagValue))
	if cmd.Flags().Changed(flag) && !same {
		return "", fmt.Errorf("--%s %s and %s=%s disagree: give one of them", flag, flagValue, param, value)
	}
	return value, nil
}

// randomNotifyID looks like Alipay's: the date and random digits, 34 digits.
func randomNotifyID(now time.Time) (string, error) {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(26), nil)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%026s", now.Format("20060102"), n.String()), nil
}

func signCommand() *cobra.Command {
	var o signOptions
	var a antomOptions
	var bodyFile, format string
	cmd := &cobra.Command{
		Use:   "sign --key <private key file> --app-id <app_id> [--sign-type RSA2|RSA] [--charset utf-8|gbk] [--v2] [--json <file>] [<key>=<value>...] | sign --antom --key <private key file> --client-id <id> [--uri <uri>] [--request-time <time>] [--body <file>] [--format request|json]",
		Short: "Signs a test notification the way Alipay (or Antom) does and prints it",
		Long: `Builds an Alipay asynchronous notification, signs it with a private key the
way Alipay does, and prints its body on stdout, x-www-form-urlencoded as
Alipay posts it ('+' for a space, %XX for other bytes). Use a test key pair
from caddy alipay-notify keygen, and that pair's public key as the
alipay_public_key of a test configuration: never a real key.

` + signParamsHelp + `

A final newline is printed only when stdout is a terminal, so that
"> body.txt" saves exactly the body.

With --antom it signs an Antom (Alipay global) notification instead: a JSON
body (--body, a file or - for stdin, signed byte for byte; by default a
notifyPayment PAYMENT_RESULT with a random paymentRequestId) in three
headers, Client-Id (--client-id), Request-Time (--request-time, default now)
and Signature, over "POST <uri>\n<Client-Id>.<Request-Time>.<body>" with
<uri> from --uri (default ` + defaultAntomURI + `, the path that the notification is
posted to). Configure the pair's public key as the antom_public_key of the
antom block for that client ID. --format request (the default) prints the
whole HTTP request, headers then the body, which verify reads back;
--format json prints {"method", "uri", "headers", "body"} for scripts. send
--antom signs and POSTs it in one step.`,
		Example: `  caddy alipay-notify sign --key alipay-test.key.pem --app-id 2021000000000000 out_trade_no=order-1 total_amount=0.01 > body.txt
  curl -H 'Content-Type: application/x-www-form-urlencoded; charset=utf-8' --data-binary @body.txt http://127.0.0.1:8080/alipay/notify
  caddy alipay-notify sign --key alipay-test.key.pem --app-id 2021000000000000 --charset gbk subject=测试商品 total_amount=9.90
  caddy alipay-notify sign --key alipay-test.key.pem --app-id 2021000000000000 --sign-type RSA --json notification.json
  caddy alipay-notify sign --key alipay-test.key.pem --app-id 2021000000000000 --v2 notify_type=servicemarket_order_notify trade_status=
  caddy alipay-notify sign --antom --key alipay-test.key.pem --client-id SANDBOX_5X00000000000000 > request.txt
  caddy alipay-notify sign --antom --key alipay-test.key.pem --client-id SANDBOX_5X00000000000000 --uri /antom/notify --body refund.json --format json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkFlags(cmd, args, "body", "format"); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.enabled {
				if format != antomFormatRequest && format != antomFormatJSON {
					return fmt.Errorf("--format %q: want %s or %s", format, antomFormatRequest, antomFormatJSON)
				}
				uri := a.uri
				if uri == "" {
					uri = defaultAntomURI
				}
				n, err := a.build(cmd, o.key, bodyFile, uri, o.verbose)
				if err != nil {
					return err
				}
				return printAntom(out, n, format)
			}
			signed, err := o.build(cmd, args, cmd.InOrStdin())
			if err != nil {
				return err
			}
			fmt.Fprint(out, signed.Body())
			if isTerminal(out) {
				fmt.Fprintln(out)
			}
			return nil
		},
	}
	o.addFlags(cmd)
	a.addFlags(cmd)
	cmd.Flags().StringVar(&bodyFile, "body", "", `with --antom: the JSON body to sign, byte for byte ("-": stdin; default a notifyPayment)`)
	cmd.Flags().StringVar(&format, "format", antomFormatRequest, "with --antom: request (the whole HTTP request) or json")
	return cmd
}
