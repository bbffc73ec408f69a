package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/spf13/cobra"
)

// alipayPostContentType is the Content-Type of Alipay's notification POSTs,
// malformed as it is (two media types).
const alipayPostContentType = "application/x-www-form-urlencoded; text/html; charset=UTF-8"

func sendCommand() *cobra.Command {
	var o signOptions
	var a antomOptions
	var bodyFile string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "send [--key <private key file> --app-id <app_id> [sign flags] [<key>=<value>...] | --body <file> | --antom --key <private key file> --client-id <id> [--body <file>]] <notify URL>",
		Short: "Signs a test notification and POSTs it like Alipay (or Antom), or POSTs a captured body",
		Long: `Signs a notification like caddy alipay-notify sign and POSTs it to a URL the
way Alipay does (Content-Type "` + alipayPostContentType + `"),
then prints the answer's status and body. Point it at a running alipay_notify
configured with the public key of the test pair, in front of your upstream,
to exercise both end to end.

--body sends a file (or stdin: -) as it is instead, e.g. a body printed by
sign, a captured one, or a real vector's body; the sign flags and key=value
arguments do not apply then.

Exit status 0 only when the answer is 200 "success", the only answer that
stops Alipay's retries.

With --antom it signs an Antom notification like sign --antom (--key,
--client-id, --request-time; --body is then the JSON body to sign, default
a notifyPayment) over the URL's path and query (--uri signs another, e.g.
the URI that a proxy in front of Caddy forwards), and POSTs it with
Content-Type "` + antomContentType + `" and the Client-Id, Request-Time and
Signature headers. Exit status 0 only when the answer is 200 with
resultStatus "S", the only answer that stops Antom's retries.

` + signParamsHelp,
		Example: `  caddy alipay-notify send --key alipay-test.key.pem --app-id 2021000000000000 http://127.0.0.1:8080/alipay/notify out_trade_no=order-1 total_amount=0.01
  caddy alipay-notify sign --key alipay-test.key.pem --app-id 2021000000000000 notify_id=retry-1 > body.txt
  caddy alipay-notify send --body body.txt http://127.0.0.1:8080/alipay/notify     # Alipay's first try
  caddy alipay-notify send --body body.txt http://127.0.0.1:8080/alipay/notify     # its retry: the same notify_id
  caddy alipay-notify send --antom --key alipay-test.key.pem --client-id SANDBOX_5X00000000000000 http://127.0.0.1:8080/antom/notify`,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, params, err := splitSendArgs(args)
			if err != nil {
				return err
			}
			if err := a.checkFlags(cmd, params); err != nil {
				return err
			}
			if a.enabled {
				uri := a.uri
				if uri == "" {
					uri = requestURI(target)
				}
				n, err := a.build(cmd, o.key, bodyFile, uri, o.verbose)
				if err != nil {
					return err
				}
				return sendAntom(cmd, target, n, timeout)
			}
			var body, what string
			if bodyFile != "" {
				for _, flag := range []string{"key", "app-id", "sign-type", "charset", "json", "v2"} {
					if cmd.Flags().Changed(flag) {
						return fmt.Errorf("--body sends a file as it is: --%s does not apply", flag)
					}
				}
				if len(params) > 0 {
					return fmt.Errorf("--body sends a file as it is: the arguments %s do not apply", strings.Join(params, " "))
				}
				data, err := readInput(cmd.InOrStdin(), bodyFile)
				if err != nil {
					return fmt.Errorf("--body: %w", err)
				}
				body, what = string(data), "--body "+bodyFile
			} else {
				signed, err := o.build(cmd, params, cmd.InOrStdin())
				if err != nil {
					return err
				}
				body = signed.Body()
				what = "notify_id " + paramValue(signed.Params, "notify_id")
			}
			return sendNotification(cmd, target, body, what, timeout)
		},
	}
	o.addFlags(cmd)
	a.addFlags(cmd)
	cmd.Flags().StringVar(&bodyFile, "body", "", `send this file's content as it is ("-": stdin) instead of signing; with --antom, the JSON body to sign`)
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	return cmd
}

