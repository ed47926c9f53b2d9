package pool

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Hawk (version 1, header scheme) is how Taskcluster authenticates a
// request made with permanent credentials: the client ID is the Hawk id,
// the access token the HMAC-SHA256 key. The MAC covers a normalized string
// of the timestamp, a nonce, the method, the request URI, host, port and
// the payload's hash, so neither the token nor a replayable secret crosses
// the wire.

// hawkNonceBytes is the nonce's entropy; the nonce only has to be unique
// per timestamp and key.
const hawkNonceBytes = 9

// hawkPayloadHash is the base64 SHA-256 of a request body as Hawk hashes
// it: the content type without parameters, lower case, framed by the
// payload header.
func hawkPayloadHash(contentType string, payload []byte) string {
	ct, _, _ := strings.Cut(contentType, ";")
	h := sha256.New()
	fmt.Fprintf(h, "hawk.1.payload\n%s\n", strings.ToLower(strings.TrimSpace(ct)))
	h.Write(payload)
	h.Write([]byte("\n"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// hawkArtifacts are the values a header MAC covers.
type hawkArtifacts struct {
	ts, nonce, method, resource, host, port, hash, ext string
}

// normalized is the string the MAC is computed over.
func (a hawkArtifacts) normalized() string {
	var b strings.Builder
	b.WriteString("hawk.1.header\n")
	for _, s := range []string{a.ts, a.nonce, strings.ToUpper(a.method), a.resource, strings.ToLower(a.host), a.port, a.hash} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	// ext escapes backslashes and new lines so it cannot forge a field.
	b.WriteString(strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(a.ext))
	b.WriteByte('\n')
	return b.String()
}

func (a hawkArtifacts) mac(key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(a.normalized()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// signHawk sets req's Authorization header to a Hawk header for id and key
// at time now. payload is the request body (nil for none: then no payload
// hash is sent, as Taskcluster's clients do for GET).
func signHawk(req *http.Request, id, key string, payload []byte, now time.Time) error {
	nonce := make([]byte, hawkNonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("hawk nonce: %w", err)
	}
	port := req.URL.Port()
	if port == "" {
		port = "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
	}
	a := hawkArtifacts{
		ts:       strconv.FormatInt(now.Unix(), 10),
		nonce:    base64.RawURLEncoding.EncodeToString(nonce),
		method:   req.Method,
		resource: req.URL.RequestURI(),
		host:     req.URL.Hostname(),
		port:     port,
	}
	if payload != nil {
		a.hash = hawkPayloadHash(req.Header.Get("Content-Type"), payload)
	}
	h := fmt.Sprintf(`Hawk id="%s", ts="%s", nonce="%s"`, id, a.ts, a.nonce)
	if a.hash != "" {
		h += fmt.Sprintf(`, hash="%s"`, a.hash)
	}
	h += fmt.Sprintf(`, mac="%s"`, a.mac(key))
	req.Header.Set("Authorization", h)
	return nil
}
