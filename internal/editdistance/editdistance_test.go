package editdistance_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cib-project/cib/internal/editdistance"
)

func TestLevenshtein(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"kitten", "sitting", 3},
		{"pool-deplyo", "pool-deploy", 2}, {"no-verfy", "no-verify", 1}, {"äb", "ab", 1},
		{"abcdefgh", "ab", 6},
	} {
		assert.Equal(t, c.d, editdistance.Levenshtein(c.a, c.b), "%q %q", c.a, c.b)
		assert.Equal(t, c.d, editdistance.Levenshtein(c.b, c.a), "%q %q", c.b, c.a)
	}
}
