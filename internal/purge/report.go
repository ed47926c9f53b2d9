package purge

import (
	"fmt"
	"strings"
)

// Markdown renders the report for the step summary: the counts, then a
// table each of the failed, deleted (or, in a dry run, planned) and kept
// resources with their reasons.
func (r Report) Markdown() string {
	var b strings.Builder
	title := "## Purge"
	if r.DryRun {
		title += " (dry run: nothing deleted)"
	}
	fmt.Fprintf(&b, "%s\n\n", title)
	if r.DryRun {
		fmt.Fprintf(&b, "%d to delete, %d kept.\n", len(r.Planned), len(r.Kept))
	} else {
		fmt.Fprintf(&b, "%d deleted, %d failed, %d kept.\n", len(r.Deleted), len(r.Failures), len(r.Kept))
	}
	if len(r.Failures) > 0 {
		b.WriteString("\n### Failed\n\n| kind | group | name | reason | error |\n|---|---|---|---|---|\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(string(f.Resource.Kind)), cell(f.Resource.Group),
				cell(f.Resource.Name), cell(f.Reason), cell(f.Err.Error()))
		}
	}
	table := func(title string, es []Entry) {
		if len(es) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n### %s\n\n| kind | group | name | reason |\n|---|---|---|---|\n", title)
		for _, e := range es {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(string(e.Resource.Kind)), cell(e.Resource.Group),
				cell(e.Resource.Name), cell(e.Reason))
		}
	}
	table("To delete", r.Planned)
	table("Deleted", r.Deleted)
	table("Kept", r.Kept)
	return b.String()
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// Lines is the report for the log, one resource a line.
func (r Report) Lines() []string {
	var out []string
	add := func(verb string, e Entry, extra string) {
		out = append(out, fmt.Sprintf("%s %s: %s%s", verb, e.Resource, e.Reason, extra))
	}
	for _, e := range r.Planned {
		add("would delete", e, "")
	}
	for _, e := range r.Deleted {
		add("deleted", e, "")
	}
	for _, f := range r.Failures {
		add("failed to delete", f.Entry, ": "+f.Err.Error())
	}
	for _, e := range r.Kept {
		add("kept", e, "")
	}
	return out
}
