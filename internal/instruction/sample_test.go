package instruction

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sampleResult is a compact, exact rendering of an Instructions value:
// flags space-separated; filters as "type@line=mode:v1,v2" in FilterTypes
// order; diagnostics as "line:severity" in order.
type sampleResult struct {
	flags, filters string
	skip           Flag
	diags          string
}

func summarize(got Instructions) sampleResult {
	var flags, filters, diags []string
	for _, f := range got.Flags {
		flags = append(flags, string(f))
	}
	for _, t := range FilterTypes {
		if f, ok := got.Filters[t]; ok {
			filters = append(filters, fmt.Sprintf("%s@%d=%s:%s", t, f.Line, f.Mode, strings.Join(f.Values, ",")))
		}
	}
	for _, d := range got.Diagnostics {
		diags = append(diags, fmt.Sprintf("%d:%s", d.Line, d.Severity))
	}
	return sampleResult{strings.Join(flags, " "), strings.Join(filters, " "), got.Skip, strings.Join(diags, " ")}
}

// sampleWant holds the exact expected result for messages of the sample,
// keyed by SHA. The comment on each says which real-world habit it covers.
var sampleWant = map[string]sampleResult{
	// Pool and environment filters after prose that starts with "- include".
	"52a1e35c216c": {filters: "pools@11=include:gecko-t/win7-32-azure environments@9=include:staging"},
	// Instructions as the subject line.
	"239fb97bcf93": {filters: "pools@1=include:gecko-t/win10-64-azure environments@3=include:staging"},
	"d4380fd8b2e5": {filters: "pools@1=include:gecko-t/win10-64-azure"},
	// A flag alone.
	"99b40b89489f": {flags: "purge-taskcluster-resources"},
	"066c4876c663": {flags: "pool-deploy"},
	// Flags with a pool filter.
	"d2e07255ca02": {flags: "overwrite-machine-image", filters: "pools@5=include:gecko-t/win7-32-azure"},
	"f6ff28cd6cba": {flags: "overwrite-disk-image", filters: "pools@3=include:gecko-t/win7-32-azure"},
	"af984d4b5939": {flags: "purge-taskcluster-resources", filters: "pools@5=include:gecko-t/win7-32-azure"},
	"2ad9de1cdc5f": {flags: "overwrite-machine-image", filters: "pools@3=include:gecko-t/win10-64-azure environments@7=include:production"},
	// "include:" without a filter type: a near miss, the key is recognised.
	"ac5c7a5b8a23": {filters: "environments@3=include:production", diags: "5:warning"},
	// "include keys:" without a space, known keys.
	"fe472ab56101": {filters: "keys@5=include:win2022-64-2009-l1 environments@3=include:production"},
	"662493e89d4c": {filters: "keys@5=include:win2012r2-64-vs-py2-l1-alpha environments@3=include:production"},
	"54160f294334": {filters: "keys@5=include:win10-64-2009 environments@3=include:production"},
	"1ea43b8fb0c7": {filters: "keys@5=include:trusted-win2012r2-64-l3,trusted-win2012r2-64-vs-l3 environments@3=include:production"},
	// Keys the configuration does not know: errors.
	"0fa6580ca944": {filters: "keys@5=include:win2012r2-64-alpha environments@3=include:production", diags: "5:error"},
	"6e81e178fc0a": {filters: "keys@5=include:win10-64-2004-azure environments@3=include:production", diags: "5:error"},
	"ccb262e622d4": {filters: "keys@5=include:win2022-64-2009-azure-vs-alpha environments@3=include:production", diags: "5:error"},
	"bbf1f5c8e79a": {filters: "keys@5=include:win2012r2-64-alpha2 environments@3=include:production", diags: "5:error"},
	"6d2c7084c69e": {flags: "overwrite-machine-image", filters: "keys@7=include:win10-64-2004-gpu environments@5=include:production", diags: "7:error"},
	"7ceb4b30f910": {flags: "overwrite-machine-image", filters: "keys@7=include:win10-64-2004-gpu-test environments@5=include:production", diags: "7:error"},
	// One unknown key among known ones: one error.
	"6ffd16b73873": {filters: "keys@5=include:win11-64-2009-beta,win11-64-2009-alpha environments@3=include:production", diags: "5:error"},
	// "include-pools:" near miss next to pool-deploy.
	"134ed86d3cc9": {flags: "pool-deploy", diags: "5:warning"},
	// pool-deploy with purge-taskcluster-resources.
	"5e7e0ba52bc0": {flags: "pool-deploy purge-taskcluster-resources", filters: "environments@3=include:staging"},
	"a5bbfcaa94ca": {flags: "pool-deploy purge-taskcluster-resources", filters: "environments@3=include:staging"},
	// pool-deploy with pool filters.
	"c43f981580f4": {flags: "pool-deploy", filters: "pools@3=include:gecko-t/win10-64-azure environments@5=include:production"},
	"a7523fcea22c": {flags: "pool-deploy", filters: "pools@3=include:gecko-t/win10-64-azure"},
	// An exclude pools list.
	"eaf8912321b0": {filters: "pools@5=exclude:gecko-t/win10-64-azure,gecko-t/win10-64-occ-azure,gecko-t/win7-32-azure environments@3=include:staging"},
	// An include pools list.
	"f1b5bb0c69d1": {filters: "pools@3=include:gecko-1/win2012-azure,gecko-3/win2012-azure,relops/win2019-azure"},
	"61bd79aaf7bc": {flags: "overwrite-disk-image purge-taskcluster-resources", filters: "pools@5=include:gecko-1/win2012-azure,gecko-3/win2012-azure"},
	// An unknown pool: warning, kept.
	"e8dc5eef3af3": {flags: "overwrite-machine-image", filters: "pools@3=include:gecko-t/win10-64-2004-gpu-test environments@7=include:production", diags: "3:warning"},
	// "include keys:" then "include pools: northeurope": key+pool error, and a region written as a pool.
	"52fce5c885a9": {filters: "keys@5=include:win11-64-2009-alpha pools@7=include:northeurope environments@3=include:production", diags: "7:error 7:warning"},
	// no-taskcluster-ci and no-ci.
	"0fe24db03bea": {flags: "no-taskcluster-ci"},
	"56af2616c03f": {flags: "no-taskcluster-ci"},
	"8d237621efda": {flags: "no-ci", skip: NoCI},
	// Empty messages.
	"5a949658818c": {},
	"a74d46f4ae32": {},
	"33474c1478f8": {},
	// Prose that mentions instructions, and the dependabot message.
	"f4138c61ea12": {},
	"b1c35785b285": {},
	"077bb432c614": {},
	"0276e79db619": {},
	"3fc9935cd7e2": {},
}

