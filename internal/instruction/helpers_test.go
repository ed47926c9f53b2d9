package instruction

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testVocab is the configuration the tests parse against: the names the seed
// project really had, so that the sample messages hit real and unknown names.
var testVocab = Vocabulary{
	Keys: []string{
		"win10-64", "win10-64-gpu", "win10-64-occ", "win7-32", "win7-32-gpu", "win2012", "win2019",
		"trusted-win2012r2-64-l3", "trusted-win2012r2-64-vs-l3", "trusted-win2012r2-64-vs-py2-l3",
		"trusted-win2022-64-2009-l3", "win10-64-2004-alpha", "win10-64-2009-alpha", "win10-64-2009",
		"win11-64-2009-alpha", "win11-64-2009-tc-alpha", "win11-64-2009", "win2012r2-64-l1-alpha",
		"win2012r2-64-l1", "win2012r2-64-vs-l1-alpha", "win2012r2-64-vs-l1", "win2012r2-64-vs-py2-l1-alpha",
		"win2012r2-64-vs-py2-l1", "win2022-64-2009-alpha", "win2022-64-2009-l1", "win2022-64-2009-rd-alpha",
		"win2022-64-2009-vs-alpha",
	},
	Pools: []string{
		"gecko-t/win10-64-azure", "gecko-t/win10-64-gpu-azure", "gecko-t/win10-64-occ-azure",
		"gecko-t/win7-32-azure", "gecko-t/win7-32-gpu-azure", "gecko-1/win2012-azure",
		"gecko-3/win2012-azure", "relops/win2019-azure",
	},
	Regions: []string{
		"canadacentral", "centralindia", "centralus", "eastus", "eastus2", "northcentralus", "northeurope",
		"southcentralus", "southindia", "uksouth", "westus", "westus2", "westus3",
	},
	Environments: []string{"production", "staging"},
}

type sampleMessage struct {
	SHA     string `json:"sha"`
	Message string `json:"message"`
}

func loadSample(tb testing.TB) []sampleMessage {
	tb.Helper()
	b, err := os.ReadFile("testdata/commit-messages-sample.json")
	require.NoError(tb, err)
	var msgs []sampleMessage
	require.NoError(tb, json.Unmarshal(b, &msgs))
	require.Len(tb, msgs, 120)
	return msgs
}

// splitLines is an implementation of line splitting independent of the
// parser's, so the well-formedness checks do not trust the code under test.
func splitLines(s string) []string {
	return strings.Split(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s), "\n")
}

// checkWellFormed asserts the invariants every result must hold, whatever the input.
func checkWellFormed(t testing.TB, message string, got Instructions) {
	t.Helper()
	lines := splitLines(strings.TrimPrefix(message, "\ufeff"))
	if !assert.NotNil(t, got.Flags) || !assert.NotNil(t, got.Filters) || !assert.NotNil(t, got.Diagnostics) {
		return
	}
	for i := 1; i < len(got.Flags); i++ {
		assert.Less(t, got.Flags[i-1], got.Flags[i], "flags sorted and unique")
	}
	for _, f := range got.Flags {
		n, ok := got.FlagLines[f]
		if assert.True(t, ok, "flag line of %s", f) && assert.True(t, n >= 1 && n <= len(lines)) {
			assert.Equal(t, string(f), strings.ToLower(strings.TrimSpace(lines[n-1])))
		}
	}
	assert.Len(t, got.FlagLines, len(got.Flags))
	if got.Skip != "" {
		assert.Contains(t, []Flag{NoCI, NoActionsCI}, got.Skip)
		assert.True(t, got.Has(got.Skip))
	}
	for typ, f := range got.Filters {
		assert.Contains(t, FilterTypes, typ)
		assert.Contains(t, []Mode{Include, Exclude}, f.Mode)
		assert.NotNil(t, f.Values)
		if assert.True(t, f.Line >= 1 && f.Line <= len(lines), "filter line %d in range", f.Line) {
			assert.True(t, strings.HasPrefix(strings.ToLower(strings.TrimSpace(lines[f.Line-1])), string(f.Mode)))
		}
		seen := map[string]bool{}
		for _, v := range f.Values {
			assert.False(t, seen[v], "duplicate value %q", v)
			seen[v] = true
			assert.NotEmpty(t, v)
			assert.Equal(t, strings.ToLower(v), v)
		}
	}
	for i, d := range got.Diagnostics {
		if !assert.True(t, d.Line >= 1 && d.Line <= len(lines), "diagnostic line %d in range 1..%d", d.Line, len(lines)) {
			continue
		}
		assert.Equal(t, strings.TrimSpace(lines[d.Line-1]), d.Text)
		assert.NotEmpty(t, d.Text)
		assert.Contains(t, []Severity{Error, Warning}, d.Severity)
		assert.NotEmpty(t, d.Message)
		assert.Empty(t, d.Input)
		if i > 0 {
			p := got.Diagnostics[i-1]
			assert.True(t, p.Line < d.Line || (p.Line == d.Line && (p.Severity == d.Severity || p.Severity == Error)),
				"diagnostics sorted: %v before %v", p, d)
		}
	}
}

// wantDiag describes an expected diagnostic: its line, severity and a part of
// its message that proves the right rule fired.
type wantDiag struct {
	line int
	sev  Severity
	msg  string
}

func e(line int, msg string) wantDiag { return wantDiag{line, Error, msg} }
func w(line int, msg string) wantDiag { return wantDiag{line, Warning, msg} }

func assertDiags(t *testing.T, message string, want []wantDiag, got []Diagnostic) {
	t.Helper()
	lines := splitLines(message)
	if !assert.Len(t, got, len(want), "diagnostics: %v", got) {
		return
	}
	for i, wd := range want {
		g := got[i]
		assert.Equal(t, wd.line, g.Line, "line of %v", g)
		assert.Equal(t, wd.sev, g.Severity, "severity of %v", g)
		assert.Contains(t, g.Message, wd.msg)
		assert.Equal(t, strings.TrimSpace(lines[g.Line-1]), g.Text)
	}
}
