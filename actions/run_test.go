package actions_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// runnerTemp is RUNNER_TEMP for every run of the action in this test
// binary: the action builds cib into it, and the build is the slow part,
// so it happens once (see build).
var runnerTemp string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cib-runner-temp-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runnerTemp = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// compositeAction is the part of action.yml the runner test understands.
// It is decoded with known fields only, so a key the runner below does not
// honour (continue-on-error, timeout-minutes, ...) fails the test instead of
// being ignored.
type compositeAction struct {
	Name        string                  `yaml:"name"`
	Description string                  `yaml:"description"`
	Author      string                  `yaml:"author"`
	Branding    yaml.Node               `yaml:"branding"`
	Inputs      map[string]actionInput  `yaml:"inputs"`
	Outputs     map[string]actionOutput `yaml:"outputs"`
	Runs        struct {
		Using string       `yaml:"using"`
		Steps []actionStep `yaml:"steps"`
	} `yaml:"runs"`
}

type actionInput struct {
	Description        string  `yaml:"description"`
	Required           bool    `yaml:"required"`
	Default            *string `yaml:"default"`
	DeprecationMessage string  `yaml:"deprecationMessage"`
}

type actionOutput struct {
	Description string `yaml:"description"`
	Value       string `yaml:"value"`
}

type actionStep struct {
	Name             string            `yaml:"name"`
	ID               string            `yaml:"id"`
	If               string            `yaml:"if"`
	Uses             string            `yaml:"uses"`
	With             map[string]string `yaml:"with"`
	Run              string            `yaml:"run"`
	Shell            string            `yaml:"shell"`
	WorkingDirectory string            `yaml:"working-directory"`
	Env              map[string]string `yaml:"env"`
}

func (s actionStep) title(i int) string {
	switch {
	case s.Name != "":
		return s.Name
	case s.ID != "":
		return s.ID
	case s.Uses != "":
		return s.Uses
	}
	return fmt.Sprintf("step %d", i+1)
}

func loadAction(t *testing.T, file string) *compositeAction {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var a compositeAction
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("%s: %v (the runner test supports only the keys in compositeAction)", file, err)
	}
	if a.Runs.Using != "composite" {
		t.Fatalf("%s: runs.using is %q; the runner test runs composite actions", file, a.Runs.Using)
	}
	return &a
}

// stepResult is what happened to one step, as the run log would show it.
type stepResult struct {
	step     actionStep
	title    string
	status   string // success, failure or skipped
	exitCode int
	log      string
	outputs  map[string]string
	summary  string
}

// actionRun is one run of the composite action.
type actionRun struct {
	artifacts map[string][]string // upload-artifact name → files, relative to its path
	steps     []stepResult
	failed    bool
	outputs   map[string]string // the action's declared outputs that were set
	summary   string            // every step's summary, as the job summary shows it
}

// step returns the first step the predicate matches; the test fails
// without one, since every assertion about it would be vacuous.
func (r *actionRun) step(t *testing.T, what string, match func(actionStep) bool) stepResult {
	t.Helper()
	for _, s := range r.steps {
		if match(s.step) {
			return s
		}
	}
	t.Fatalf("the action has no %s step", what)
	return stepResult{}
}

func (r *actionRun) fetchStep(t *testing.T) stepResult {
	t.Helper()
	return r.step(t, "git fetch", func(s actionStep) bool { return strings.Contains(s.Run, "git fetch") })
}

func (r *actionRun) planStep(t *testing.T) stepResult {
	t.Helper()
	return r.step(t, "plan (id: plan)", func(s actionStep) bool { return s.ID == "plan" })
}

// runner runs a composite action's steps the way the GitHub runner does,
// for the subset of features the action uses; anything else fails the
// test, so a new feature in action.yml cannot be silently skipped.
type runner struct {
	t          *testing.T
	action     *compositeAction
	actionPath string
	inputs     map[string]string
	workspace  string
	env        []string // the runner's environment for every step
	tmp        string   // per-run files: scripts, step outputs, summaries
	// stepOutputs are the outputs of the steps with an id that ran.
	stepOutputs map[string]map[string]string
	// artifacts are the files each upload-artifact step uploaded, by name.
	artifacts map[string][]string
}

