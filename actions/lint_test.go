package actions_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"gopkg.in/yaml.v3"
)

// finding is one problem, located in the file a person edits (not in the
// workflow the lint builds from an action).
type finding struct {
	file      string
	line, col int
	msg       string
}

func (f finding) String() string { return fmt.Sprintf("%s:%d:%d: %s", f.file, f.line, f.col, f.msg) }

// repoRoot is the repository this package belongs to: go test runs in the
// package folder.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the repository root %s has no go.mod: %v", root, err)
	}
	return root
}

func TestActionlint(t *testing.T) {
	findings, files := lintRepo(t, repoRoot(t))
	for _, f := range findings {
		t.Error(f)
	}
	t.Logf("linted %s (shellcheck: %s)", strings.Join(files, ", "), shellcheckState())
}

// TestActionlintCatchesBrokenFiles proves the lint is live: the same
// helper over a small repository, clean and then broken one way at a time,
// must find exactly where each break is.
func TestActionlintCatchesBrokenFiles(t *testing.T) {
	const workflow = `name: ci
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - id: greet
        uses: ./actions/greet
      - run: echo "${{ steps.greet.outputs.greeting }}"
`
	const action = `name: greet
description: Greets.
inputs:
  who:
    description: Whom to greet.
    default: world
outputs:
  greeting:
    description: The greeting.
    value: ${{ steps.say.outputs.greeting }}
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      env:
        WHO: ${{ inputs.who }}
      run: echo "greeting=hello $WHO" >> "$GITHUB_OUTPUT"
`
	const (
		workflowPath = ".github/workflows/ci.yml"
		actionPath   = "actions/greet/action.yml"
	)
	cases := []struct {
		name string
		// files replaces or (with "") removes files of the clean repository.
		files map[string]string
		want  []finding // col 0: any column
	}{
		{name: "clean"},
		{
			name:  "undefined property of a context in a workflow",
			files: map[string]string{workflowPath: strings.Replace(workflow, "steps.greet.outputs.greeting", "github.nope", 1)},
			want:  []finding{{workflowPath, 9, 24, `property "nope" is not defined`}},
		},
		{
			name: "a job needs an undefined job",
			files: map[string]string{workflowPath: workflow + `  deploy:
    needs: [compile]
    runs-on: ubuntu-latest
    steps:
      - run: echo deploy
`},
			want: []finding{{workflowPath, 10, 3, `"compile" which does not exist`}},
		},
		{
			name:  "a workflow reads an output the local action does not declare",
			files: map[string]string{workflowPath: strings.Replace(workflow, "outputs.greeting", "outputs.greting", 1)},
			want:  []finding{{workflowPath, 9, 0, `"greting" is not defined`}},
		},
		{
			name:  "an action step reads an undeclared input",
			files: map[string]string{actionPath: strings.Replace(action, "inputs.who", "inputs.whom", 1)},
			want:  []finding{{actionPath, 17, 18, `"whom" is not defined`}},
		},
		{
			name:  "an action output comes from an undefined step",
			files: map[string]string{actionPath: strings.Replace(action, "steps.say.outputs", "steps.speak.outputs", 1)},
			want:  []finding{{actionPath, 10, 16, `"speak" is not defined`}},
		},
		{
			name:  "a composite run step without a shell",
			files: map[string]string{actionPath: strings.Replace(action, "      shell: bash\n", "", 1)},
			want:  []finding{{actionPath, 14, 7, "needs shell:"}},
		},
		{
			name:  "an unknown key in an input's metadata",
			files: map[string]string{actionPath: strings.Replace(action, "default:", "defualt:", 1)},
			want:  []finding{{actionPath, 1, 1, `unexpected key "defualt"`}},
		},
		{
			name:  "a run script shellcheck rejects",
			files: map[string]string{actionPath: strings.Replace(action, `"greeting=hello $WHO"`, `greeting=hello $WHO`, 1)},
			// Without shellcheck the script is not checked: the case then
			// expects what the clean one does, nothing.
			want: ifShellcheck(finding{actionPath, 18, 7, "SC2086"}),
		},
		{
			name:  "nothing to lint",
			files: map[string]string{workflowPath: "", actionPath: ""},
			want: []finding{
				{".github/workflows", 0, 0, "no workflow found"},
				{"actions", 0, 0, "no action found"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{workflowPath: workflow, actionPath: action}
			for p, s := range c.files {
				files[p] = s
			}
			for p, s := range files {
				if s == "" {
					continue
				}
				writeFile(t, filepath.Join(root, p), s)
			}
			got, _ := lintRepo(t, root)
			t.Log(got)
			if c.want == nil && len(got) > 0 {
				t.Errorf("the clean repository has findings: %v", got)
			}
			for _, w := range c.want {
				found := slices.ContainsFunc(got, func(f finding) bool {
					return f.file == w.file && f.line == w.line && (w.col == 0 || f.col == w.col) && strings.Contains(f.msg, w.msg)
				})
				if !found {
					t.Errorf("want a finding %v; got %v", w, got)
				}
			}
		})
	}
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ifShellcheck(f finding) []finding {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		return nil
	}
	return []finding{f}
}

func shellcheckState() string {
	if p, err := exec.LookPath("shellcheck"); err == nil {
		return p
	}
	return "not installed, run scripts not checked"
}

// lintRepo lints every workflow and every action of the repository at root
// and returns the findings and the files it linted (relative to root).
// Finding no workflow or no action is itself a finding: a wrong pattern
// must not turn the lint into a test that checks nothing.
func lintRepo(t testing.TB, root string) ([]finding, []string) {
	t.Helper()
	opts := &actionlint.LinterOptions{Color: actionlint.ColorOptionKindNever, WorkingDir: root}
	// shellcheck is optional: with it actionlint also checks every run script.
	if p, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = p
	}
	l, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	// An explicit project makes `uses: ./actions/x` resolve in this
	// repository even when root is not a git checkout.
	proj, err := actionlint.NewProject(root)
	if err != nil {
		t.Fatal(err)
	}

	var out []finding
	workflows := globRel(t, root, ".github/workflows/*.yml", ".github/workflows/*.yaml")
	actions := globRel(t, root, "actions/*/action.yml", "actions/*/action.yaml")
	if len(workflows) == 0 {
		out = append(out, finding{".github/workflows", 0, 0, "no workflow found: the lint would check nothing"})
	}
	if len(actions) == 0 {
		out = append(out, finding{"actions", 0, 0, "no action found (actions/*/action.yml): the lint would check nothing"})
	}
	for _, rel := range workflows {
		src, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		errs, err := l.Lint(rel, src, proj)
		if err != nil {
			t.Fatalf("actionlint %s: %v", rel, err)
		}
		for _, e := range errs {
			out = append(out, finding{rel, e.Line, e.Column, fmt.Sprintf("%s [%s]", e.Message, e.Kind)})
		}
	}
	for _, rel := range actions {
		out = append(out, lintAction(t, l, proj, root, rel)...)
	}
	return out, append(workflows, actions...)
}

