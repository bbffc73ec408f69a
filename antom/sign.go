package antom

import (
	"crypto"
	"crypto/rsa"
	"errors"
)

// Sign signs a request as Antom does and returns the Signature header value,
// algorithm=RSA256,keyVersion=1,signature=<percent-encoded base64>. It is
// for tests and tools (a merchant's own test notifications); Antom's
// private key is Antom's. The arguments are those of Request; the signature
// covers them as given.
func Sign(key *rsa.PrivateKey, method, uri, clientID, requestTime string, body []byte) (string, error) {
	if key == nil {
		return "", errors.New("antom: no private key")
	}
	req := Request{Method: method, URI: uri, ClientID: clientID, RequestTime: requestTime, Body: body}
	digest := req.digest()
	// PKCS #1 v1.5 signing is deterministic: the same request gives the
	// same header (crypto/rsa ignores the random source).
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return SignatureHeader{Algorithm: AlgorithmRSA256, KeyVersion: 1, Signature: EncodeSignature(sig)}.String(), nil
}
