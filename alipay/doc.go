// Package alipay verifies Alipay's asynchronous notifications (the
// notify_url POSTs, and return_url redirects) byte for byte like Alipay's
// own SDKs, and refuses every notification that could be read in more than
// one way. It has no Caddy dependency: any Go program can use it.
//
// A notification is read once with ParseNotification, verified with a
// KeyRing of Alipay's public keys (or an MD5Key for legacy mapi
// notifications), checked with CheckNotification when it must be an
// asynchronous notification, and then read with Get and Params, which
// return only what the signature covers:
//
//	ring, err := alipay.NewKeyRing(alipayPublicKey) // one line of base64, PEM, or a certificate
//	n, err := alipay.ParseNotification(body)        // the raw POST body
//	match, err := ring.Verify(n)                    // signature, and one reading only
//	err = n.CheckNotification()                     // notify_id and notify_time, signed
//	orderID := n.Get("out_trade_no")
//
// Errors match ErrMalformed (answer 400: it cannot be read in exactly one
// way) or ErrNotVerified (403), and a specific sentinel (ErrAmbiguous,
// ErrSignatureMismatch...) with errors.Is. The checks the caller still owes:
// that app_id and seller_id are its own, the age (SentAt), and, upstream,
// that out_trade_no and total_amount match an order of its own.
//
// Legacy mapi notifications name no charset and are often GBK: read them
// with a Parser whose DefaultCharset is "gbk" instead of ParseNotification.
//
// Sign plays Alipay with a test key, for tests and tools.
package alipay
