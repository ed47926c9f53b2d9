package actions_test

import (
	"strings"
	"testing"
)

// TestPrepareActionRefusals runs actions/prepare as a runner would, on the
// paths that end before Azure is called (a run against Azure needs a
// login; the whole prepare is tested in internal/cli against the
// in-memory Azure): the inputs reach cib as flags (keys and groups split
// on commas, spaces and newlines), cib's refusal is in the log and the
// step summary, the exit output keeps its code, and the last step fails
// with it.
func TestPrepareActionRefusals(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	msg := "prepare\n"
	ws := newWorkspace(t, root, msg, "")

	for _, c := range []struct {
		name    string
		inputs  map[string]string
		exit    string
		log     string // in the prepare step's log
		summary string // in the step summary ("" for none: cib did not run)
	}{
		{
			name:    "unknown environment",
			inputs:  map[string]string{"environment": "nope"},
			exit:    "64",
			log:     `--environment "nope" is not an environment of settings.yaml`,
			summary: `**Refused: --environment "nope" is not an environment of settings.yaml**`,
		},
		{
			name:    "keys split on commas and spaces",
			inputs:  map[string]string{"environment": "staging", "keys": "win10-64, nope"},
			exit:    "64",
			log:     `--key "nope" is not an image key`,
			summary: "## cib prepare: staging\n",
		},
		{
			name:    "groups split on spaces and newlines",
			inputs:  map[string]string{"environment": "staging", "keys": "win10-64", "groups": "rg-central-us-gecko-t\nrg-nowhere", "dry-run": "true"},
			exit:    "64",
			log:     "--groups: rg-nowhere is the group of no selected target on azure",
			summary: "## cib prepare: staging (dry run)\n",
		},
		{
			name:    "gallery name",
			inputs:  map[string]string{"environment": "staging", "gallery": "not-a-gallery"},
			exit:    "64",
			log:     `--gallery "not-a-gallery"`,
			summary: "**Refused: --gallery",
		},
		{
			name:   "dry-run that is not a boolean",
			inputs: map[string]string{"environment": "staging", "dry-run": "maybe"},
			exit:   "64",
			log:    "::error::dry-run 'maybe': use true or false",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := runNamedAction(t, root, "prepare", ws, msg, c.inputs)
			if !run.failed || run.outputs["exit"] != c.exit {
				t.Fatalf("failed %t, exit %q: want a failure with exit %s", run.failed, run.outputs["exit"], c.exit)
			}
			step := run.step(t, "prepare (id: prepare)", func(s actionStep) bool { return s.ID == "prepare" })
			if step.status != "success" || !strings.Contains(step.log, c.log) {
				t.Errorf("prepare step: %s; want success (it keeps cib's code) and %q in the log:\n%s", step.status, c.log, step.log)
			}
			if last := run.steps[len(run.steps)-1]; last.status != "failure" || last.exitCode != 64 {
				t.Errorf("the last step: %s, exit %d; want failure, exit 64", last.status, last.exitCode)
			}
			switch {
			case c.summary == "" && run.summary != "":
				t.Errorf("cib should not have run, yet there is a step summary:\n%s", run.summary)
			case !strings.Contains(run.summary, c.summary):
				t.Errorf("the step summary does not show %q:\n%s", c.summary, run.summary)
			}
			for _, name := range []string{"created", "updated", "unchanged", "changed"} {
				if v, ok := run.outputs[name]; ok {
					t.Errorf("output %s = %q for a refusal; want it unset", name, v)
				}
			}
		})
	}
}
