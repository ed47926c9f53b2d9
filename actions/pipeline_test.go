package actions_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cib-project/cib/internal/instruction"
)

// The image pipeline (.github/workflows/images.yml) is linted by
// TestActionlint; actionlint cannot see into the actions it checks cib
// out to .cib, nor know cib's rules for the pipeline. These tests do.

type workflow struct {
	On          map[string]yaml.Node   `yaml:"on"`
	Permissions map[string]string      `yaml:"permissions"`
	Env         map[string]string      `yaml:"env"`
	Jobs        map[string]workflowJob `yaml:"jobs"`
}

type workflowJob struct {
	Name        string            `yaml:"name"`
	Needs       yaml.Node         `yaml:"needs"`
	If          string            `yaml:"if"`
	Permissions map[string]string `yaml:"permissions"`
	Environment string            `yaml:"environment"`
	Concurrency struct {
		Group            string `yaml:"group"`
		CancelInProgress string `yaml:"cancel-in-progress"`
	} `yaml:"concurrency"`
	Strategy struct {
		Matrix string `yaml:"matrix"`
	} `yaml:"strategy"`
	Outputs map[string]string `yaml:"outputs"`
	Steps   []struct {
		Uses string            `yaml:"uses"`
		With map[string]string `yaml:"with"`
	} `yaml:"steps"`
	raw string // the job's YAML, for the matrix fields it reads
}

