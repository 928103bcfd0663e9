// Package webhook implements Standard Webhooks signing (SPEC §8).
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

const secretPrefix = "whsec_"

// NewSecret returns "whsec_" + base64 of 32 random bytes.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// DecodeSecret returns the HMAC key of a whsec_ secret.
func DecodeSecret(secret string) ([]byte, error) {
	s, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New("webhook: secret lacks the whsec_ prefix")
	}
	return base64.StdEncoding.DecodeString(s)
}

// Sign returns the webhook-signature header value "v1,<base64 HMAC-SHA256(id.timestamp.body)>".
func Sign(key []byte, id string, unix int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}