// testToken is github.token in every run: the logs must never show it.
const testToken = "ghs_cibRunnerTestToken0123456789"

var exprPattern = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// value evaluates the expressions the action uses: no more.
func (r *runner) value(expr string) string {
	r.t.Helper()
	switch {
	case expr == "github.action_path":
		return r.actionPath
	case expr == "runner.temp":
		return runnerTemp
	case expr == "runner.os":
		return "Linux"
	case expr == "github.token":
		return testToken
	case strings.HasPrefix(expr, "steps."):
		m := stepOutputExpr.FindStringSubmatch(expr)
		if m == nil {
			r.t.Fatalf("${{ %s }}: only steps.<id>.outputs.<name> is supported", expr)
		}
		if !slices.ContainsFunc(r.action.Runs.Steps, func(s actionStep) bool { return s.ID == m[1] }) {
			r.t.Fatalf("${{ %s }}: no step has id %q", expr, m[1])
		}
		return r.stepOutputs[m[1]][m[2]] // "" until the step has run, as on GitHub
	case strings.HasPrefix(expr, "inputs."):
		name := strings.TrimPrefix(expr, "inputs.")
		v, ok := r.inputs[name]
		if !ok {
			r.t.Fatalf("${{ %s }}: the action declares no input %q", expr, name)
		}
		return v
	}
	r.t.Fatalf("${{ %s }}: an expression the runner test does not support", expr)
	return ""
}

func (r *runner) expand(s string) string {
	r.t.Helper()
	return exprPattern.ReplaceAllStringFunc(s, func(m string) string {
		return r.value(exprPattern.FindStringSubmatch(m)[1])
	})
}

