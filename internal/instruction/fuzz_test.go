package instruction

import (
	"strings"
	"testing"
)

// BenchmarkParse10000Messages parses 10,000 messages per iteration, cycling
// over the sample, to show that parsing a whole history is cheap.
func BenchmarkParse10000Messages(b *testing.B) {
	msgs := loadSample(b)
	b.ReportAllocs()
	for b.Loop() {
		for i := range 10000 {
			_ = Parse(msgs[i%len(msgs)].Message, testVocab)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, m := range loadSample(f) {
		f.Add(m.Message)
	}
	for _, s := range []string{
		"", "\r", "\r\n\r", "\ufeff", "include keys:", "include: ", "pool-deploy:", "no ci",
		"include keys: a b, c.yaml\rexclude keys: x\ninclude pools: a/b/c",
		"include regions: North Central US\r\ninclude regions: x",
		"İnclude keys: x", "include keys: \u212a", "exclude\u00a0pools: x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, message string) {
		got := Parse(message, testVocab)
		checkWellFormed(t, message, got)
		// Any instruction the parser accepted must survive a change of line
		// ending: the model depends on lines, not on how they end.
		if !strings.Contains(message, "\r") {
			crlf := Parse(strings.ReplaceAll(message, "\n", "\r\n"), testVocab)
			if len(crlf.Diagnostics) != len(got.Diagnostics) || len(crlf.Flags) != len(got.Flags) || len(crlf.Filters) != len(got.Filters) {
				t.Fatalf("CRLF changed the result of %q", message)
			}
		}
	})
}

func FuzzFromDispatch(f *testing.F) {
	f.Add("win7-32", "", "westus", "exclude: staging", true, false)
	f.Add("exclude:", "include:", "\n", "a\r\nb", false, true)
	f.Fuzz(func(t *testing.T, keys, pools, regions, environments string, poolDeploy, overwrite bool) {
		got := FromDispatch(DispatchInputs{Keys: keys, Pools: pools, Regions: regions, Environments: environments,
			Flags: map[Flag]bool{PoolDeploy: poolDeploy, OverwriteDiskImage: overwrite}}, testVocab)
		if got.Flags == nil || got.Filters == nil || got.Diagnostics == nil {
			t.Fatal("nil fields")
		}
		for _, d := range got.Diagnostics {
			if d.Input == "" || d.Line < 1 || d.Line > 6 {
				t.Fatalf("bad diagnostic %+v", d)
			}
		}
		for _, fl := range got.Filters {
			if fl.Line != 0 {
				t.Fatalf("filter line %d from dispatch", fl.Line)
			}
		}
	})
}
