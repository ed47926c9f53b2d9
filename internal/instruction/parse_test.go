package instruction

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func inc(line int, values ...string) Filter {
	return Filter{Mode: Include, Values: append([]string{}, values...), Line: line}
}

func exc(line int, values ...string) Filter {
	return Filter{Mode: Exclude, Values: append([]string{}, values...), Line: line}
}

type parseCase struct {
	name    string
	message string
	flags   []Flag
	filters map[FilterType]Filter
	skip    Flag
	diags   []wantDiag
}

func runParseCases(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Parse(tc.message, testVocab)
			checkWellFormed(t, tc.message, got)
			flags := tc.flags
			if flags == nil {
				flags = []Flag{}
			}
			filters := tc.filters
			if filters == nil {
				filters = map[FilterType]Filter{}
			}
			assert.Equal(t, flags, got.Flags, "flags")
			assert.Equal(t, filters, got.Filters, "filters")
			assert.Equal(t, tc.skip, got.Skip, "skip")
			assertDiags(t, tc.message, tc.diags, got.Diagnostics)
		})
	}
}

func TestParseFlags(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "subject line is a candidate", message: "pool-deploy\n\nbody text", flags: []Flag{PoolDeploy}},
		{name: "mixed case", message: "fix\n\nPool-Deploy\nNO-VERIFY", flags: []Flag{NoVerify, PoolDeploy}},
		{name: "surrounding white space", message: "fix\n \t disable-cleanup \t ", flags: []Flag{DisableCleanup}},
		{name: "repeated flag has no further effect", message: "pool-deploy\npool-deploy\nPOOL-DEPLOY", flags: []Flag{PoolDeploy}},
		{
			name:    "flags are sorted whatever the order written",
			message: "no-verify\nenable-snapshot-copy\ndisable-cleanup\npurge-taskcluster-resources\nno-travis-ci",
			flags:   []Flag{DisableCleanup, EnableSnapshotCopy, NoTravisCI, NoVerify, PurgeTaskclusterResources},
		},
		{name: "CRLF line endings", message: "fix\r\n\r\npool-deploy\r\ninclude pools: gecko-t/win7-32-azure\r\n",
			flags: []Flag{PoolDeploy}, filters: map[FilterType]Filter{Pools: inc(4, "gecko-t/win7-32-azure")}},
		{name: "CR line endings", message: "fix\r\rpool-deploy\rinclude pools: gecko-t/win7-32-azure\r",
			flags: []Flag{PoolDeploy}, filters: map[FilterType]Filter{Pools: inc(4, "gecko-t/win7-32-azure")}},
		{name: "mixed line endings", message: "a\r\nb\rc\npool-deploy\r\n\rinclude keys: bogus",
			flags: []Flag{PoolDeploy}, filters: map[FilterType]Filter{Keys: inc(6, "bogus")},
			diags: []wantDiag{e(6, `unknown key "bogus"`)}},
		{name: "byte order mark", message: "\ufeffno-verify", flags: []Flag{NoVerify}},
		{name: "empty message", message: ""},
		{name: "blank lines only", message: "\n \r\n\t\r"},
	})
}

func TestParseEveryFlag(t *testing.T) {
	require.Len(t, AllFlags, 11)
	for _, f := range AllFlags {
		t.Run(string(f), func(t *testing.T) {
			msg := "subject\n\n" + strings.ToUpper(string(f))
			got := Parse(msg, testVocab)
			checkWellFormed(t, msg, got)
			assert.Equal(t, []Flag{f}, got.Flags)
			assert.Equal(t, map[Flag]int{f: 3}, got.FlagLines)
			assert.True(t, got.Has(f))
			assert.Empty(t, got.Diagnostics)
			if f == NoCI || f == NoActionsCI {
				assert.Equal(t, f, got.Skip)
			} else {
				assert.Empty(t, got.Skip)
			}
		})
	}
}

