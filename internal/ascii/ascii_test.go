package ascii

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

func TestClasses(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		v, err := strconv.ParseUint(string(b), 16, 8)
		if IsHex(b) != (err == nil) {
			t.Errorf("IsHex(%q) = %v", b, IsHex(b))
		}
		if err == nil && Unhex(b) != byte(v) {
			t.Errorf("Unhex(%q) = %d, want %d", b, Unhex(b), v)
		}
		inAlphabet := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", b) >= 0 || b == byte(base64.StdPadding)
		if IsBase64(b) != inAlphabet {
			t.Errorf("IsBase64(%q) = %v", b, IsBase64(b))
		}
	}
}
