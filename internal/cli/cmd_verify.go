package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/ascii"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/capture"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/diagnose"
	"github.com/spf13/cobra"
	"golang.org/x/text/encoding/simplifiedchinese"
)

func verifyCommand() *cobra.Command {
	var keys, certs, appKeys []string
	var md5 string
	var format string
	var av verifyAntomOptions
	cmd := &cobra.Command{
		Use:   "verify --key <alipay_public_key | antom_public_key> [--key ...] [--cert <path>] [--app-key <key>] [--format <format>] [--antom [--uri <uri>] [--client-id <id>] [--request-time <time>] [--signature <value>]] [<file> | -]",
		Short: "Checks a captured notification with Alipay's (or Antom's) key and explains why it fails",
		Long: `Checks a captured Alipay notification exactly as alipay_notify does, and
prints the verdict, the signed string, the rule that matched (V1 without
sign_type, V2 with it) and the hash (SHA256 for RSA2, SHA1 for RSA).

When it does not verify, it looks for the likely cause by verifying repaired
copies: the other hash (RSA vs RSA2), HTML-unescaped values (&quot;), '+'
turned into a space, the other charset (UTF-8 vs GBK), parameters mixed in
(the notify_url's query string, a framework's own parameters); and it
recognises your app's own public key (--app-key) given instead of Alipay's.

The capture is read from the file, or from stdin without one (or with -).
--format auto (the default) recognises:
  body        the raw x-www-form-urlencoded body, as Alipay POSTed it
  request     a whole HTTP request (request line, headers, blank line, body);
              the query string of a POST is not signed and is left out
  url         a URL whose query holds the notification (a return_url)
  json        a JSON object of strings, e.g. a logged parameter map
  rails       a Rails log line: Parameters: {"k"=>"v", ...}
  print_r     PHP's print_r($_POST) output
  var_export  PHP's var_export($_POST) output
Logged parameters are already decoded: the body is rebuilt from them, in the
bytes of their charset parameter.

--key takes the alipay_public_key forms: one line of base64, a PEM block, or
a file holding either; repeat it to try several keys. --cert takes an
alipay_cert file (alipayCertPublicKey_RSA2.crt). --md5-key checks a legacy
mapi notification (sign_type MD5) instead.

It checks the signature only, not app_id, seller_id or notify_time's age.
Exit status 0 only when the capture verifies as it is.

Antom (Alipay global) notifications: a whole HTTP request with a Signature
header is recognised as one, and checked exactly as alipay_notify checks it:
the URI of the request line, the Client-Id, Request-Time and Signature
headers and the exact body (Content-Length bytes when the capture declares
it), against --key, Antom's public key (antom_public_key forms; repeat it
for a rotation). --antom reads a request without a Signature header, or a
body alone, with the request line's and headers' values given by --uri,
--client-id, --request-time and --signature. When it does not verify, it
looks for the likely cause by verifying repaired copies: the URI without its
query, with a path prefix added or removed, or another URI (--uri, with a
request capture: repeatable), the path of an absolute URI, a trailing slash;
the body compacted (pretty-printed) or its extra escapes undone (\/,
\uXXXX: re-encoded); a '+' restored in the Signature (turned into a space),
a Signature percent-encoded twice; another Client-Id (--client-id, with a
request capture); it recognises your own key (--app-key: your public key, or
the private key file), and a body re-serialised beyond repair (keys
reordered, numbers reformatted). It prints the age of Request-Time, which
alipay_notify's max_age (72h by default) limits, but checks the signature
only.`,
		Example: `  caddy alipay-notify verify --key alipay_public_key.txt body.txt
  caddy alipay-notify verify --key "MIIBIjANBgkqh..." --app-key app_public_key.txt body.txt
  grep 'Parameters: {' log/production.log | tail -1 | caddy alipay-notify verify --key alipay_public_key.txt
  caddy alipay-notify sign --key alipay-test.key.pem --app-id 2021000000000000 | caddy alipay-notify verify --key alipay-test.pub.txt
  caddy alipay-notify verify --key antom_public_key.txt antom-request.txt
  caddy alipay-notify verify --key antom_public_key.txt --uri /antom/notify antom-request-behind-proxy.txt
  caddy alipay-notify verify --antom --key antom_public_key.txt --uri /antom/notify --client-id SANDBOX_5X00000000000000 --request-time 2025-05-19T01:52:32Z --signature 'algorithm=RSA256,keyVersion=1,signature=...' body.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, source, err := readCapture(cmd, args)
			if err != nil {
				return err
			}
			r, isAntom, err := av.antomCapture(data, format)
			if err != nil {
				return fmt.Errorf("%s: %w", source, err)
			}
			if isAntom {
				for _, flag := range []string{"cert", "md5-key"} {
					if cmd.Flags().Changed(flag) {
						return fmt.Errorf("--%s applies to domestic notifications, and this capture is an Antom one", flag)
					}
				}
				return verifyAntom(cmd, &av, r, data, source, keys, appKeys)
			}
			if flag := av.changed(cmd); flag != "" {
				return fmt.Errorf("--%s applies to Antom notifications, and this capture is not one (no Signature header): add --antom", flag)
			}
			if format == capture.Auto && looksLikeAntomBody(data) {
				return fmt.Errorf("%s: this looks like the body of an Antom notification: give the whole HTTP request (with its Client-Id, Request-Time and Signature headers), or --antom with --uri, --client-id, --request-time and --signature", source)
			}
			var ring *alipay.KeyRing
			if md5 == "" || len(keys)+len(certs) > 0 {
				var err error
				if ring, err = loadVerifyKeys(keys, certs); err != nil {
					return err
				}
			}
			appRing, err := loadAppKeys(appKeys)
			if err != nil {
				return err
			}
			c, err := capture.Parse(data, format)
			var formatErr *capture.FormatError
			if errors.As(err, &formatErr) {
				return fmt.Errorf("%s: --%v", source, err)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", source, err)
			}
			var legacy alipay.MD5Key
			if md5 != "" {
				legacy = alipay.MD5Key(md5)
			}
			if ok := reportVerification(cmd.OutOrStdout(), c, ring, appRing, legacy); !ok {
				return errors.New("the notification does not verify as it is")
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "Alipay's public key (支付宝公钥), or Antom's for an Antom capture: one line of base64, PEM, or a file; repeatable")
	cmd.Flags().StringArrayVar(&certs, "cert", nil, "Alipay's public key certificate file (alipayCertPublicKey_RSA2.crt); repeatable")
	cmd.Flags().StringArrayVar(&appKeys, "app-key", nil, "your app's own public key (应用公钥), to recognise it when it is given as --key")
	cmd.Flags().StringVar(&md5, "md5-key", "", "the partner's MD5 key, for legacy mapi notifications (sign_type MD5)")
	cmd.Flags().StringVar(&format, "format", capture.Auto, "capture format: "+strings.Join(capture.Formats, ", "))
	av.addFlags(cmd)
	return cmd
}

// loadVerifyKeys parses --key and --cert into a key ring labelled by flag.
func loadVerifyKeys(keys, certs []string) (*alipay.KeyRing, error) {
	if len(keys) == 0 && len(certs) == 0 {
		return nil, errors.New("--key is required: Alipay's public key (支付宝公钥), as for alipay_public_key (or --cert for alipay_cert)")
	}
	ring := new(alipay.KeyRing)
	for i, value := range keys {
		label := keyLabel("--key", i, value)
		key, err := alipay.LoadPublicKey(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if err := ring.Add(label, key); err != nil {
			return nil, err
		}
	}
	for i, path := range certs {
		label := keyLabel("--cert", i, path)
		cert, err := alipay.LoadCertificate(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if err := ring.Add(label+" (SN "+cert.SerialNumber()+")", cert.PublicKey()); err != nil {
			return nil, err
		}
	}
	return ring, nil
}

// loadAppKeys parses --app-key: a public key in any alipay_public_key form,
// or a file holding the app's private key (its public half is used).
func loadAppKeys(values []string) (*alipay.KeyRing, error) {
	ring := new(alipay.KeyRing)
	for i, value := range values {
		label := keyLabel("--app-key", i, value)
		key, err := alipay.LoadPublicKey(value)
		if err != nil && fileExists(value) {
			if private, perr := alipay.LoadPrivateKey(value); perr == nil {
				key, err = &private.PublicKey, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if err := ring.Add(label, key); err != nil {
			return nil, err
		}
	}
	return ring, nil
}

// keyLabel names a key in the report by its flag, position and file name.
func keyLabel(flag string, i int, value string) string {
	label := fmt.Sprintf("%s #%d", flag, i+1)
	if !strings.HasPrefix(strings.TrimSpace(value), "-----BEGIN") && fileExists(value) {
		label += " (" + filepath.Base(value) + ")"
	}
	return label
}

// readCapture reads the file named by args[0], or stdin (without an
// argument, or with "-"), and names where it came from.
func readCapture(cmd *cobra.Command, args []string) ([]byte, string, error) {
	if len(args) == 1 && args[0] != "-" {
		data, err := readInput(nil, args[0])
		return data, args[0], err
	}
	in := cmd.InOrStdin()
	if isTerminal(in) {
		return nil, "", errors.New("no capture: give a file (caddy alipay-notify verify --key <key> body.txt) or pipe it on stdin")
	}
	data, err := readInput(in, "-")
	return data, "stdin", err
}

// reportVerification prints the verdict on c and, when it does not verify,
// the likely cause. It reports whether c verifies as it is.
func reportVerification(out io.Writer, c *capture.Capture, ring, appRing *alipay.KeyRing, md5 alipay.MD5Key) bool {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(out, "%-14s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	pw := func(label, format string, args ...any) {
		fmt.Fprintf(out, "%-14s %s\n", label+":", wrap(fmt.Sprintf(format, args...), 15))
	}
	v := diagnose.Check(ring, md5, c.Body)
	count := ""
	if v.Params != nil {
		count = fmt.Sprintf(", %d parameters", len(v.Params))
		if len(v.Params) == 1 {
			count = ", 1 parameter"
		}
	}
	p("capture", "%s%s", c.Format, count)
	for _, note := range c.Notes {
		pw("note", "%s", note)
	}
	gbk := diagnose.IsGBK(v.Params)
	signType := diagnose.Get(v.Params, "sign_type")
	if v.Params != nil {
		for _, name := range []string{"notify_id", "app_id", "out_trade_no", "trade_status", "charset"} {
			if value := diagnose.Get(v.Params, name); value != "" {
				p(name, "%s", displayValue(value, gbk))
			}
		}
		if err := alipay.CheckSignType(signType); err == nil {
			p("sign_type", "%s: hash %s (%s)", signType, diagnose.Hash(signType), diagnose.Algorithm(signType))
		} else if signType == "MD5" {
			p("sign_type", "MD5: md5_hex(signed string + the partner's MD5 key)")
		} else {
			p("sign_type", "%s", err)
		}
	}
	if v.Verified() {
		algorithm := "hash " + diagnose.Hash(signType)
		if v.MD5 {
			algorithm = "MD5"
		}
		p("verdict", "VERIFIED: rule %s, %s, key %s", ruleName(v.Match.Rule), algorithm, v.Match.Key)
		printSigned(out, "signed string (rule "+strings.ToUpper(string(v.Match.Rule))+")", v.SignedString, gbk)
		return true
	}
	status := "403"
	if v.Malformed() {
		status = "400"
	}
	p("verdict", "NOT VERIFIED: %s (the plugin answers %s fail)", v.Err, status)
	if v.Params == nil {
		return false
	}
	if v.SignedString != nil {
		label := "signed string (rule V1, as checked"
		if diagnose.Has(v.Params, "sign_type") {
			label += "; V2 with sign_type was tried too"
		}
		printSigned(out, label+")", v.SignedString, gbk)
	}
	f := diagnose.Diagnose(ring, appRing, v.Params)
	pw("likely cause", "%s", f.Cause)
	fmt.Fprintf(out, "%15s%s\n", "", wrap(f.Explain, 15))
	if r := f.Repair; r != nil {
		p("repaired", "it verifies: rule %s, hash %s, key %s", ruleName(r.Rule), diagnose.Hash(r.SignType), r.Key)
		printSigned(out, "signed string that verifies", r.SignedString, r.GBK)
	}
	return false
}

func ruleName(rule alipay.Rule) string {
	if rule == alipay.RuleV2 {
		return "V2 (sign_type signed)"
	}
	return "V1 (sign_type not signed)"
}

func printSigned(out io.Writer, label string, content []byte, gbk bool) {
	if gbk && !ascii.Only(string(content)) {
		label += ", GBK bytes shown as UTF-8"
	}
	fmt.Fprintf(out, "%s:\n%s\n", label, displayValue(string(content), gbk))
}

// displayValue shows bytes of the notification's charset as UTF-8.
func displayValue(s string, gbk bool) string {
	if gbk && !ascii.Only(s) {
		if out, err := simplifiedchinese.GB18030.NewDecoder().String(s); err == nil {
			return out
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// wrap breaks text into lines of at most 80 columns, continuing at indent.
func wrap(text string, indent int) string {
	const width = 80
	words := strings.Fields(text)
	if len(words) == 0 || len(text)+indent <= width {
		return text
	}
	var b strings.Builder
	col := indent
	for i, w := range words {
		if i > 0 {
			if col+1+len(w) > width {
				b.WriteString("\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}