func TestParseFilters(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "no space after the colon", message: "include keys:win10-64",
			filters: map[FilterType]Filter{Keys: inc(1, "win10-64")}},
		{name: "mixed case and spaces", message: "INCLUDE   Keys :  Win10-64 ,WIN7-32",
			filters: map[FilterType]Filter{Keys: inc(1, "win10-64", "win7-32")}},
		{name: "tabs between the words", message: "exclude\tpools\t:\tgecko-t/win7-32-azure",
			filters: map[FilterType]Filter{Pools: exc(1, "gecko-t/win7-32-azure")}},
		{name: "duplicates dropped, first order kept", message: "include keys: win7-32, win10-64, WIN7-32, win10-64",
			filters: map[FilterType]Filter{Keys: inc(1, "win7-32", "win10-64")}},
		{name: "duplicates dropped in a long list", message: "include keys: " + strings.Join(testVocab.Keys, ", ") + ", " + strings.Join(testVocab.Keys, ",") + ", WIN7-32",
			filters: map[FilterType]Filter{Keys: inc(1, testVocab.Keys...)}},
		{name: "empty items dropped", message: "include environments: ,staging,, ,production,",
			filters: map[FilterType]Filter{Environments: inc(1, "staging", "production")}},
		{name: "every filter type", message: "fix\ninclude keys: win7-32\ninclude regions: westus\nexclude environments: staging",
			filters: map[FilterType]Filter{Keys: inc(2, "win7-32"), Regions: inc(3, "westus"), Environments: exc(4, "staging")}},
		{name: "yaml suffix dropped with a warning", message: "include keys: win2012.yaml, win2019.YML",
			filters: map[FilterType]Filter{Keys: inc(1, "win2012", "win2019")},
			diags:   []wantDiag{w(1, "without its .yaml suffix: write win2012"), w(1, "without its .yml suffix: write win2019")}},
		{name: "yaml suffix and the bare name are one value", message: "include keys: win2012.yaml, win2012",
			filters: map[FilterType]Filter{Keys: inc(1, "win2012")},
			diags:   []wantDiag{w(1, ".yaml suffix")}},
		{name: "regions lose white space and case", message: "include regions: North Central US, West US 2,northcentralus",
			filters: map[FilterType]Filter{Regions: inc(1, "northcentralus", "westus2")}},
		{name: "keys separated by spaces", message: "test\n\ninclude keys:win10-64-2004 win10-64-2004-gpu",
			filters: map[FilterType]Filter{Keys: inc(3, "win10-64-2004 win10-64-2004-gpu")},
			diags:   []wantDiag{e(3, "separate values with commas (win10-64-2004, win10-64-2004-gpu)")}},
		{name: "pools separated by spaces", message: "include pools: gecko-t/win7-32-azure gecko-t/win10-64-azure",
			filters: map[FilterType]Filter{Pools: inc(1, "gecko-t/win7-32-azure gecko-t/win10-64-azure")},
			diags:   []wantDiag{e(1, `is not one pool: separate values with commas`)}},
		{name: "environments separated by spaces", message: "include environments: production staging",
			filters: map[FilterType]Filter{Environments: inc(1, "production staging")},
			diags:   []wantDiag{e(1, "is not one environment: separate values with commas")}},
		{name: "regions separated by spaces", message: "include regions: eastus westus",
			filters: map[FilterType]Filter{Regions: inc(1, "eastuswestus")},
			diags:   []wantDiag{w(1, `unknown region "eastuswestus" matches nothing: separate values with commas (eastus, westus)`)}},
		{name: "no values", message: "fix\ninclude keys:",
			filters: map[FilterType]Filter{Keys: inc(2)},
			diags:   []wantDiag{e(2, "no values; list them separated by commas, or delete the line")}},
		{name: "only commas", message: "exclude regions: , ,",
			filters: map[FilterType]Filter{Regions: exc(1)},
			diags:   []wantDiag{e(1, "no values")}},
	})
}