func loadPipeline(t *testing.T, root string) *workflow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(data, &w); err != nil {
		t.Fatalf("images.yml: %v", err)
	}
	var doc struct {
		Jobs map[string]yaml.Node `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for name, node := range doc.Jobs {
		out, err := yaml.Marshal(&node)
		if err != nil {
			t.Fatal(err)
		}
		j := w.Jobs[name]
		j.raw = string(out)
		w.Jobs[name] = j
	}
	return &w
}

var (
	matrixFrom  = regexp.MustCompile(`^\$\{\{\s*fromJSON\(needs\.plan\.outputs\.matrix_([a-z_]+)\)\s*\}\}$`)
	matrixField = regexp.MustCompile(`matrix\.([A-Za-z0-9_]+)`)
	cibAction   = regexp.MustCompile(`^\./\.cib/actions/([a-z-]+)$`)
	// azureActions are the actions that log in to Azure: the only ones
	// whose jobs may ask for an OIDC token.
	azureActions = []string{"prepare", "purge", "build-disk-image", "build-machine-image", "verify"}
)

// stage returns the plan stage a job's matrix comes from, or "".
func (j workflowJob) stage() string {
	if m := matrixFrom.FindStringSubmatch(strings.TrimSpace(j.Strategy.Matrix)); m != nil {
		return m[1]
	}
	return ""
}

func TestPipelineWorkflow(t *testing.T) {
	root := repoRoot(t)
	w := loadPipeline(t, root)

	if len(w.Permissions) != 1 || w.Permissions["contents"] != "read" {
		t.Errorf("workflow permissions %v: want contents: read only; jobs ask for more", w.Permissions)
	}
	for _, trigger := range []string{"push", "pull_request", "workflow_dispatch", "workflow_call"} {
		if _, ok := w.On[trigger]; !ok {
			t.Errorf("images.yml does not run on %s", trigger)
		}
	}
	plan, ok := w.Jobs["plan"]
	if !ok {
		t.Fatal("images.yml has no plan job")
	}
	stages := map[string]bool{}
	for name, j := range w.Jobs {
		t.Run(name, func(t *testing.T) {
			usesAzure := false
			for _, s := range j.Steps {
				switch m := cibAction.FindStringSubmatch(s.Uses); {
				case m != nil:
					checkActionInputs(t, root, m[1], s.With)
					usesAzure = usesAzure || slices.Contains(azureActions, m[1])
				case strings.HasPrefix(s.Uses, "./"):
					checkActionInputs(t, root, strings.TrimPrefix(s.Uses, "./actions/"), s.With)
				case s.Uses != "" && !pinnedUses.MatchString(strings.Fields(s.Uses)[0]):
					t.Errorf("uses %s: third-party actions are pinned by commit SHA", s.Uses)
				}
			}
			if got := j.Permissions["id-token"]; (got == "write") != usesAzure {
				t.Errorf("permissions id-token: %q; want write exactly when a step logs in to Azure (%t)", got, usesAzure)
			}
			stage := j.stage()
			if stage == "" {
				if name != "plan" && name != "comment" {
					t.Errorf("job %s has no matrix from the plan", name)
				}
				return
			}
			stages[stage] = true
			if plan.Outputs["matrix_"+stage] != "${{ steps.plan.outputs.matrix_"+stage+" }}" ||
				plan.Outputs["count_"+stage] != "${{ steps.plan.outputs.count_"+stage+" }}" {
				t.Errorf("the plan job does not pass on matrix_%s and count_%s", stage, stage)
			}
			// GitHub rejects an empty matrix: the job must be skipped instead.
			if !strings.Contains(j.If, "needs.plan.outputs.count_"+stage+" != '0'") {
				t.Errorf("if: %s; want the job skipped when count_%s is 0", j.If, stage)
			}
			if !strings.Contains(j.If, "github.event_name != 'pull_request'") {
				t.Errorf("if: %s; a pull request only plans (no credentials, forks included)", j.If)
			}
			if j.Environment != "${{ matrix.environment }}" {
				t.Errorf("environment %q; want ${{ matrix.environment }}, for its credentials and protection rules", j.Environment)
			}
		})
	}
	for _, want := range []string{"prepare", "purge", "disk_image", "machine_image", "pool_config", "verify"} {
		if !stages[want] {
			t.Errorf("no job runs the %s matrix", want)
		}
	}

	// Two pushes never build the same key at once.
	for _, name := range []string{"disk-image", "machine-image"} {
		c := w.Jobs[name].Concurrency
		if !strings.Contains(c.Group, "${{ matrix.key }}") || !strings.Contains(c.Group, "${{ matrix.environment }}") || c.CancelInProgress != "false" {
			t.Errorf("job %s concurrency %+v: want a group per environment and key that queues (cancel-in-progress: false)", name, c)
		}
	}
	// What a failed run left is purged whatever happened.
	cleanup := w.Jobs["cleanup"]
	if !strings.HasPrefix(cleanup.If, "always()") || cleanup.stage() != "purge" {
		t.Errorf("cleanup job: if %q, matrix %q; want an always() purge over the purge matrix", cleanup.If, cleanup.Strategy.Matrix)
	}
	if s := cleanup.Steps[len(cleanup.Steps)-1]; s.With["this-run"] != "true" {
		t.Errorf("the cleanup purge does not name this run: %v", s.With)
	}
}

// checkActionInputs checks a step's with: against actions/<name>: every
// key an input, every required input without a default given.
func checkActionInputs(t *testing.T, root, name string, with map[string]string) {
	t.Helper()
	a := loadAction(t, filepath.Join(root, "actions", name, "action.yml"))
	for k := range with {
		if _, ok := a.Inputs[k]; !ok {
			t.Errorf("actions/%s has no input %q", name, k)
		}
	}
	for k, in := range a.Inputs {
		if _, ok := with[k]; !ok && in.Required && in.Default == nil {
			t.Errorf("actions/%s: required input %q is not given", name, k)
		}
	}
}

// TestPipelineDispatchInputs checks that the manual run's inputs are the
// instruction model's: the four filters and one boolean per flag, each
// turned by the parser into exactly that instruction, without diagnostics.
func TestPipelineDispatchInputs(t *testing.T) {
	root := repoRoot(t)
	w := loadPipeline(t, root)
	node := w.On["workflow_dispatch"]
	var dispatch struct {
		Inputs map[string]struct {
			Type    string `yaml:"type"`
			Default any    `yaml:"default"`
		} `yaml:"inputs"`
	}
	if err := node.Decode(&dispatch); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range dispatch.Inputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, filter := range []string{"keys", "pools", "regions", "environments"} {
		if in, ok := dispatch.Inputs[filter]; !ok || in.Type != "string" {
			t.Errorf("workflow_dispatch input %s: %+v; want a string input", filter, in)
		}
	}
	skipFlags := []instruction.Flag{instruction.NoCI, instruction.NoActionsCI, instruction.NoTaskclusterCI, instruction.NoTravisCI}
	for _, f := range instruction.AllFlags {
		in, ok := dispatch.Inputs[string(f)]
		if slices.Contains(skipFlags, f) {
			if ok {
				t.Errorf("input %s: a manual run that runs nothing has no use", f)
			}
			continue
		}
		if !ok || in.Type != "boolean" || in.Default != false {
			t.Errorf("workflow_dispatch input %s: %+v; want a boolean, default false", f, in)
			continue
		}
		got := instruction.FromDispatch(instruction.DispatchInputs{Flags: map[instruction.Flag]bool{f: true}}, instruction.Vocabulary{})
		if len(got.Diagnostics) != 0 || !got.Has(f) {
			t.Errorf("input %s: the parser gives %v, diagnostics %v", f, got.Flags, got.Diagnostics)
		}
	}
	for _, name := range names {
		if !slices.Contains([]string{"keys", "pools", "regions", "environments"}, name) &&
			!slices.Contains(instruction.AllFlags, instruction.Flag(name)) {
			t.Errorf("workflow_dispatch input %s is neither a filter nor a flag", name)
		}
	}
}

// checkPipelineFields checks, for a run of actions/plan, that every entry
// of every stage's matrix has each field the pipeline's job for that stage
// reads (matrix.<field>), so that no job gets an empty value from
// fromJSON. A stage whose matrix is empty in this run cannot be checked,
// and says so.
func checkPipelineFields(t *testing.T, root string, run *actionRun) (checked []string) {
	t.Helper()
	w := loadPipeline(t, root)
	for name, j := range w.Jobs {
		stage := j.stage()
		if stage == "" {
			continue
		}
		entries := matrix(t, "matrix_"+stage, run.outputs["matrix_"+stage])
		if len(entries) == 0 {
			continue
		}
		checked = append(checked, name)
		for _, field := range matrixField.FindAllStringSubmatch(j.raw, -1) {
			for i, e := range entries {
				if v, ok := e[field[1]]; !ok || fmt.Sprint(v) == "" {
					t.Errorf("job %s reads matrix.%s, which entry %d of matrix_%s lacks: %v", name, field[1], i, stage, e)
				}
			}
		}
	}
	sort.Strings(checked)
	return checked
}

// TestPipelineReadsWhatThePlanWrites plans two pushes that, together, run
// every stage (pool-deploy deploys pools without building images) and
// checks each job's matrix fields against them.
func TestPipelineReadsWhatThePlanWrites(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	seen := map[string]bool{}
	for _, msg := range []string{
		"rebuild\n\ninclude keys: win7-32\ninclude environments: staging\n",
		"deploy\n\ninclude keys: win7-32\ninclude environments: staging\npool-deploy\n",
	} {
		run := runAction(t, root, newWorkspace(t, root, msg, ""), msg, map[string]string{"artifact": ""})
		if run.failed {
			t.Fatal("the plan action failed")
		}
		for _, job := range checkPipelineFields(t, root, run) {
			seen[job] = true
		}
	}
	var checked []string
	for job := range seen {
		checked = append(checked, job)
	}
	sort.Strings(checked)
	want := []string{"cleanup", "disk-image", "machine-image", "pool-config", "prepare", "purge", "verify"}
	if !slices.Equal(checked, want) {
		t.Errorf("checked the jobs %v; want every stage job %v (a stage with an empty matrix could not be checked)", checked, want)
	}
}

// TestWorkflowsGiveTheActionsTheirInputs checks every workflow's steps
// that run cib's actions (./actions/X, or ./.cib/actions/X where the
// workflow checks cib out): each with: key an input, each required input
// given; and every other action pinned by commit SHA.
func TestWorkflowsGiveTheActionsTheirInputs(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("workflows %v (%v): want ci.yml, images.yml and plan-comment.yml at least", files, err)
	}
	local := regexp.MustCompile(`^\./(?:\.cib/)?actions/([a-z-]+)$`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var w workflow
		if err := yaml.Unmarshal(data, &w); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for name, j := range w.Jobs {
			for _, s := range j.Steps {
				if s.Uses == "" {
					continue
				}
				if m := local.FindStringSubmatch(s.Uses); m != nil {
					t.Run(filepath.Base(f)+"/"+name+"/"+m[1], func(t *testing.T) { checkActionInputs(t, root, m[1], s.With) })
				} else if !pinnedUses.MatchString(s.Uses) {
					t.Errorf("%s job %s: uses %s: third-party actions are pinned by commit SHA", filepath.Base(f), name, s.Uses)
				}
			}
		}
	}
}
