package githubapi_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/githubapi"
)

const pointer = "_The plan is longer than a comment can hold; the full plan is in the [run's summary](https://github.com/o/r/actions/runs/1) and its plan artifact._"

// longPlan is a plan-like Markdown text: marker, diagnostics, then one
// <details> per stage holding a table, a code fence and a Mermaid graph.
func longPlan(stages, rows int) string {
	var b strings.Builder
	b.WriteString(marker + "\n## cib plan (dry run)\n\n> **warning** line 3: did you mean `include keys:`?\n\n")
	for s := range stages {
		fmt.Fprintf(&b, "<details><summary>stage %d</summary>\n\n| key | reason |\n|---|---|\n", s)
		for r := range rows {
			fmt.Fprintf(&b, "| win%d-%d | the configuration changed: ünïcödé %d |\n", s, r, r)
		}
		b.WriteString("\n```text\n")
		for r := range rows {
			fmt.Fprintf(&b, "purge rg-%d-%d\n", s, r)
		}
		b.WriteString("```\n\n```mermaid\ngraph LR\n")
		for r := range rows {
			fmt.Fprintf(&b, "  a%d_%d --> b%d_%d\n", s, r, s, r)
		}
		b.WriteString("```\n\n</details>\n\n")
	}
	b.WriteString("_end of plan_\n")
	return b.String()
}

// balanced checks what a cut must leave: every fence closed, every
// <details> closed, no Mermaid graph cut in half.
func balanced(t *testing.T, s string) {
	t.Helper()
	open, mermaid, details := false, false, 0
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "```") && !open:
			open, mermaid = true, strings.TrimPrefix(line, "```") == "mermaid"
		case line == "```" && open:
			open, mermaid = false, false
		case mermaid:
			assert.Regexp(t, `^(graph LR|  a\d+_\d+ --> b\d+_\d+)$`, line)
		case !open:
			details += strings.Count(line, "<details>") - strings.Count(line, "</details>")
			assert.GreaterOrEqual(t, details, 0)
		}
	}
	assert.False(t, open, "a code fence is left open")
	assert.Zero(t, details, "a <details> is left open")
}

var closers = regexp.MustCompile("^(```\n)?\n(</details>\n\n)*" + regexp.QuoteMeta(pointer) + "\n$")

// keptAndClosed reports whether got is the body's first lines, then
// nothing but closers and the pointer.
func keptAndClosed(body, got string) bool {
	for k := 0; k < len(got); k++ {
		if (k == 0 || got[k-1] == '\n') && strings.HasPrefix(body, got[:k]) && closers.MatchString(got[k:]) {
			return true
		}
	}
	return false
}

func TestFitKeepsAShortBody(t *testing.T) {
	body := longPlan(1, 2)
	assert.Equal(t, body, githubapi.Fit(body, len(body), pointer))
}

func TestFitTrimsAtALineAndClosesWhatIsOpen(t *testing.T) {
	body := longPlan(6, 400)
	require.Greater(t, len(body), 65536)
	for _, limit := range []int{65536, 20000, 5000, 1200, 700, 400, 300} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			got := githubapi.Fit(body, limit, pointer)
			assert.LessOrEqual(t, len(got), limit)
			assert.True(t, strings.HasPrefix(got, marker+"\n"), "the marker stays, so the comment is found again")
			assert.True(t, strings.HasSuffix(got, "\n"+pointer+"\n"), "the pointer ends it")
			assert.Greater(t, len(got), limit-1000, "no more is cut than needed (a table row or a graph)")
			balanced(t, got)
			assert.True(t, keptAndClosed(body, got), "the body's first lines, closers and the pointer:\n%s", got)
		})
	}
}

// A cut in a code fence closes it; a cut in a Mermaid graph leaves the
// graph out whole.
func TestFitInsideFences(t *testing.T) {
	body := marker + "\n<details>\n\n```text\n" + strings.Repeat("line of text\n", 100) + "```\n</details>\n"
	got := githubapi.Fit(body, 600, pointer)
	assert.LessOrEqual(t, len(got), 600)
	assert.Contains(t, got, "line of text\n```\n\n</details>\n\n"+pointer)
	balanced(t, got)

	body = marker + "\n<details>\n\n```mermaid\ngraph LR\n" + strings.Repeat("  a1_1 --> b1_1\n", 100) + "```\n</details>\n"
	got = githubapi.Fit(body, 600, pointer)
	assert.Equal(t, marker+"\n<details>\n\n\n</details>\n\n"+pointer+"\n", got)
	balanced(t, got)
}

func TestFitWithoutRoom(t *testing.T) {
	got := githubapi.Fit(strings.Repeat("x", 100), 10, "ünïcödé pointer")
	assert.LessOrEqual(t, len(got), 10)
	assert.True(t, strings.HasPrefix("ünïcödé pointer\n", got))
	assert.Equal(t, "x\ny\n\n"+pointer+"\n", githubapi.Fit("x\ny\n"+strings.Repeat("z", 300), len(pointer)+10, pointer))
}