func TestParseUnknownValues(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "unknown key within two edits", message: "include keys: win7-23",
			filters: map[FilterType]Filter{Keys: inc(1, "win7-23")},
			diags:   []wantDiag{e(1, `unknown key "win7-23": did you mean "win7-32"?`)}},
		{name: "unknown key sharing a prefix", message: "include keys:win2012r2-64-alpha",
			filters: map[FilterType]Filter{Keys: inc(1, "win2012r2-64-alpha")},
			diags:   []wantDiag{e(1, `did you mean "win2012r2-64-l1-alpha"?`)}},
		{name: "unknown key far from everything", message: "include keys: macos",
			filters: map[FilterType]Filter{Keys: inc(1, "macos")},
			diags:   []wantDiag{e(1, `unknown key "macos": use a key defined in the configuration`)}},
		{name: "known and unknown keys", message: "include keys: win7-32, bogus-key, win10-64",
			filters: map[FilterType]Filter{Keys: inc(1, "win7-32", "bogus-key", "win10-64")},
			diags:   []wantDiag{e(1, `unknown key "bogus-key"`)}},
		{name: "unknown environment prefix", message: "include environments: prod",
			filters: map[FilterType]Filter{Environments: inc(1, "prod")},
			diags:   []wantDiag{e(1, `unknown environment "prod": did you mean "production"?`)}},
		{name: "unknown environment lists the known ones", message: "include environments: qa",
			filters: map[FilterType]Filter{Environments: inc(1, "qa")},
			diags:   []wantDiag{e(1, `unknown environment "qa": use one of production, staging`)}},
		{name: "unknown pool is a warning", message: "include pools: gecko-t/win11-64-azure",
			filters: map[FilterType]Filter{Pools: inc(1, "gecko-t/win11-64-azure")},
			diags:   []wantDiag{w(1, `unknown pool "gecko-t/win11-64-azure" matches nothing: did you mean "gecko-t/win10-64-azure"?`)}},
		{name: "pool none builds nothing", message: "purge\n\ninclude pools: none",
			filters: map[FilterType]Filter{Pools: inc(3, "none")},
			diags:   []wantDiag{w(3, `pools are written domain/variant, e.g. gecko-t/win10-64-azure; "none" matches nothing`)}},
		{name: "pool with two slashes", message: "include pools: gecko-t/win7/32",
			filters: map[FilterType]Filter{Pools: inc(1, "gecko-t/win7/32")},
			diags:   []wantDiag{w(1, "domain/variant")}},
		{name: "pool with an empty side", message: "include pools: gecko-t/",
			filters: map[FilterType]Filter{Pools: inc(1, "gecko-t/")},
			diags:   []wantDiag{w(1, "domain/variant")}},
		{name: "key written as a pool", message: "include pools: win7-32",
			filters: map[FilterType]Filter{Pools: inc(1, "win7-32")},
			diags:   []wantDiag{w(1, `win7-32 is a key: did you mean "include keys: win7-32"?`)}},
		{name: "unknown region is a warning", message: "include regions: wetsus, mars",
			filters: map[FilterType]Filter{Regions: inc(1, "wetsus", "mars")},
			diags: []wantDiag{w(1, `unknown region "wetsus" matches nothing: did you mean "westus"?`),
				w(1, `unknown region "mars" matches nothing: use a region defined in the configuration`)}},
		{name: "errors sort before warnings on a line", message: "include keys: win2012.yaml, bogus",
			filters: map[FilterType]Filter{Keys: inc(1, "win2012", "bogus")},
			diags:   []wantDiag{e(1, `unknown key "bogus"`), w(1, ".yaml suffix")}},
	})
}

