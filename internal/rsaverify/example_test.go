package rsaverify_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/rsaverify"
)

// Alipay's domestic notifications are signed over one of two strings:
// V1 leaves sign_type out, V2 keeps it. One Recover serves both.
func Example() {
	priv, err := rsa.GenerateKey(rand.Reader, 2048) // Alipay's key
	if err != nil {
		panic(err)
	}
	v1 := []byte("notify_id=1&total_amount=9.99")
	v2 := []byte("notify_id=1&sign_type=RSA2&total_amount=9.99")
	d2 := sha256.Sum256(v2)
	sig, _ := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d2[:])

	// Once, when the configuration loads.
	key, err := rsaverify.New(&priv.PublicKey)
	if err != nil {
		panic(err)
	}

	// Per notification: one exponentiation, then one comparison per
	// signed string.
	var buf [512]byte
	em, ok := key.Recover(buf[:0], sig)
	if !ok {
		fmt.Println("malformed signature")
		return
	}
	d1 := sha256.Sum256(v1)
	switch {
	case rsaverify.MatchPKCS1v15(em, crypto.SHA256, d1[:]):
		fmt.Println("verified: V1")
	case rsaverify.MatchPKCS1v15(em, crypto.SHA256, d2[:]):
		fmt.Println("verified: V2")
	default:
		fmt.Println("not verified")
	}
	// Output: verified: V2
}