func TestParseSampleMessages(t *testing.T) {
	msgs := loadSample(t)
	checked := 0
	for _, m := range msgs {
		t.Run(m.SHA, func(t *testing.T) {
			var got Instructions
			require.NotPanics(t, func() { got = Parse(m.Message, testVocab) })
			checkWellFormed(t, m.Message, got)
			if want, ok := sampleWant[m.SHA]; ok {
				checked++
				assert.Equal(t, want, summarize(got), "message:\n%s", m.Message)
			}
		})
	}
	assert.Equal(t, len(sampleWant), checked, "every expectation names a message of the sample")
	assert.GreaterOrEqual(t, checked, 30)
}

// TestParseSampleDiagnosticsOnlyOnInstructionLikeLines guards against prose
// triggering warnings anywhere in the sample, not only in the chosen messages.
func TestParseSampleDiagnosticsOnlyOnInstructionLikeLines(t *testing.T) {
	for _, m := range loadSample(t) {
		for _, d := range Parse(m.Message, testVocab).Diagnostics {
			low := strings.ToLower(d.Text)
			assert.True(t, strings.HasPrefix(low, "include") || strings.HasPrefix(low, "exclude"),
				"%s: unexpected diagnostic %v", m.SHA, d)
		}
	}
}

// TestParseSampleMessagesWithCRLF checks that the line ending changes nothing.
func TestParseSampleMessagesWithCRLF(t *testing.T) {
	for _, m := range loadSample(t) {
		want := Parse(m.Message, testVocab)
		for _, ending := range []string{"\r\n", "\r"} {
			msg := strings.ReplaceAll(m.Message, "\n", ending)
			got := Parse(msg, testVocab)
			checkWellFormed(t, msg, got)
			assert.Equal(t, want, got, "%s with %q", m.SHA, ending)
		}
	}
}
