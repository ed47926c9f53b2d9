package actions_test

import (
	"strings"
	"testing"
)

// TestPoolConfigActionWithoutRecords runs actions/pool-config as a runner
// would for a pool none of whose machine images is recorded: cib fails
// with exit 1 naming what is missing, nothing is uploaded (there are no
// files), the last step fails with cib's code, and a mode that does not
// exist is refused before cib runs. Whole generations and deployments are
// tested in internal/cli against a worker manager that checks Hawk.
func TestPoolConfigActionWithoutRecords(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	msg := "deploy pools\n\npool-deploy\n"
	ws := newWorkspace(t, root, msg, "")

	run := runNamedAction(t, root, "pool-config", ws, msg, map[string]string{
		"environment": "staging", "pool": "gecko-t/win10-64-azure",
	})
	if !run.failed || run.outputs["exit"] != "1" {
		t.Fatalf("failed %t, exit %q: want a failure with exit 1", run.failed, run.outputs["exit"])
	}
	gen := run.step(t, "generate (id: pools)", func(s actionStep) bool { return s.ID == "pools" })
	if gen.status != "success" || !strings.Contains(gen.log, "no machine image recorded for key win10-64") {
		t.Errorf("generate step: %s; want success (it keeps cib's code) and a log naming the missing record:\n%s", gen.status, gen.log)
	}
	if len(run.artifacts["pool-config-staging"]) != 0 {
		t.Errorf("files uploaded for a failed generation: %v", run.artifacts)
	}
	if last := run.steps[len(run.steps)-1]; last.status != "failure" || last.exitCode != 1 {
		t.Errorf("the last step: %s, exit %d; want failure, exit 1", last.status, last.exitCode)
	}

	run = runNamedAction(t, root, "pool-config", ws, msg, map[string]string{"environment": "staging", "mode": "apply"})
	if run.outputs["exit"] != "64" || !strings.Contains(run.step(t, "generate", func(s actionStep) bool { return s.ID == "pools" }).log, "mode 'apply'") {
		t.Errorf("mode apply: exit %q; want 64 and the mode named", run.outputs["exit"])
	}
}