func TestParseCombinations(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "1: no-ci overrides but everything is still diagnosed", message: "docs\n\nno-ci\ninclude keys: bogus\npool-deploy\noverwrite-disk-image",
			flags: []Flag{NoCI, OverwriteDiskImage, PoolDeploy}, skip: NoCI,
			filters: map[FilterType]Filter{Keys: inc(4, "bogus")},
			diags:   []wantDiag{e(4, "unknown key"), e(6, "pool-deploy skips image builds; overwrite-disk-image asks to rebuild them: keep one (see line 5)")}},
		{name: "1: the first of no-actions-ci and no-ci is the skip", message: "x\nno-actions-ci\nno-ci",
			flags: []Flag{NoActionsCI, NoCI}, skip: NoActionsCI},
		{name: "1: no-ci after no-actions-ci in reverse", message: "NO-CI\nno-actions-ci",
			flags: []Flag{NoActionsCI, NoCI}, skip: NoCI},
		{name: "2: pool-deploy with pool, region and environment filters",
			message: "pool-deploy\ninclude pools: gecko-t/win7-32-gpu-azure, gecko-t/win10-64-gpu-azure\ninclude regions: northcentralus, westus2, centralus\ninclude environments: staging",
			flags:   []Flag{PoolDeploy},
			filters: map[FilterType]Filter{
				Pools:        inc(2, "gecko-t/win7-32-gpu-azure", "gecko-t/win10-64-gpu-azure"),
				Regions:      inc(3, "northcentralus", "westus2", "centralus"),
				Environments: inc(4, "staging"),
			}},
		{name: "2: pool-deploy with a key filter", message: "pool-deploy\ninclude keys: win7-32",
			flags: []Flag{PoolDeploy}, filters: map[FilterType]Filter{Keys: inc(2, "win7-32")}},
		{name: "3: key then pool", message: "x\ninclude keys: win7-32\n\ninclude pools: gecko-t/win7-32-azure",
			filters: map[FilterType]Filter{Keys: inc(2, "win7-32"), Pools: inc(4, "gecko-t/win7-32-azure")},
			diags:   []wantDiag{e(4, "key and pool filters cannot be combined (line 2 filters keys)")}},
		{name: "3: pool then key, exclude counts too", message: "exclude pools: gecko-t/win7-32-azure\ninclude keys: win7-32",
			filters: map[FilterType]Filter{Keys: inc(2, "win7-32"), Pools: exc(1, "gecko-t/win7-32-azure")},
			diags:   []wantDiag{e(2, "key and pool filters cannot be combined (line 1 filters pools)")}},
		{name: "4: include and exclude of one type", message: "include keys: win7-32\nexclude keys: win10-64",
			filters: map[FilterType]Filter{Keys: inc(1, "win7-32")},
			diags:   []wantDiag{e(2, "exclude keys contradicts include keys (see line 1): keep one of the two")}},
		{name: "4: exclude then include", message: "exclude regions: westus\nx\ninclude regions: eastus",
			filters: map[FilterType]Filter{Regions: exc(1, "westus")},
			diags:   []wantDiag{e(3, "include regions contradicts exclude regions (see line 1)")}},
		{name: "5: the same filter twice", message: "include environments: staging\ninclude environments: production",
			filters: map[FilterType]Filter{Environments: inc(1, "staging")},
			diags:   []wantDiag{e(2, "include environments is already given (see line 1): put all values on that line")}},
		{name: "5: three times names the first each time", message: "include pools: gecko-t/win7-32-azure\ninclude pools: none\ninclude pools: gecko-1/win2012-azure",
			filters: map[FilterType]Filter{Pools: inc(1, "gecko-t/win7-32-azure")},
			diags: []wantDiag{e(2, "(see line 1)"), w(2, "domain/variant"),
				e(3, "(see line 1)")}},
		{name: "5: a duplicate does not also report key and pool", message: "include keys: win7-32\ninclude pools: gecko-t/win7-32-azure\ninclude pools: gecko-t/win10-64-azure",
			filters: map[FilterType]Filter{Keys: inc(1, "win7-32"), Pools: inc(2, "gecko-t/win7-32-azure")},
			diags:   []wantDiag{e(2, "key and pool filters"), e(3, "already given (see line 2)")}},
		{name: "6: key, region and environment filters combine", message: "include keys: win7-32\nexclude regions: westus\ninclude environments: staging",
			filters: map[FilterType]Filter{Keys: inc(1, "win7-32"), Regions: exc(2, "westus"), Environments: inc(3, "staging")}},
		{name: "6: pool, region and environment filters combine", message: "include pools: gecko-t/win7-32-azure\nexclude regions: westus\nexclude environments: staging",
			filters: map[FilterType]Filter{Pools: inc(1, "gecko-t/win7-32-azure"), Regions: exc(2, "westus"), Environments: exc(3, "staging")}},
		{name: "pool-deploy then overwrite-machine-image", message: "x\npool-deploy\noverwrite-machine-image",
			flags: []Flag{OverwriteMachineImage, PoolDeploy},
			diags: []wantDiag{e(3, "pool-deploy skips image builds; overwrite-machine-image asks to rebuild them: keep one (see line 2)")}},
		{name: "overwrite-disk-image then pool-deploy", message: "overwrite-disk-image\n\npool-deploy",
			flags: []Flag{OverwriteDiskImage, PoolDeploy},
			diags: []wantDiag{e(3, "overwrite-disk-image asks to rebuild them: keep one (see line 1)")}},
		{name: "pool-deploy with both overwrites", message: "pool-deploy\noverwrite-disk-image\noverwrite-machine-image",
			flags: []Flag{OverwriteDiskImage, OverwriteMachineImage, PoolDeploy},
			diags: []wantDiag{e(2, "overwrite-disk-image"), e(3, "overwrite-machine-image")}},
		{name: "no-taskcluster-ci makes build flags useless",
			message: "no-taskcluster-ci\nno-verify\noverwrite-disk-image\noverwrite-machine-image\ndisable-cleanup\npurge-taskcluster-resources",
			flags:   []Flag{DisableCleanup, NoTaskclusterCI, NoVerify, OverwriteDiskImage, OverwriteMachineImage, PurgeTaskclusterResources},
			diags: []wantDiag{
				w(2, "no-verify has no effect: no-taskcluster-ci skips every image-build, pool and verify job (see line 1)"),
				w(3, "overwrite-disk-image has no effect"),
				w(4, "overwrite-machine-image has no effect"),
			}},
		{name: "no-taskcluster-ci written after pool-deploy", message: "pool-deploy\nno-taskcluster-ci",
			flags: []Flag{NoTaskclusterCI, PoolDeploy},
			diags: []wantDiag{w(1, "pool-deploy has no effect: no-taskcluster-ci skips every image-build, pool and verify job (see line 2)")}},
		{name: "no-travis-ci combines with anything", message: "no-travis-ci\npool-deploy\ninclude pools: gecko-t/win7-32-azure",
			flags: []Flag{NoTravisCI, PoolDeploy}, filters: map[FilterType]Filter{Pools: inc(3, "gecko-t/win7-32-azure")}},
	})
}