var (
	conditionPattern = regexp.MustCompile(`^((?:inputs|steps|runner)(?:\.[A-Za-z0-9_-]+)+)\s*(==|!=)\s*'([^']*)'$`)
	stepOutputExpr   = regexp.MustCompile(`^steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)$`)
	pinnedUses       = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+@[0-9a-f]{40}$`)
)

// condition evaluates an if: of the form x == 'literal' (or !=), x being
// an input, a step output or runner.os.
// Like GitHub, it compares strings ignoring case. Status functions are not
// supported: a step with an if: runs only after every earlier step
// succeeded, as with the implicit success().
func (r *runner) condition(cond string) bool {
	r.t.Helper()
	c := strings.TrimSpace(cond)
	if strings.HasPrefix(c, "${{") && strings.HasSuffix(c, "}}") {
		c = strings.TrimSpace(c[3 : len(c)-2])
	}
	m := conditionPattern.FindStringSubmatch(c)
	if m == nil {
		r.t.Fatalf("if: %s: a condition the runner test does not support", cond)
	}
	equal := strings.EqualFold(r.value(m[1]), m[3])
	return equal == (m[2] == "==")
}

// check evaluates every expression, condition and uses: of every step
// before anything runs, so that one in a step this run skips cannot slip
// through.
func (r *runner) check() {
	r.t.Helper()
	for i, s := range r.action.Runs.Steps {
		switch {
		case s.Uses != "" && s.Run != "":
			r.t.Fatalf("step %q has both run: and uses:", s.title(i))
		case s.Uses == "" && s.Run == "":
			r.t.Fatalf("step %q has neither run: nor uses:", s.title(i))
		case s.Uses != "" && !strings.HasPrefix(s.Uses, "actions/setup-go@") && !strings.HasPrefix(s.Uses, "actions/upload-artifact@"):
			r.t.Fatalf("step %q uses %s: the runner test knows only actions/setup-go and actions/upload-artifact", s.title(i), s.Uses)
		case s.Uses != "" && !pinnedUses.MatchString(s.Uses):
			r.t.Fatalf("step %q uses %s: third-party actions are pinned by commit SHA", s.title(i), s.Uses)
		case s.Run != "" && s.Shell != "bash":
			r.t.Fatalf("step %q: shell %q; the runner test runs shell: bash only", s.title(i), s.Shell)
		}
		if s.If != "" {
			r.condition(s.If)
		}
		for _, v := range append([]string{s.Name, s.Run, s.WorkingDirectory}, slices.Collect(maps.Values(s.Env))...) {
			r.expand(v)
		}
		for _, v := range s.With {
			r.expand(v)
		}
	}
}

func (r *runner) run() *actionRun {
	t := r.t
	t.Helper()
	r.check()
	res := &actionRun{outputs: map[string]string{}}
	r.stepOutputs = map[string]map[string]string{}
	r.artifacts = map[string][]string{}
	stepOutputs := r.stepOutputs
	for i, s := range r.action.Runs.Steps {
		sr := stepResult{step: s, title: s.title(i), status: "skipped"}
		switch {
		case res.failed:
			sr.log = "skipped: an earlier step failed"
		case s.If != "" && !r.condition(s.If):
			sr.log = "skipped: if: " + s.If
		case s.Uses != "":
			sr.log = r.uses(s)
		default:
			sr = r.runStep(i, s)
		}
		t.Logf("step %q: %s (exit %d)\n%s", sr.title, sr.status, sr.exitCode, sr.log)
		if sr.status == "failure" {
			res.failed = true
		}
		if s.ID != "" {
			stepOutputs[s.ID] = sr.outputs
		}
		res.steps = append(res.steps, sr)
	}
	for _, s := range res.steps {
		res.summary += s.summary
	}
	res.artifacts = r.artifacts
	for name, o := range r.action.Outputs {
		m := outputPattern.FindStringSubmatch(strings.TrimSpace(o.Value))
		if m == nil {
			t.Fatalf("output %s: value %q is not ${{ steps.<id>.outputs.<name> }}, the only form the runner test supports", name, o.Value)
		}
		if v, ok := stepOutputs[m[1]][m[2]]; ok {
			res.outputs[name] = v
		}
	}
	return res
}

var outputPattern = regexp.MustCompile(`^\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)\s*\}\}$`)

// uses handles a uses: step. actions/setup-go is not run: the Go that
// runs this test is already there; its files must exist, or setup-go
// would fail on the runner. actions/upload-artifact collects the files
// under path (failing as it would when if-no-files-found is error and
// there are none).
func (r *runner) uses(s actionStep) string {
	r.t.Helper()
	if strings.HasPrefix(s.Uses, "actions/upload-artifact@") {
		return r.uploadArtifact(s)
	}
	for k, v := range s.With {
		v = r.expand(v)
		if k == "go-version-file" || k == "cache-dependency-path" {
			if _, err := os.Stat(v); err != nil {
				r.t.Errorf("setup-go %s: %v", k, err)
			}
		}
	}
	return "skipped: Go is already installed"
}

func (r *runner) uploadArtifact(s actionStep) string {
	r.t.Helper()
	name, path := r.expand(s.With["name"]), r.expand(s.With["path"])
	if name == "" || path == "" {
		r.t.Fatalf("upload-artifact: name %q and path %q must both be set", name, path)
	}
	var files []string
	err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(path, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.t.Fatal(err)
	}
	if len(files) == 0 && s.With["if-no-files-found"] == "error" {
		r.t.Errorf("upload-artifact %s: no files under %s (if-no-files-found: error fails the job)", name, path)
	}
	r.artifacts[name] = files
	return fmt.Sprintf("uploaded artifact %s: %s", name, strings.Join(files, ", "))
}

// build memoizes the action's build step: every case compiles the same
// source into the same RUNNER_TEMP.
var build struct {
	sync.Mutex
	done map[string]stepResult
}

func (r *runner) runStep(i int, s actionStep) stepResult {
	t := r.t
	t.Helper()
	script := r.expand(s.Run)
	dir := r.workspace
	if s.WorkingDirectory != "" {
		dir = r.expand(s.WorkingDirectory)
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(r.workspace, dir)
		}
	}
	if strings.Contains(script, "go build") {
		key := dir + "\x00" + script
		build.Lock()
		defer build.Unlock()
		if done, ok := build.done[key]; ok {
			done.step, done.title = s, s.title(i)
			done.log = "(built by an earlier case into the same RUNNER_TEMP)\n" + done.log
			return done
		}
		touchSources(t, dir)
		res := r.exec(i, s, script, dir)
		if build.done == nil {
			build.done = map[string]stepResult{}
		}
		build.done[key] = res
		return res
	}
	return r.exec(i, s, script, dir)
}

// touchSources stats the Go sources under dir. go test caches a passing
// result by the files the test process itself touched, and the build runs
// in a child process: without this, a change to cib would not rerun a
// cached TestPlanAction.
func touchSources(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != dir:
			return filepath.SkipDir
		case !d.IsDir() && (strings.HasSuffix(p, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum"):
			_, err = os.Stat(p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// exec runs a script as the runner runs shell: bash, with the step's own
// GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files.
func (r *runner) exec(i int, s actionStep, script, dir string) stepResult {
	t := r.t
	t.Helper()
	res := stepResult{step: s, title: s.title(i), outputs: map[string]string{}}
	scriptFile := filepath.Join(r.tmp, fmt.Sprintf("step-%d.sh", i))
	outputFile := filepath.Join(r.tmp, fmt.Sprintf("output-%d", i))
	summaryFile := filepath.Join(r.tmp, fmt.Sprintf("summary-%d", i))
	for f, content := range map[string]string{scriptFile: script, outputFile: "", summaryFile: ""} {
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", scriptFile)
	cmd.Dir = dir
	cmd.Env = slices.Clone(r.env)
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+r.expand(v))
	}
	cmd.Env = append(cmd.Env, "GITHUB_OUTPUT="+outputFile, "GITHUB_STEP_SUMMARY="+summaryFile)
	out, err := cmd.CombinedOutput()
	res.log = string(out)
	res.status = "success"
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.status, res.exitCode = "failure", exit.ExitCode()
	case err != nil:
		t.Fatalf("step %q: %v", res.title, err)
	}
	res.outputs = parseOutputs(t, readFileIfAny(t, outputFile))
	res.summary = readFileIfAny(t, summaryFile)
	return res
}

func readFileIfAny(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(data)
}

// parseOutputs reads a GITHUB_OUTPUT file as the runner does: name=value
// lines and name<<DELIMITER heredocs.
func parseOutputs(t *testing.T, data string) map[string]string {
	t.Helper()
	out := map[string]string{}
	lines := strings.Split(data, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "" {
			continue
		}
		eq, heredoc := strings.Index(line, "="), strings.Index(line, "<<")
		switch {
		case eq > 0 && (heredoc < 0 || eq < heredoc):
			out[line[:eq]] = line[eq+1:]
		case heredoc > 0:
			name, delim := line[:heredoc], line[heredoc+2:]
			end := slices.Index(lines[i+1:], delim)
			if delim == "" || end < 0 {
				t.Fatalf("GITHUB_OUTPUT line %d: heredoc %q never ends", i+1, line)
			}
			out[name] = strings.Join(lines[i+1:i+1+end], "\n")
			i += 1 + end
		default:
			t.Fatalf("GITHUB_OUTPUT line %d: %q is neither name=value nor name<<DELIMITER", i+1, line)
		}
	}
	return out
}

// runnerEnv is this process's environment without anything a real runner
// (this test may run in GitHub Actions) or a git hook set, plus the
// variables the runner sets for every step.
func runnerEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "RUNNER_") || strings.HasPrefix(k, "ACTIONS_") ||
			strings.HasPrefix(k, "INPUT_") || strings.HasPrefix(k, "CIB_") || strings.HasPrefix(k, "GIT_") {
			continue
		}
		env = append(env, kv)
	}
	// No user or system git configuration, as on a fresh runner.
	env = append(env, "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1")
	return append(env, extra...)
}

func git(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = runnerEnv(
		"GIT_AUTHOR_NAME=cib test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=cib test", "GIT_COMMITTER_EMAIL=test@example.com",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// workspace is the checkout the action runs in.
type workspace struct {
	dir, sha string
	// recordsCommit is the tip of the records branch, when there is one.
	recordsCommit string
}

// newWorkspace builds the checkout: the repository's config/ committed
// with the message, and an origin that is a bare repository holding the
// pushed branch; with a records branch name, that branch too, in origin
// and as a local branch (which the plan reads when there is no fetched
// one), so that only --no-records can keep the plan from reading records.
func newWorkspace(t *testing.T, root, message, recordsBranch string) workspace {
	t.Helper()
	return newWorkspaceWith(t, root, message, recordsBranch, nil)
}

// newWorkspaceWith is newWorkspace with edit applied to the copied
// config/ folder before it is committed.
func newWorkspaceWith(t *testing.T, root, message, recordsBranch string, edit func(configDir string)) workspace {
	t.Helper()
	base := t.TempDir()
	origin, dir := filepath.Join(base, "origin.git"), filepath.Join(base, "workspace")
	git(t, base, "", "init", "-q", "--bare", "-b", "main", origin)
	git(t, base, "", "init", "-q", "-b", "main", dir)
	if err := os.CopyFS(filepath.Join(dir, "config"), os.DirFS(filepath.Join(root, "config"))); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(filepath.Join(dir, "config"))
	}
	git(t, dir, "", "add", "config")
	git(t, dir, "", "commit", "-q", "-m", message)
	git(t, dir, "", "remote", "add", "origin", origin)
	git(t, dir, "", "push", "-q", "origin", "main")
	ws := workspace{dir: dir, sha: git(t, dir, "", "rev-parse", "HEAD")}
	if recordsBranch != "" {
		blob := git(t, dir, "build records of cib\n", "hash-object", "-w", "--stdin")
		tree := git(t, dir, "100644 blob "+blob+"\tREADME.md\n", "mktree")
		ws.recordsCommit = git(t, dir, "", "commit-tree", tree, "-m", "records branch, no build yet")
		git(t, dir, "", "branch", recordsBranch, ws.recordsCommit)
		git(t, dir, "", "push", "-q", "origin", recordsBranch)
		// A checkout has no remote-tracking records branch: only the
		// action's fetch can bring it.
		git(t, dir, "", "update-ref", "-d", "refs/remotes/origin/"+recordsBranch)
	}
	return ws
}

// recordsBranch reads records.branch from the configuration, the branch
// the action fetches.
func recordsBranch(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "config", "settings.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Records struct {
			Branch string `yaml:"branch"`
		} `yaml:"records"`
	}
	if err := yaml.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s.Records.Branch == "" {
		t.Fatal("config/settings.yaml sets no records.branch")
	}
	return s.Records.Branch
}

// runAction runs actions/plan in ws for a push of ws.sha, with inputs
// over the defaults.
func runAction(t *testing.T, root string, ws workspace, message string, inputs map[string]string) *actionRun {
	t.Helper()
	return runNamedAction(t, root, "plan", ws, message, inputs)
}

// runNamedAction runs actions/<name> in ws for a push of ws.sha, with
// inputs over the defaults (whose expressions are evaluated, as GitHub
// does for ${{ github.token }}).
func runNamedAction(t *testing.T, root, action string, ws workspace, message string, inputs map[string]string) *actionRun {
	t.Helper()
	return runEventAction(t, root, action, ws, "push", map[string]any{
		"ref":         "refs/heads/main",
		"after":       ws.sha,
		"head_commit": map[string]any{"id": ws.sha, "message": message},
		"repository":  map[string]any{"full_name": "cib-project/cib"},
	}, inputs)
}

// runEventAction runs actions/<name> in ws for an event (its name and
// payload), with inputs over the defaults (whose expressions are
// evaluated, as GitHub does for ${{ github.token }}).
//
// extraEnv is added to the runner's environment: an Azure stand-in's
// (azuretest.Server.Env), say.
func runEventAction(t *testing.T, root, action string, ws workspace, eventName string, payload map[string]any, inputs map[string]string, extraEnv ...string) *actionRun {
	t.Helper()
	actionPath := filepath.Join(root, "actions", action)
	a := loadAction(t, filepath.Join(actionPath, "action.yml"))
	values := map[string]string{}
	defaults := &runner{t: t, action: a, actionPath: actionPath}
	for name, in := range a.Inputs {
		if in.Default != nil {
			values[name] = defaults.expand(*in.Default)
		}
	}
	for name, v := range inputs {
		if _, ok := a.Inputs[name]; !ok {
			t.Fatalf("input %q: the action declares no such input", name)
		}
		values[name] = v
	}
	for name, in := range a.Inputs {
		if _, ok := values[name]; !ok && in.Required {
			t.Fatalf("input %q is required and has no default: give it", name)
		}
	}
	tmp := t.TempDir()
	event, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	eventFile := filepath.Join(tmp, "event.json")
	if err := os.WriteFile(eventFile, event, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &runner{
		t: t, action: a, actionPath: actionPath, inputs: values, workspace: ws.dir, tmp: tmp,
		env: runnerEnv(
			"CI=true",
			"GITHUB_ACTIONS=true",
			"GITHUB_WORKSPACE="+ws.dir,
			"GITHUB_ACTION_PATH="+actionPath,
			"GITHUB_EVENT_NAME="+eventName,
			"GITHUB_EVENT_PATH="+eventFile,
			"GITHUB_SHA="+ws.sha,
			"GITHUB_REF=refs/heads/main",
			"GITHUB_REPOSITORY=cib-project/cib",
			"GITHUB_SERVER_URL=https://github.com",
			"GITHUB_RUN_ID=4242",
			"RUNNER_OS=Linux",
			"RUNNER_TEMP="+runnerTemp,
		),
	}
	r.env = append(r.env, extraEnv...)
	return r.run()
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the action: %v", tool, err)
		}
	}
}

// matrix decodes a matrix output, {"include":[...]}.
func matrix(t *testing.T, name, value string) []map[string]any {
	t.Helper()
	var m struct {
		Include []map[string]any `json:"include"`
	}
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatalf("output %s is not a matrix: %v\n%s", name, err, value)
	}
	if m.Include == nil {
		t.Fatalf("output %s has no include list: %s", name, value)
	}
	return m.Include
}

// recordsRef is the records ref the plan compared with ("" for none).
func recordsRef(t *testing.T, run *actionRun) (ref, commit string) {
	t.Helper()
	var p struct {
		Records struct {
			Ref    string `json:"ref"`
			Commit string `json:"commit"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(run.outputs["plan"]), &p); err != nil {
		t.Fatalf("output plan is not JSON: %v", err)
	}
	return p.Records.Ref, p.Records.Commit
}