// splitSendArgs finds the URL among the arguments; the others are key=value.
func splitSendArgs(args []string) (string, []string, error) {
	var target string
	var params []string
	for _, arg := range args {
		if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
			if target != "" {
				return "", nil, fmt.Errorf("two URLs, %s and %s: give the notify URL once", target, arg)
			}
			target = arg
			continue
		}
		params = append(params, arg)
	}
	if target == "" {
		return "", nil, errors.New("the notify URL is required, e.g. http://127.0.0.1:8080/alipay/notify")
	}
	if u, err := url.Parse(target); err != nil || u.Host == "" {
		return "", nil, fmt.Errorf("notify URL %q: want an absolute http:// or https:// URL", target)
	}
	return target, params, nil
}

func paramValue(params []alipay.Param, key string) string {
	for _, p := range params {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

// sendNotification POSTs body like Alipay and prints "<status> <answer>".
func sendNotification(cmd *cobra.Command, target, body, what string, timeout time.Duration) error {
	header := http.Header{}
	header.Set("Content-Type", alipayPostContentType)
	header.Set("User-Agent", "Mozilla/4.0 (caddy alipay-notify send)")
	announce := fmt.Sprintf("POST %s (%s, %d bytes)", target, what, len(body))
	resp, data, err := post(cmd, target, strings.NewReader(body), header, announce, timeout, 200)
	if err != nil {
		return err
	}
	answer := string(data)
	if resp.StatusCode == http.StatusOK && answer == answerSuccess {
		return nil
	}
	return errors.New(sendHint(resp, answer))
}

// post POSTs body to target with header, as Alipay and Antom do: without
// following redirects (they do not: send shows them). It prints announce on
// stderr before, and "<status> <answer>" on stdout after, the answer cut to
// shownMax bytes and quoted unless it is one printable line. It returns the
// response, its body closed, and the answer (64 KiB at most).
func post(cmd *cobra.Command, target string, body io.Reader, header http.Header, announce string, timeout time.Duration, shownMax int) (*http.Response, []byte, error) {
	client := &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, target, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header = header
	fmt.Fprintln(cmd.ErrOrStderr(), announce)
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("POST %s: %w (is Caddy running and listening there?)", target, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	shown := string(data)
	if len(shown) > shownMax {
		shown = shown[:shownMax] + "…"
	}
	if strings.ContainsAny(shown, "\r\n\t") || !isPrintable(shown) {
		shown = strconv.Quote(shown)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d %s\n", resp.StatusCode, shown)
	return resp, data, nil
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// commonHint says what the answers that mean the same for Alipay and Antom
// mean: alipay_notify's own 400, 502 and 504 (fromPlugin: the answer is
// one of alipay_notify's), a redirect, which sender does not follow (use
// the final URL as urlName), and the answers when no handler matches. It
// is "" for any other answer.
func commonHint(resp *http.Response, answer string, fromPlugin bool, sender, urlName string) string {
	switch {
	case fromPlugin && resp.StatusCode == http.StatusBadRequest:
		return "alipay_notify found the notification malformed: Caddy's log line \"notification refused\" gives the reason"
	case fromPlugin && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout):
		return "the upstream did not accept the webhook (Caddy's log: upstream_status), or did not answer: check the upstream's own log (a wrong webhook_secret makes it answer 401)"
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return "the URL redirects (to " + resp.Header.Get("Location") + "), and " + sender + " does not follow redirects: use the final URL as " + urlName
	case resp.StatusCode == http.StatusOK && answer == "":
		return "an empty answer: nothing handled the request (Caddy answers an empty 200 when no handler matches): check the URL against the matcher of alipay_notify"
	case resp.StatusCode == http.StatusNotFound:
		return "nothing handles this path: check the URL against the matcher of alipay_notify"
	}
	return ""
}

// sendHint says what an answer other than 200 success means.
func sendHint(resp *http.Response, answer string) string {
	const retry = "Alipay would retry: only 200 \"success\" stops it. "
	fromPlugin := answer == answerFail
	switch common := commonHint(resp, answer, fromPlugin, "Alipay", "notify_url"); {
	case fromPlugin && resp.StatusCode == http.StatusForbidden:
		return retry + "alipay_notify refused the notification: Caddy's log line \"notification refused\" gives the reason (a key that is not the test pair's public key? an app_id not in app_id?)"
	case common != "":
		return retry + common
	case resp.StatusCode == http.StatusOK && strings.TrimSpace(answer) == answerSuccess:
		return retry + "the answer has whitespace around \"success\", and Alipay wants exactly those seven characters"
	default:
		return retry + "this answer did not come from alipay_notify (it answers exactly \"success\" or \"fail\"): is the URL right?"
	}
}