func TestParseNearMisses(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "singular key", message: "fix\ninclude key: win7-32",
			diags: []wantDiag{w(2, `not a filter: did you mean "include keys: win7-32"?`)}},
		{name: "singular pool", message: "exclude pool: gecko-t/win7-32-azure",
			diags: []wantDiag{w(1, `did you mean "exclude pools: gecko-t/win7-32-azure"?`)}},
		{name: "hyphen between the words (history)", message: "pool-deploy\n\ninclude-pools: gecko-t/win7-32-azure", flags: []Flag{PoolDeploy},
			diags: []wantDiag{w(3, `did you mean "include pools: gecko-t/win7-32-azure"?`)}},
		{name: "underscore between the words", message: "Exclude_Regions: westus",
			diags: []wantDiag{w(1, `did you mean "exclude regions: westus"?`)}},
		{name: "no space between the words", message: "includekeys:win7-32",
			diags: []wantDiag{w(1, `did you mean "include keys: win7-32"?`)}},
		{name: "includes", message: "includes keys: win7-32",
			diags: []wantDiag{w(1, `did you mean "include keys: win7-32"?`)}},
		{name: "type with a suffix", message: "include keysets: win7-32",
			diags: []wantDiag{w(1, `did you mean "include keys: win7-32"?`)}},
		{name: "truncated type", message: "include env: staging",
			diags: []wantDiag{w(1, `did you mean "include environments: staging"?`)}},
		{name: "truncated plural", message: "include envs: staging",
			diags: []wantDiag{w(1, `did you mean "include environments: staging"?`)}},
		{name: "singular environment", message: "exclude environment: staging",
			diags: []wantDiag{w(1, `did you mean "exclude environments: staging"?`)}},
		{name: "misspelt type", message: "Include Regoins: westus",
			diags: []wantDiag{w(1, `did you mean "include regions: westus"?`)}},
		{name: "missing type with a known key (history)", message: "test\n\ninclude environments: production\n\ninclude: win2012r2-64-l1-alpha",
			filters: map[FilterType]Filter{Environments: inc(3, "production")},
			diags:   []wantDiag{w(5, `the filter type is missing: did you mean "include keys: win2012r2-64-l1-alpha"?`)}},
		{name: "missing type with known pools", message: "exclude: gecko-t/win7-32-azure, gecko-1/win2012-azure",
			diags: []wantDiag{w(1, `did you mean "exclude pools: gecko-t/win7-32-azure, gecko-1/win2012-azure"?`)}},
		{name: "missing type with unknown values", message: "include: something",
			diags: []wantDiag{w(1, "the filter type is missing: name it, as in include keys:, include pools:, include regions: or include environments:")}},
		{name: "missing colon", message: "include keys win10-64, win7-32",
			diags: []wantDiag{w(1, `missing ':' after include keys: write "include keys: win10-64, win7-32"`)}},
		{name: "missing colon and values", message: "exclude pools",
			diags: []wantDiag{w(1, "not a filter: write exclude pools: followed by values separated by commas")}},
		{name: "flag with a colon and value", message: "pool-deploy: gecko-t/win10-64-azure",
			diags: []wantDiag{w(1, "a flag stands alone on its line: write pool-deploy by itself")}},
		{name: "flag with a value", message: "x\nPool-Deploy gecko-t/win10-64-azure",
			diags: []wantDiag{w(2, "a flag stands alone on its line")}},
		{name: "flag with a bare colon", message: "no-ci:",
			diags: []wantDiag{w(1, "write no-ci by itself")}},
		{name: "flag spelt with a space", message: "no ci", diags: []wantDiag{w(1, "not a flag: did you mean no-ci?")}},
		{name: "flag spelt with an underscore", message: "no_ci", diags: []wantDiag{w(1, "did you mean no-ci?")}},
		{name: "flag spelt with spaces", message: "pool deploy", diags: []wantDiag{w(1, "did you mean pool-deploy?")}},
		{name: "flag in title case", message: "Overwrite Machine Image", diags: []wantDiag{w(1, "did you mean overwrite-machine-image?")}},
		{name: "flag with doubled hyphens", message: "purge--taskcluster__resources", diags: []wantDiag{w(1, "did you mean purge-taskcluster-resources?")}},
		{name: "flag with an extra letter", message: "overwrite-disk-images", diags: []wantDiag{w(1, "did you mean overwrite-disk-image?")}},
		{name: "flag with swapped letters", message: "pool-deplyo", diags: []wantDiag{w(1, "did you mean pool-deploy?")}},
		{name: "flag with a missing letter", message: "no-verfy", diags: []wantDiag{w(1, "did you mean no-verify?")}},
		{name: "flag with trailing punctuation", message: "no-ci.", diags: []wantDiag{w(1, "did you mean no-ci?")}},
	})
}