func globRel(t testing.TB, root string, patterns ...string) []string {
	t.Helper()
	var rels []string
	for _, p := range patterns {
		matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			rel, err := filepath.Rel(root, m)
			if err != nil {
				t.Fatal(err)
			}
			rels = append(rels, filepath.ToSlash(rel))
		}
	}
	sort.Strings(rels)
	return rels
}

// lintAction lints an action's metadata file. actionlint lints workflows,
// not action.yml, so the metadata goes through actionlint's own action
// metadata parser (the one that checks `uses: ./actions/x` in workflows),
// and a composite action's steps and outputs are linted as one job of a
// workflow triggered by workflow_call with the action's inputs: a job's
// steps, `${{ }}` expressions, step outputs and job outputs follow the
// same rules, and shellcheck (when installed) sees every run script. The
// findings are mapped back to lines and columns of action.yml.
func lintAction(t testing.TB, l *actionlint.Linter, proj *actionlint.Project, root, rel string) []finding {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	meta, _, err := actionlint.NewLocalActionsCache(proj, nil).FindMetadata("./" + path.Dir(rel))
	if err != nil {
		// The parser reports no position.
		return []finding{{rel, 1, 1, "action metadata: " + err.Error()}}
	}
	if meta == nil || meta.Path() != filepath.Join(root, filepath.FromSlash(rel)) {
		t.Fatalf("actionlint did not read %s as the metadata of %s (read %v)", rel, path.Dir(rel), meta)
	}
	switch meta.Runs.Using {
	case "composite":
	case "node20", "node24", "docker":
		return nil // no steps: the metadata parser was the whole check
	default:
		return []finding{{rel, 1, 1, fmt.Sprintf("runs.using %q: use composite, node20, node24 or docker", meta.Runs.Using)}}
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return []finding{{rel, 1, 1, err.Error()}}
	}
	top := doc.Content[0]
	runsKey, runs := mapping(top, "runs")
	stepsKey, steps := mapping(runs, "steps")
	if steps == nil || steps.Kind != yaml.SequenceNode || len(steps.Content) == 0 {
		return []finding{{rel, runsKey.Line, runsKey.Column, "a composite action needs runs.steps"}}
	}

	var out []finding
	// GitHub's own rule that a workflow does not have: a composite action
	// has no default shell.
	for _, s := range steps.Content {
		if k, _ := mapping(s, "run"); k != nil {
			if k, _ := mapping(s, "shell"); k == nil {
				out = append(out, finding{rel, s.Line, s.Column, "a run step of a composite action needs shell: there is no default [composite]"})
			}
		}
	}

	w, err := wrapComposite(meta, top, stepsKey, strings.Split(string(src), "\n"))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	errs, err := l.Lint(rel, []byte(strings.Join(w.lines, "\n")), proj)
	if err != nil {
		t.Fatalf("actionlint %s: %v", rel, err)
	}
	for _, e := range errs {
		msg := fmt.Sprintf("%s [%s]", e.Message, e.Kind)
		if e.Line < 1 || e.Line > len(w.from) || w.from[e.Line-1].line == 0 {
			// A problem of the wrapping job itself: a bug of this test.
			out = append(out, finding{rel, runsKey.Line, runsKey.Column, msg + " (in the job the lint wraps the steps in, line " + fmt.Sprint(e.Line) + ")"})
			continue
		}
		o := w.from[e.Line-1]
		col := e.Column
		if col > 0 {
			col += o.colShift
		}
		out = append(out, finding{rel, o.line, col, msg})
	}
	return out
}

