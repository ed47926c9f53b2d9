// Package secret keeps secrets out of what cib prints: an error whose
// message would show one is given a message that does not.
package secret

import "strings"

// Redact returns err with every occurrence of secret in its message
// replaced by [REDACTED]; the result still unwraps to err, so errors.Is and
// errors.As classify it as before. An empty secret, or a message that does
// not show it, leaves err as it is.
func Redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), secret, "[REDACTED]"), err: err}
}

// redacted is an error whose message hides a secret.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
