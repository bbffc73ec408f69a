package capture

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
)

// parseRequest reads a whole HTTP request: request line, headers, a blank
// line, the body. Alipay signs the body of its POST; the query string of
// the notify_url is not signed. A GET (a return_url redirect) carries
// everything in its query.
func parseRequest(text string) (*Capture, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	head, body, _ := strings.Cut(text, "\n\n")
	line, _, _ := strings.Cut(head, "\n")
	parts := strings.Fields(line)
	if len(parts) < 3 {
		return nil, fmt.Errorf("the first line %q is not an HTTP request line", alipay.Truncate(line))
	}
	method, target := parts[0], parts[1]
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("request target %q: %v", alipay.Truncate(target), err)
	}
	c := &Capture{Format: "HTTP request (" + method + ")"}
	if method == "GET" {
		c.Format += ", parameters from the query (a return_url redirect)"
		c.Body = []byte(u.RawQuery)
		return c, nil
	}
	c.Body = []byte(strings.TrimRight(body, "\n"))
	if u.RawQuery != "" {
		var names []string
		for name := range u.Query() {
			names = append(names, name)
		}
		slices.Sort(names)
		c.Notes = append(c.Notes, fmt.Sprintf("the URL's query parameters (%s) are not signed by Alipay: left out, as the plugin does", strings.Join(names, ", ")))
	}
	return c, nil
}

// parseURL reads a URL whose query holds the notification, such as a
// return_url redirect or a logged request URL.
func parseURL(text string) (*Capture, error) {
	line, _, _ := strings.Cut(text, "\n")
	u, err := url.Parse(strings.TrimSpace(line))
	if err != nil {
		return nil, fmt.Errorf("URL: %v", err)
	}
	if u.RawQuery == "" {
		return nil, errors.New("the URL has no query: give the body of the POST instead (see --format)")
	}
	return &Capture{
		Format: "URL query",
		Body:   []byte(u.RawQuery),
		Notes:  []string{"a POSTed notification is signed over its body: if the merchant's notify_url has its own query parameters, they are not signed"},
	}, nil
}