func TestParseProseIsQuiet(t *testing.T) {
	for _, line := range []string{
		"support pool deployment only commits",
		"handle commit syntax: purge-taskcluster-resources",
		"handle disable-cleanup commit syntax",
		"- include available tag info in wm description",
		"include available tag info",
		"include regions in the plan",
		"include keys and pools in the summary",
		"exclude note: blah",
		"include the following: a, b",
		"Updates",
		"testing",
		"RELOPS-562",
		"no",
		"no-i",                // shorter than five characters: never a flag typo
		"include ke: details", // two letters are too few to be a filter type
		"dependency-type: direct:production",
		"updated-dependencies:",
		"pool-deploy is now supported by the decision task",
		"no-ci builds were broken",
		"Signed-off-by: dependabot[bot] <support@github.com>",
		"Bump urllib3 from 1.26.5 to 1.26.18 in /ci",
		"---",
		"...",
	} {
		t.Run(line, func(t *testing.T) {
			msg := "subject\n\n" + line
			got := Parse(msg, testVocab)
			checkWellFormed(t, msg, got)
			assert.Empty(t, got.Diagnostics)
			assert.Empty(t, got.Flags)
			assert.Empty(t, got.Filters)
		})
	}
}

func TestFilterMatches(t *testing.T) {
	in := Filter{Mode: Include, Values: []string{"win7-32", "win10-64"}}
	ex := Filter{Mode: Exclude, Values: []string{"win7-32"}}
	assert.True(t, in.Matches("win7-32"))
	assert.False(t, in.Matches("win2012"))
	assert.False(t, ex.Matches("win7-32"))
	assert.True(t, ex.Matches("win2012"))
	assert.False(t, Filter{Mode: Include, Values: []string{}}.Matches("win7-32"), "an empty include keeps nothing")

	// An unknown pool stays in the filter and matches no real pool.
	got := Parse("include pools: none", testVocab)
	f, ok := got.Filter(Pools)
	require.True(t, ok)
	for _, p := range testVocab.Pools {
		assert.False(t, f.Matches(p))
	}
	_, ok = got.Filter(Keys)
	assert.False(t, ok)
}

