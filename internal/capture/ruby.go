package capture

import (
	"errors"
	"fmt"
)

// parseRubyHash reads Ruby's Hash#inspect of string keys and values, as
// Rails logs the parameters: {"k"=>"v", "k2"=>nil} (and Ruby 3.4's
// {"k" => "v"}).
func parseRubyHash(text string) (map[string]string, error) {
	p := &scanner{s: text}
	if !p.consume("{") {
		return nil, errors.New(`want a hash such as {"key"=>"value", ...}`)
	}
	params := make(map[string]string)
	p.skipSpace()
	if p.consume("}") {
		return params, nil
	}
	for {
		p.skipSpace()
		key, err := p.rubyString()
		if err != nil {
			return nil, fmt.Errorf("hash key at byte %d: %v", p.i, err)
		}
		p.skipSpace()
		if !p.consume("=>") {
			return nil, fmt.Errorf(`hash: want "=>" after %q at byte %d`, key, p.i)
		}
		p.skipSpace()
		switch {
		case p.consume("nil"):
		case p.at(`"`):
			value, err := p.rubyString()
			if err != nil {
				return nil, fmt.Errorf("value of %q: %v", key, err)
			}
			params[key] = value
		default:
			return nil, fmt.Errorf("value of %q is not a string: Alipay sends every parameter as a string", key)
		}
		p.skipSpace()
		if p.consume("}") {
			return params, nil
		}
		if !p.consume(",") {
			return nil, fmt.Errorf(`hash: want "," or "}" after the value of %q at byte %d`, key, p.i)
		}
	}
}
