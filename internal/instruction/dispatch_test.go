package instruction

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func severities(ds []Diagnostic) []Severity {
	out := []Severity{}
	for _, d := range ds {
		out = append(out, d.Severity)
	}
	return out
}

func withoutLines(fs map[FilterType]Filter) map[FilterType]Filter {
	out := map[FilterType]Filter{}
	for t, f := range fs {
		f.Line = 0
		out[t] = f
	}
	return out
}

// TestFromDispatchAgreesWithParse is the promise of §7: the inputs and the
// equivalent commit message give the same model and the same verdict.
func TestFromDispatchAgreesWithParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      DispatchInputs
		message string
		inputs  []string // Input of each diagnostic, in order
	}{
		{name: "nothing", in: DispatchInputs{}, message: ""},
		{
			name:    "keys and environments",
			in:      DispatchInputs{Keys: "win10-64, WIN10-64-GPU", Environments: "staging"},
			message: "include keys: win10-64, WIN10-64-GPU\ninclude environments: staging",
		},
		{
			name: "pool-deploy with pools and regions",
			in: DispatchInputs{Pools: "gecko-t/win7-32-gpu-azure,gecko-t/win10-64-gpu-azure", Regions: "North Central US, westus2",
				Flags: map[Flag]bool{PoolDeploy: true, NoVerify: false}},
			message: "pool-deploy\ninclude regions: North Central US, westus2\ninclude pools: gecko-t/win7-32-gpu-azure,gecko-t/win10-64-gpu-azure",
		},
		{
			name:    "unknown key and environment",
			in:      DispatchInputs{Keys: "win10-64-2004-azure", Environments: "prod"},
			message: "include keys: win10-64-2004-azure\ninclude environments: prod",
			inputs:  []string{"keys", "environments"},
		},
		{
			name:    "keys and pools cannot be combined",
			in:      DispatchInputs{Keys: "win7-32", Pools: "northeurope"},
			message: "include keys: win7-32\ninclude pools: northeurope",
			inputs:  []string{"pools", "pools"},
		},
		{
			name:    "keys separated by spaces",
			in:      DispatchInputs{Keys: "win10-64 win7-32"},
			message: "include keys: win10-64 win7-32",
			inputs:  []string{"keys"},
		},
		{
			name:    "yaml suffix",
			in:      DispatchInputs{Keys: "win2012.yaml"},
			message: "include keys: win2012.yaml",
			inputs:  []string{"keys"},
		},
		{
			name:    "only commas",
			in:      DispatchInputs{Regions: ", ,"},
			message: "include regions: , ,",
			inputs:  []string{"regions"},
		},
		{
			name:    "exclude prefix",
			in:      DispatchInputs{Keys: "Exclude: win7-32, win7-32-gpu", Environments: "EXCLUDE:staging"},
			message: "exclude keys: win7-32, win7-32-gpu\nexclude environments: staging",
		},
		{
			name:    "include prefix",
			in:      DispatchInputs{Pools: "include:gecko-t/win7-32-azure"},
			message: "include pools: gecko-t/win7-32-azure",
		},
		{
			name:    "pool-deploy and overwrite",
			in:      DispatchInputs{Flags: map[Flag]bool{PoolDeploy: true, OverwriteDiskImage: true}},
			message: "pool-deploy\noverwrite-disk-image",
			inputs:  []string{"overwrite-disk-image"},
		},
		{
			name:    "no-taskcluster-ci with no-verify",
			in:      DispatchInputs{Flags: map[Flag]bool{NoTaskclusterCI: true, NoVerify: true}},
			message: "no-taskcluster-ci\nno-verify",
			inputs:  []string{"no-verify"},
		},
		{
			name:    "no-ci skips, errors still reported",
			in:      DispatchInputs{Keys: "bogus", Flags: map[Flag]bool{NoCI: true, NoActionsCI: true}},
			message: "include keys: bogus\nno-ci\nno-actions-ci",
			inputs:  []string{"keys"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FromDispatch(tc.in, testVocab)
			want := Parse(tc.message, testVocab)
			assert.Equal(t, want.Flags, got.Flags)
			assert.Equal(t, withoutLines(want.Filters), got.Filters, "filters (Line is 0 for inputs)")
			assert.Equal(t, want.Skip, got.Skip)
			assert.Equal(t, severities(want.Diagnostics), severities(got.Diagnostics))
			assert.Equal(t, want.HasErrors(), got.HasErrors())
			var inputs []string
			for _, d := range got.Diagnostics {
				inputs = append(inputs, d.Input)
				assert.True(t, strings.HasPrefix(d.String(), "input "+d.Input+": "+string(d.Severity)+": "), d.String())
			}
			assert.Equal(t, tc.inputs, inputs)
			assert.NotNil(t, got.Flags)
			assert.NotNil(t, got.Filters)
			assert.NotNil(t, got.Diagnostics)
			for f, n := range got.FlagLines {
				assert.Zero(t, n, "flag line of %s", f)
			}
		})
	}
}