func TestInstructionsAccessors(t *testing.T) {
	got := Parse("pool-deploy\ninclude keys: bogus", testVocab)
	assert.True(t, got.Has(PoolDeploy))
	assert.False(t, got.Has(NoCI))
	assert.True(t, got.HasErrors())
	assert.Equal(t, map[Flag]int{PoolDeploy: 1}, got.FlagLines)

	warnOnly := Parse("include pools: none", testVocab)
	assert.NotEmpty(t, warnOnly.Diagnostics)
	assert.False(t, warnOnly.HasErrors(), "warnings are not errors")
	assert.False(t, Instructions{}.HasErrors())
}

func TestDiagnosticString(t *testing.T) {
	d := Diagnostic{Line: 3, Severity: Error, Message: `unknown key "x": use a key`, Text: "include keys: x"}
	assert.Equal(t, `line 3: error: unknown key "x": use a key ("include keys: x")`, d.String())
	d.Input = "keys"
	assert.Equal(t, `input keys: error: unknown key "x": use a key ("include keys: x")`, d.String())
}

func TestMessagesAreLowerCaseAndLineFree(t *testing.T) {
	msg := "x\ninclude keys: bogus\ninclude pools: none\ninclude-pools: x\npool deploy\npool-deploy\noverwrite-disk-image\ninclude keys: win7-32"
	got := Parse(msg, testVocab)
	require.NotEmpty(t, got.Diagnostics)
	for _, d := range got.Diagnostics {
		first := d.Message[:1]
		assert.Equal(t, strings.ToLower(first), first, "message starts lower-case: %s", d.Message)
		assert.NotContains(t, d.Message, fmt.Sprintf("line %d", d.Line), "no own line number: %s", d.Message)
	}
}

func TestJSONShape(t *testing.T) {
	b, err := json.Marshal(Parse("", testVocab))
	require.NoError(t, err)
	assert.JSONEq(t, `{"flags":[],"filters":{},"diagnostics":[],"skip":""}`, string(b))

	b, err = json.Marshal(Parse("no-ci\ninclude keys: win7-32\ninclude keys: x", testVocab))
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"flags":["no-ci"],
		"filters":{"keys":{"mode":"include","values":["win7-32"]}},
		"diagnostics":[{"line":3,"severity":"error","message":"include keys is already given (see line 2): put all values on that line, separated by commas, and delete this one","text":"include keys: x"},
		               {"line":3,"severity":"error","message":"unknown key \"x\": use a key defined in the configuration","text":"include keys: x"}],
		"skip":"no-ci"}`, string(b))
}

func TestNormalizeRegion(t *testing.T) {
	for in, want := range map[string]string{
		"North Central US":   "northcentralus",
		"northcentralus":     "northcentralus",
		" West\tUS 2 ":       "westus2",
		"EASTUS":             "eastus",
		"":                   "",
		"South\u00a0India":   "southindia",
		"UK South\r\n":       "uksouth",
		"ÖSTERREICH Central": "österreichcentral",
	} {
		assert.Equal(t, want, NormalizeRegion(in), "NormalizeRegion(%q)", in)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"win7-32", "win10-64", "win2012r2-64-l1-alpha", "win2012r2-64-vs-l1-alpha", "production"}
	for value, want := range map[string]string{
		"win7-23":            "win7-32",               // two edits
		"win10-6":            "win10-64",              // one edit
		"win2012r2-64-alpha": "win2012r2-64-l1-alpha", // shared prefix, closest of the ties
		"prod":               "production",            // written is a prefix
		"macos":              "",                      // nothing close
		"win":                "win7-32",               // a prefix of several: the closest
		"wi":                 "",                      // too short to mean anything
	} {
		assert.Equal(t, want, suggest(value, known), "suggest(%q)", value)
	}
	assert.Empty(t, suggest("win7-32", nil))
}

func TestAllFlagsIsACopy(t *testing.T) {
	// The exported lists are for callers; mutating them must not change parsing.
	saved := AllFlags[0]
	AllFlags[0] = "something-else"
	defer func() { AllFlags[0] = saved }()
	assert.Equal(t, []Flag{NoCI}, Parse("no-ci", testVocab).Flags)
	assert.Equal(t, []FilterType{Keys, Pools, Regions, Environments}, FilterTypes)
}