// checkOutputs asserts that every declared output was set and that every
// stage's count is the size of its matrix.
func checkOutputs(t *testing.T, root string, run *actionRun) {
	t.Helper()
	a := loadAction(t, filepath.Join(root, "actions", "plan", "action.yml"))
	if len(a.Outputs) == 0 {
		t.Fatal("the action declares no outputs")
	}
	for name := range a.Outputs {
		if _, ok := run.outputs[name]; !ok {
			t.Errorf("output %s: its step output was never written", name)
		}
		if stage, ok := strings.CutPrefix(name, "matrix_"); ok {
			n := len(matrix(t, name, run.outputs[name]))
			if c := run.outputs["count_"+stage]; c != fmt.Sprint(n) {
				t.Errorf("count_%s = %q, but matrix_%s has %d entries", stage, c, stage, n)
			}
		}
	}
}

func TestPlanAction(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	branch := recordsBranch(t, root)

	t.Run("push with instructions", func(t *testing.T) {
		msg := "bump\n\ninclude keys: win7-32\ninclude environments: staging\n"
		run := runAction(t, root, newWorkspace(t, root, msg, ""), msg, nil)
		if run.failed {
			t.Fatal("the action failed")
		}
		checkOutputs(t, root, run)
		fetch := run.fetchStep(t)
		if fetch.status != "success" || !strings.Contains(fetch.log, "no records branch '"+branch+"' yet") {
			t.Errorf("fetch step: %s, want success and no records branch %q in the log:\n%s", fetch.status, branch, fetch.log)
		}
		if got := run.outputs["count_disk_image"]; got != "1" {
			t.Errorf("count_disk_image = %q, want 1", got)
		}
		// win7-32 has 5 Azure targets (regions), and one environment is included.
		if got := run.outputs["count_machine_image"]; got != "5" {
			t.Errorf("count_machine_image = %q, want 5", got)
		}
		disk := matrix(t, "matrix_disk_image", run.outputs["matrix_disk_image"])
		if len(disk) != 1 || disk[0]["key"] != "win7-32" || disk[0]["environment"] != "staging" {
			t.Errorf("matrix_disk_image include = %v, want one entry for win7-32 in staging", disk)
		}
		if got := run.outputs["exit"]; got != "0" {
			t.Errorf("exit = %q, want 0", got)
		}
		if ref, _ := recordsRef(t, run); ref != "" {
			t.Errorf("the plan read records from %q; there is no records branch", ref)
		}
		if !strings.Contains(run.summary, "<!-- cib-plan -->") {
			t.Errorf("the step summary has no plan:\n%s", run.summary)
		}
	})

	t.Run("instruction errors", func(t *testing.T) {
		msg := "bump\n\ninclude keys: nope\n"
		run := runAction(t, root, newWorkspace(t, root, msg, ""), msg, nil)
		plan := run.planStep(t)
		if plan.status != "success" || !run.failed {
			t.Errorf("plan step: %s, action failed: %t; want the plan written (success) and the action failed", plan.status, run.failed)
		}
		if last := run.steps[len(run.steps)-1]; last.status != "failure" || last.exitCode != 2 {
			t.Errorf("last step %q: %s with exit code %d; want failure with exit code 2", last.title, last.status, last.exitCode)
		}
		if files := run.artifacts["cib-plan"]; !slices.Contains(files, "comment.md") || !slices.Contains(files, "plan.json") {
			t.Errorf("artifact cib-plan holds %v; want the plan and its comment, which say what is wrong", files)
		}
		checkOutputs(t, root, run)
		if got := run.outputs["exit"]; got != "2" {
			t.Errorf("exit = %q, want 2", got)
		}
		for _, stage := range []string{"prepare", "purge", "disk_image", "machine_image", "pool_config", "verify"} {
			if got := run.outputs["count_"+stage]; got != "0" {
				t.Errorf("count_%s = %q, want 0: nothing runs", stage, got)
			}
		}
		for _, want := range []string{"<!-- cib-plan -->", `unknown key "nope"`, "nothing runs"} {
			if !strings.Contains(run.summary, want) {
				t.Errorf("the step summary does not show %q:\n%s", want, run.summary)
			}
		}
		if !regexp.MustCompile(`(?m)^::error.*unknown key "nope"`).MatchString(plan.log) {
			t.Errorf("no error annotation for the diagnostic in the plan step's log:\n%s", plan.log)
		}
	})

	// Both cases run in a checkout that has the records branch, locally
	// and in origin: with records the plan reads it, so without records
	// the empty ref can only come from --no-records.
	t.Run("records", func(t *testing.T) {
		msg := "bump\n\ninclude keys: win7-32\n"
		ws := newWorkspace(t, root, msg, branch)
		run := runAction(t, root, ws, msg, nil)
		if run.failed {
			t.Fatal("the action failed")
		}
		fetch := run.fetchStep(t)
		if fetch.status != "success" || !strings.Contains(fetch.log, "build records: origin/"+branch) {
			t.Errorf("fetch step: %s, want success and the records branch fetched:\n%s", fetch.status, fetch.log)
		}
		ref, commit := recordsRef(t, run)
		if ref != "refs/remotes/origin/"+branch || commit != ws.recordsCommit {
			t.Errorf("the plan read records from %q at %q, want the fetched refs/remotes/origin/%s at %s", ref, commit, branch, ws.recordsCommit)
		}
	})

	t.Run("no records", func(t *testing.T) {
		msg := "bump\n\ninclude keys: win7-32\n"
		ws := newWorkspace(t, root, msg, branch)
		run := runAction(t, root, ws, msg, map[string]string{"records": "false"})
		if run.failed {
			t.Fatal("the action failed")
		}
		checkOutputs(t, root, run)
		if fetch := run.fetchStep(t); fetch.status != "skipped" {
			t.Errorf("fetch step: %s, want skipped", fetch.status)
		}
		if refs := git(t, ws.dir, "", "for-each-ref", "refs/remotes/origin/"+branch); refs != "" {
			t.Errorf("the records branch was fetched: %s", refs)
		}
		if ref, _ := recordsRef(t, run); ref != "" {
			t.Errorf("the plan read records from %q; --no-records should have kept it from reading any", ref)
		}
		if got := run.outputs["exit"]; got != "0" {
			t.Errorf("exit = %q, want 0", got)
		}
	})
}