func TestFromDispatchExcludeMode(t *testing.T) {
	got := FromDispatch(DispatchInputs{Keys: "exclude: win7-32", Regions: "  Exclude:North Europe ", Pools: ""}, testVocab)
	require.Empty(t, got.Diagnostics)
	assert.Equal(t, map[FilterType]Filter{
		Keys:    {Mode: Exclude, Values: []string{"win7-32"}},
		Regions: {Mode: Exclude, Values: []string{"northeurope"}},
	}, got.Filters)
	assert.True(t, got.Filters[Keys].Matches("win10-64"))
	assert.False(t, got.Filters[Keys].Matches("win7-32"))

	// Only a leading "exclude:" sets the mode; elsewhere it is part of a value.
	got = FromDispatch(DispatchInputs{Keys: "win7-32, exclude: win10-64"}, testVocab)
	assert.Equal(t, Include, got.Filters[Keys].Mode)
	assert.True(t, got.HasErrors())
}

func TestFromDispatchMessagesNameInputs(t *testing.T) {
	got := FromDispatch(DispatchInputs{Keys: "win7-32", Pools: "gecko-t/win7-32-azure"}, testVocab)
	require.Len(t, got.Diagnostics, 1)
	d := got.Diagnostics[0]
	assert.Equal(t, "pools", d.Input)
	assert.Equal(t, 2, d.Line, "synthetic line")
	assert.Equal(t, "include pools: gecko-t/win7-32-azure", d.Text)
	assert.Contains(t, d.Message, "(input keys filters keys)")
	assert.NotContains(t, d.Message, "line")
	assert.Equal(t, `input pools: error: key and pool filters cannot be combined (input keys filters keys): a key is selected through its pools, so keep one of the two ("include pools: gecko-t/win7-32-azure")`, d.String())

	got = FromDispatch(DispatchInputs{Flags: map[Flag]bool{OverwriteMachineImage: true, PoolDeploy: true}}, testVocab)
	require.Len(t, got.Diagnostics, 1)
	assert.Equal(t, "overwrite-machine-image", got.Diagnostics[0].Input)
	assert.Contains(t, got.Diagnostics[0].Message, "(see input pool-deploy)")
}

func TestFromDispatchUnknownFlag(t *testing.T) {
	got := FromDispatch(DispatchInputs{Keys: "bogus", Flags: map[Flag]bool{"rebuild-all": true, "zap": true, "off-flag": false, NoVerify: true}}, testVocab)
	assert.Equal(t, []Flag{NoVerify}, got.Flags)
	require.Len(t, got.Diagnostics, 3)
	assert.Equal(t, []string{"keys", "rebuild-all", "zap"},
		[]string{got.Diagnostics[0].Input, got.Diagnostics[1].Input, got.Diagnostics[2].Input})
	assert.Equal(t, []int{1, 3, 4}, []int{got.Diagnostics[0].Line, got.Diagnostics[1].Line, got.Diagnostics[2].Line})
	assert.Contains(t, got.Diagnostics[1].Message, `unknown flag input "rebuild-all": the flags are no-ci, no-actions-ci,`)
	assert.Equal(t, Error, got.Diagnostics[2].Severity)
}

func TestFromDispatchLineBreaksAreCommas(t *testing.T) {
	got := FromDispatch(DispatchInputs{Keys: "win7-32\nwin10-64\r\nwin2012\r", Flags: map[Flag]bool{PoolDeploy: true}}, testVocab)
	assert.Empty(t, got.Diagnostics)
	assert.Equal(t, []string{"win7-32", "win10-64", "win2012"}, got.Filters[Keys].Values)
	assert.Equal(t, []Flag{PoolDeploy}, got.Flags)

	// A line break cannot smuggle a second instruction in.
	got = FromDispatch(DispatchInputs{Keys: "win7-32\nno-ci"}, testVocab)
	assert.Empty(t, got.Skip)
	assert.Empty(t, got.Flags)
	assert.True(t, got.HasErrors())
}
