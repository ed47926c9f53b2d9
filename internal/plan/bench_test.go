package plan_test

import (
	"fmt"
	"testing"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/instruction"
	"github.com/cib-project/cib/internal/plan"
)

// BenchmarkPlanPorted plans the repository's own configuration against
// records of every earlier build: the plan job's whole in-process work.
func BenchmarkPlanPorted(b *testing.B) {
	cfg, err := config.Load(configDir)
	if err != nil {
		b.Fatal(err)
	}
	recs := builtEverything(b, cfg)
	in := instruction.Parse("bump\n\ninclude environments: production, staging", plan.Vocabulary(cfg))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p := plan.Build(plan.Options{Config: cfg, Instructions: in, Records: recs, Revision: revision})
		if len(p.Jobs) == 0 {
			b.Fatal("empty plan")
		}
	}
}

// BenchmarkPlanSynthetic plans n keys × 10 targets, two environments,
// against records where one key in ten changed, so that the explanation
// path runs too. The sizes show how the cost grows with keys × targets.
func BenchmarkPlanSynthetic(b *testing.B) {
	for _, n := range []int{50, 100, 250, 500} {
		b.Run(fmt.Sprintf("keys=%d×targets=10", n), func(b *testing.B) {
			cfg := synthetic(n, 10)
			recs := builtEverything(b, cfg)
			for i, k := range cfg.Keys {
				if i%10 == 0 {
					k.Image.Size++
				}
			}
			in := instruction.Parse("", plan.Vocabulary(cfg))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p := plan.Build(plan.Options{Config: cfg, Instructions: in, Records: recs})
				if p.Count(plan.DiskImage) != 2*((n+9)/10) {
					b.Fatalf("expected %d disk images, got %d", 2*((n+9)/10), p.Count(plan.DiskImage))
				}
			}
		})
	}
}