// TestPlanActionPullRequest runs actions/plan for a pull request: a dry
// run of the head commit, whose comment, whole plan and number are the
// artifact the comment jobs post from.
func TestPlanActionPullRequest(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	msg := "try win7-32\n\ninclude keys: win7-32\ninclude environments: staging\n"
	ws := newWorkspace(t, root, msg, "")
	run := runEventAction(t, root, "plan", ws, "pull_request", map[string]any{
		"number":       31,
		"pull_request": map[string]any{"number": 31, "head": map[string]any{"sha": ws.sha}},
	}, nil)
	if run.failed {
		t.Fatal("the action failed")
	}
	checkOutputs(t, root, run)
	if run.outputs["pull-request"] != "31" {
		t.Errorf("output pull-request = %q, want 31", run.outputs["pull-request"])
	}
	files := run.artifacts["cib-plan"]
	slices.Sort(files)
	if want := []string{"comment.md", "plan.json", "plan.md", "pull-request.txt"}; !slices.Equal(files, want) {
		t.Fatalf("artifact cib-plan holds %v, want %v", files, want)
	}
	dir := run.outputs["dir"]
	comment := readFileIfAny(t, filepath.Join(dir, "comment.md"))
	if !strings.HasPrefix(comment, "<!-- cib-plan -->\n## cib plan for "+ws.sha[:7]+" (dry run)") {
		t.Errorf("comment.md does not start with the marker and the dry-run title:\n%.300s", comment)
	}
	if got := strings.TrimSpace(readFileIfAny(t, filepath.Join(dir, "pull-request.txt"))); got != "31" {
		t.Errorf("pull-request.txt = %q, want 31", got)
	}
	var p struct {
		DryRun bool `json:"dry_run"`
	}
	if err := json.Unmarshal([]byte(readFileIfAny(t, filepath.Join(dir, "plan.json"))), &p); err != nil || !p.DryRun {
		t.Errorf("plan.json: dry_run %t (%v); a pull request is planned as a dry run", p.DryRun, err)
	}
	// Every stage job of the pipeline takes its entries with fromJSON and
	// reads their fields: each entry must have the fields the job reads.
	checkPipelineFields(t, root, run)
}
