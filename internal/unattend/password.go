package unattend

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"math/big"
	"strings"
	"unicode/utf16"
)

// PasswordSource gives the Administrator password. Production uses
// RandomPassword; tests use a fixed one so that golden files are stable.
type PasswordSource interface {
	Password() (string, error)
}

// RandomPassword is a PasswordSource over crypto/rand: 24 characters from
// letters, digits and a few symbols, at least one of each class.
type RandomPassword struct{}

// Password character classes. The symbols are limited to ones that need no
// escaping in XML (no & < > " ') nor in cmd.exe (no % ^ & | < > ! ( )), so
// that the password survives being pasted into either.
const (
	lowers   = "abcdefghijklmnopqrstuvwxyz"
	uppers   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digits   = "0123456789"
	symbols  = "-_.+#@"
	alphabet = lowers + uppers + digits + symbols
	// PasswordLength is the length of a RandomPassword.
	PasswordLength = 24
)

// Password draws PasswordLength characters uniformly from the alphabet and
// draws again until every class is present: rejection keeps the
// distribution uniform over acceptable passwords, and with 24 characters a
// redraw is rare.
func (RandomPassword) Password() (string, error) {
	max := big.NewInt(int64(len(alphabet)))
	for {
		var b strings.Builder
		for range PasswordLength {
			n, err := rand.Int(rand.Reader, max)
			if err != nil {
				return "", err
			}
			b.WriteByte(alphabet[n.Int64()])
		}
		p := b.String()
		if strings.ContainsAny(p, lowers) && strings.ContainsAny(p, uppers) &&
			strings.ContainsAny(p, digits) && strings.ContainsAny(p, symbols) {
			return p, nil
		}
	}
}

// Suffixes Windows setup appends to a password before obfuscating it; the
// suffix is the name of the element that holds it.
const (
	AdministratorPasswordSuffix = "AdministratorPassword"
	AutoLogonSuffix             = "Password"
)

// Obfuscate encodes a password the way Windows setup reads an obfuscated
// one: base64 of the UTF-16LE of password+suffix. It is not encryption,
// which is why the redacted document exists.
func Obfuscate(password, suffix string) string {
	u := utf16.Encode([]rune(password + suffix))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return base64.StdEncoding.EncodeToString(b)
}