// mapping returns the key and value nodes of key in a mapping node.
func mapping(n *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

// wrapped is a workflow built from an action, with where each line came
// from.
type wrapped struct {
	lines []string
	from  []origin
}

// origin is a line's place in action.yml; line 0 is a line of the
// wrapping.
type origin struct {
	line     int
	colShift int // add to a column of the workflow line to get the column in action.yml
}

func (w *wrapped) add(s string, o origin) {
	w.lines = append(w.lines, s)
	w.from = append(w.from, o)
}

// wrapComposite turns a composite action into a workflow with one job:
// the action's inputs become workflow_call inputs, its outputs the job's
// outputs (evaluated, like an action's, after every step), and its steps
// are copied verbatim, only indented, so that positions map back exactly.
func wrapComposite(meta *actionlint.ActionMetadata, top, stepsKey *yaml.Node, src []string) (*wrapped, error) {
	base := stepsKey.Column - 1 // indentation of the steps key in action.yml
	line := src[stepsKey.Line-1]
	if strings.TrimLeft(line, " ") != line[base:] {
		return nil, fmt.Errorf("line %d: runs.steps must be a block key on its own line for the lint to map positions", stepsKey.Line)
	}
	// jobs: at column 0 and the job id at 1 need the job's keys at 2 or more.
	indent := max(base, 2)
	shift := indent - base
	pad := func(n int) string { return strings.Repeat(" ", n) }

	var w wrapped
	var inputs []string
	for _, in := range meta.Inputs {
		inputs = append(inputs, fmt.Sprintf("%s: {type: string, required: %t}", jsonString(in.Name), in.Required))
	}
	sort.Strings(inputs)
	w.add("on: {workflow_call: {inputs: {"+strings.Join(inputs, ", ")+"}}}", origin{})
	w.add("jobs:", origin{})
	w.add(pad(indent-1)+"composite:", origin{})
	w.add(pad(indent)+"runs-on: ubuntu-latest", origin{})

	if _, outputs := mapping(top, "outputs"); outputs != nil && len(outputs.Content) > 0 {
		w.add(pad(indent)+"outputs:", origin{})
		for i := 0; i+1 < len(outputs.Content); i += 2 {
			name := outputs.Content[i]
			_, v := mapping(outputs.Content[i+1], "value")
			prefix := pad(indent+2) + jsonString(name.Value) + ": "
			if v == nil {
				return nil, fmt.Errorf("line %d: output %q of a composite action needs a value", name.Line, name.Value)
			}
			// The value's own text keeps columns exact; a value that does
			// not fit on one line is quoted instead, at the cost of columns.
			text := jsonString(v.Value)
			if raw := src[v.Line-1][v.Column-1:]; sameScalar(raw, v.Value) {
				text = raw
			}
			w.add(prefix+text, origin{line: v.Line, colShift: v.Column - 1 - len(prefix)})
		}
	}

	w.add(pad(shift)+line, origin{line: stepsKey.Line, colShift: -shift})
	for i := stepsKey.Line; i < len(src); i++ {
		s := src[i]
		trimmed := strings.TrimLeft(s, " ")
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") && len(s)-len(trimmed) <= base {
			break // the next key after runs.steps
		}
		if trimmed != "" {
			s = pad(shift) + s
		}
		w.add(s, origin{line: i + 1, colShift: -shift})
	}
	return &w, nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sameScalar reports whether raw, the rest of a line, is a whole YAML
// scalar with the value want.
func sameScalar(raw, want string) bool {
	var m map[string]string
	return yaml.Unmarshal([]byte("v: "+raw), &m) == nil && m["v"] == want
}
