package capture

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

var printREntry = regexp.MustCompile(`^\s*\[([^\]]+)\] => ?(.*)$`)

// parsePrintR reads PHP's print_r of an array of strings:
//
//	Array
//	(
//	    [key] => value
//	)
func parsePrintR(text string) (map[string]string, error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	params := make(map[string]string)
	var last string
	for _, line := range lines {
		if m := printREntry.FindStringSubmatch(line); m != nil {
			last = m[1]
			params[last] = m[2]
			continue
		}
		switch strings.TrimSpace(line) {
		case "Array", "(", "":
			continue
		case ")":
			last = ""
			continue
		}
		if last == "" {
			continue // the log line's own prefix or suffix
		}
		params[last] += "\n" + line // a value with a line break
	}
	if len(params) == 0 {
		return nil, errors.New("no [key] => value lines in the print_r output")
	}
	return params, nil
}

// parseVarExport reads PHP's var_export of an array of strings:
// array ( 'key' => 'value', ... ).
func parseVarExport(text string) (map[string]string, error) {
	start := strings.Index(text, "(")
	if start < 0 {
		return nil, errors.New("want array ( 'key' => 'value', ... )")
	}
	p := &scanner{s: text, i: start + 1}
	params := make(map[string]string)
	for {
		p.skipSpace()
		if p.consume(")") {
			return params, nil
		}
		key, err := p.phpString()
		if err != nil {
			return nil, fmt.Errorf("array key at byte %d: %v", p.i, err)
		}
		p.skipSpace()
		if !p.consume("=>") {
			return nil, fmt.Errorf(`want "=>" after '%s'`, key)
		}
		p.skipSpace()
		switch {
		case p.consume("NULL"):
		case p.at("'"):
			value, err := p.phpString()
			if err != nil {
				return nil, fmt.Errorf("value of '%s': %v", key, err)
			}
			params[key] = value
		default:
			return nil, fmt.Errorf("value of '%s' is not a string: Alipay sends every parameter as a string", key)
		}
		p.skipSpace()
		p.consume(",")
	}
}
