package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/cib-project/cib/internal/instruction"
)

// JSON is the whole plan, indented; field names are stable for outside
// tools.
func (p *Plan) JSON() ([]byte, error) {
	return json.MarshalIndent(p, "", "  ")
}

// WriteTable writes a table for a terminal: diagnostics, selection, then
// one line per job.
func (p *Plan) WriteTable(w io.Writer) error {
	var b strings.Builder
	title := "cib plan"
	if p.Revision != "" {
		title += " for " + short(p.Revision)
	}
	if p.DryRun {
		title += " (dry run)"
	}
	fmt.Fprintln(&b, title)
	if p.Records.Commit != "" {
		fmt.Fprintf(&b, "compared with the build records on %s at %s\n", p.Records.Ref, short(p.Records.Commit))
	} else {
		fmt.Fprintln(&b, "no build records found: every needed build is a first build")
	}
	for _, d := range p.Instructions.Diagnostics {
		fmt.Fprintln(&b, d.String())
	}
	if p.Instructions.Skip != "" {
		fmt.Fprintf(&b, "%s: nothing runs\n", p.Instructions.Skip)
	}
	if p.Instructions.HasErrors() && p.Instructions.Skip == "" {
		fmt.Fprintln(&b, "the commit instructions have errors: nothing runs")
	}
	s := p.Selection
	fmt.Fprintf(&b, "keys: %s\npools: %s\nregions: %s\nenvironments: %s\n",
		listOrNone(s.Keys), listOrNone(s.Pools), listOrNone(s.Regions), listOrNone(s.Environments))
	for _, st := range Stages {
		fmt.Fprintf(&b, "%s: %d of %d run\n", st, p.Count(st), p.total(st))
	}
	if _, err := io.WriteString(w, b.String()+"\n"); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tENVIRONMENT\tKEY/POOL\tGROUP\tRUN\tREASON")
	for _, j := range p.Jobs {
		what := j.Key
		if j.Stage == PoolConfig || j.Stage == Verify {
			what = j.Pool
		}
		run := "no"
		if j.Needed {
			run = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.Stage, j.Environment, dash(what), dash(j.Group), run, j.Reason)
	}
	return tw.Flush()
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

func (p *Plan) total(s Stage) int {
	n := 0
	for _, j := range p.Jobs {
		if j.Stage == s {
			n++
		}
	}
	return n
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}

// CommentMarker is the hidden marker that finds the plan's pull-request
// comment again, to update it in place.
const CommentMarker = "<!-- cib-plan -->"

// MaxComment is GitHub's limit on a comment's length.
const MaxComment = 65536

// MaxSummary is the length cib keeps a step summary under: GitHub
// accepts 1 MiB per step.
const MaxSummary = 1000 * 1000

// Comment renders the plan for its pull-request comment: Markdown within
// MaxComment, and, when that had to leave details out, a last line that
// says so and links to where the whole plan is (fullPlanURL, the run's
// page with its step summary and plan artifact; "" names them without a
// link).
func (p *Plan) Comment(fullPlanURL string) string {
	where := "the run's step summary"
	if fullPlanURL != "" {
		where = "[the run's step summary](" + fullPlanURL + ")"
	}
	pointer := "\n_This comment is shortened to fit GitHub's limit of " + fmt.Sprint(MaxComment) +
		" characters; the whole plan is in " + where + " and in its `cib-plan` artifact._\n"
	full := p.Markdown(MaxSummary)
	if len(full) <= MaxComment {
		return full
	}
	return p.Markdown(MaxComment-len(pointer)) + pointer
}

// mermaidMaxNodes is where the job graph becomes a graph of stages:
// beyond it a per-job graph is unreadable.
const mermaidMaxNodes = 40

// Markdown renders the plan for a step summary or a pull-request comment,
// diagnostics first, within limit characters (0: MaxComment): when the full
// text is too long, the skipped jobs' details go first, then the run jobs'
// rows are cut with a note of how many were left out.
func (p *Plan) Markdown(limit int) string {
	if limit <= 0 {
		limit = MaxComment
	}
	for _, lvl := range []int{0, 1, 2} {
		if s := p.markdown(lvl, -1); len(s) <= limit {
			return s
		}
	}
	// Cut rows until it fits.
	lo, hi := 0, len(p.Jobs)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if len(p.markdown(2, mid)) <= limit {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return p.markdown(2, lo)
}

// markdown renders at a level of detail: 0 everything, 1 no skipped-job
// rows, 2 also a stage graph instead of a job graph; rows < 0 means every
// run job's row, else at most that many.
func (p *Plan) markdown(level, rows int) string {
	var b strings.Builder
	b.WriteString(CommentMarker + "\n")
	title := "cib plan"
	if p.Revision != "" {
		title += " for " + short(p.Revision)
	}
	if p.DryRun {
		title += " (dry run)"
	}
	fmt.Fprintf(&b, "## %s\n\n", title)

	in := p.Instructions
	if len(in.Diagnostics) > 0 {
		b.WriteString("### Diagnostics\n\n| line | severity | message | text |\n|---:|---|---|---|\n")
		for _, d := range in.Diagnostics {
			where := fmt.Sprint(d.Line)
			if d.Input != "" {
				where = "input " + d.Input
			}
			icon := "⚠️ warning"
			if d.Severity == instruction.Error {
				icon = "❌ error"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | `%s` |\n", where, icon, cell(d.Message), strings.ReplaceAll(cell(d.Text), "`", "'"))
		}
		b.WriteString("\n")
	}
	switch {
	case in.Skip != "":
		fmt.Fprintf(&b, "**`%s` (line %d): nothing runs.**\n\n", in.Skip, in.FlagLines[in.Skip])
	case in.HasErrors():
		b.WriteString("**The commit instructions have errors: nothing runs.** Fix the lines above and push again.\n\n")
	}

	b.WriteString("### Instructions\n\n")
	if len(in.Flags) == 0 && len(in.Filters) == 0 {
		b.WriteString("None: the plan covers the whole configuration.\n\n")
	} else {
		for _, f := range in.Flags {
			fmt.Fprintf(&b, "- `%s`\n", f)
		}
		for _, t := range instruction.FilterTypes {
			if f, ok := in.Filter(t); ok {
				fmt.Fprintf(&b, "- %s %s: %s\n", f.Mode, t, strings.Join(f.Values, ", "))
			}
		}
		b.WriteString("\n")
	}

	s := p.Selection
	b.WriteString("### Selection\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| keys (%d) | %s |\n| pools (%d) | %s |\n| regions (%d) | %s |\n| environments | %s |\n\n",
		len(s.Keys), listOrNone(s.Keys), len(s.Pools), listOrNone(s.Pools), len(s.Regions), listOrNone(s.Regions), listOrNone(s.Environments))
	if p.Records.Commit != "" {
		fmt.Fprintf(&b, "Compared with the build records on `%s` at `%s`.\n\n", p.Records.Ref, short(p.Records.Commit))
	} else {
		b.WriteString("No build records found: every needed build is a first build.\n\n")
	}

	b.WriteString("### Jobs\n\n| stage | run | skipped |\n|---|---:|---:|\n")
	for _, st := range Stages {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", st, p.Count(st), p.total(st)-p.Count(st))
	}
	b.WriteString("\n")

	shown := 0
	cut := 0
	for _, st := range Stages {
		var run, skip []Job
		for _, j := range p.Jobs {
			if j.Stage != st {
				continue
			}
			if j.Needed {
				run = append(run, j)
			} else {
				skip = append(skip, j)
			}
		}
		if len(run) == 0 && (len(skip) == 0 || level > 0) {
			continue
		}
		fmt.Fprintf(&b, "#### %s\n\n", st)
		if len(run) > 0 {
			b.WriteString("| job | reason |\n|---|---|\n")
			for _, j := range run {
				if rows >= 0 && shown >= rows {
					cut++
					continue
				}
				shown++
				fmt.Fprintf(&b, "| %s | %s |\n", cell(jobLabel(j)), cell(j.Reason))
			}
			b.WriteString("\n")
		}
		if len(skip) > 0 && level == 0 {
			fmt.Fprintf(&b, "<details><summary>%d skipped</summary>\n\n| job | reason |\n|---|---|\n", len(skip))
			for _, j := range skip {
				fmt.Fprintf(&b, "| %s | %s |\n", cell(jobLabel(j)), cell(j.Reason))
			}
			b.WriteString("\n</details>\n\n")
		}
	}
	if cut > 0 {
		fmt.Fprintf(&b, "_%d more jobs are left out to stay within GitHub's size limit; the plan JSON artifact has them all._\n\n", cut)
	}
	if level < 2 {
		b.WriteString(p.Mermaid())
	} else {
		b.WriteString(p.stageMermaid())
	}
	return b.String()
}

func jobLabel(j Job) string {
	parts := []string{j.Environment}
	switch j.Stage {
	case Purge:
		parts = append(parts, j.Group)
	case DiskImage:
		parts = append(parts, j.Key)
	case MachineImage:
		parts = append(parts, j.Key, j.Group)
	case PoolConfig, Verify:
		parts = append(parts, j.Pool)
	}
	return strings.Join(parts, " · ")
}

func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ", "\r", " ").Replace(s)
}

// Mermaid is a graph of the jobs that run and what each waits for, in a
// fenced block GitHub renders; with many jobs it is a graph of stages.
func (p *Plan) Mermaid() string {
	var run []Job
	for _, j := range p.Jobs {
		if j.Needed {
			run = append(run, j)
		}
	}
	if len(run) > mermaidMaxNodes {
		return p.stageMermaid()
	}
	var b strings.Builder
	b.WriteString("```mermaid\ngraph LR\n")
	if len(run) == 0 {
		b.WriteString("  none[\"nothing runs\"]\n")
	}
	ids := map[string]string{}
	for i, j := range run {
		ids[j.ID] = fmt.Sprintf("j%d", i)
		fmt.Fprintf(&b, "  j%d[\"%s: %s\"]\n", i, j.Stage, mermaidText(jobLabel(j)))
	}
	for _, j := range run {
		for _, n := range j.Needs {
			if from, ok := ids[n]; ok {
				fmt.Fprintf(&b, "  %s --> %s\n", from, ids[j.ID])
			}
		}
	}
	b.WriteString("```\n")
	return b.String()
}

// stageMermaid is the graph of stages with their job counts, the shape the
// workflow's jobs take.
func (p *Plan) stageMermaid() string {
	var b strings.Builder
	b.WriteString("```mermaid\ngraph LR\n")
	node := func(s Stage) string { return strings.ReplaceAll(string(s), "-", "_") }
	for _, s := range Stages {
		fmt.Fprintf(&b, "  %s[\"%s × %d\"]\n", node(s), s, p.Count(s))
	}
	edges := map[string]bool{}
	for _, j := range p.Jobs {
		for _, n := range j.Needs {
			from := Stage(n[:strings.Index(n, "/")])
			edges[fmt.Sprintf("  %s --> %s\n", node(from), node(j.Stage))] = true
		}
	}
	keys := make([]string, 0, len(edges))
	for e := range edges {
		keys = append(keys, e)
	}
	sort.Strings(keys)
	for _, e := range keys {
		b.WriteString(e)
	}
	b.WriteString("```\n")
	return b.String()
}

func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "\n", " ").Replace(s)
}
