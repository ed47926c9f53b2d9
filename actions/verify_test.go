package actions_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyActionDryRun runs actions/verify as a runner would, on the
// paths that end before Azure is called (internal/cli's tests verify
// images against an in-memory Azure): without a machine-image record cib
// fails with exit 1 naming what is missing; with one, a dry run lists the
// image in the log, the outputs and the step summary, and creates nothing.
func TestVerifyActionDryRun(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	msg := "verify pools\n"
	ws := newWorkspace(t, root, msg, recordsBranch(t, root))
	inputs := map[string]string{"environment": "staging", "pool": "gecko-t/win7-32-gpu-azure", "dry-run": "true"}

	run := runNamedAction(t, root, "verify", ws, msg, inputs)
	step := run.step(t, "verify (id: verify)", func(s actionStep) bool { return s.ID == "verify" })
	if !run.failed || step.status != "failure" || step.exitCode != 1 {
		t.Fatalf("without a record: failed %t, step %s exit %d; want a failure, exit 1:\n%s", run.failed, step.status, step.exitCode, step.log)
	}
	if !strings.Contains(step.log, "no machine image recorded for key win7-32-gpu, group rg-east-us-gecko-t in environment staging") {
		t.Errorf("the verify step's log does not name the missing record:\n%s", step.log)
	}

	// Record the pool's image with the cib the action built, as a
	// machine-image job would.
	const image = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-east-us-gecko-t/providers/Microsoft.Compute/images/win7-32-gpu-abc1234"
	cib := exec.Command(filepath.Join(runnerTemp, "cib"), "record", "machine-image", "--environment", "staging", "--key", "win7-32-gpu",
		"--group", "rg-east-us-gecko-t", "--image-name", "win7-32-gpu-abc1234", "--image-location", image)
	cib.Dir = ws.dir
	cib.Env = append(os.Environ(), "GITHUB_ACTIONS=", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
	if out, err := cib.CombinedOutput(); err != nil {
		t.Fatalf("cib record machine-image: %v\n%s", err, out)
	}

	inputs["size"] = "Standard_DS2_v2"
	run = runNamedAction(t, root, "verify", ws, msg, inputs)
	step = run.step(t, "verify (id: verify)", func(s actionStep) bool { return s.ID == "verify" })
	if run.failed {
		t.Fatalf("the dry run failed:\n%s", step.log)
	}
	if want := "would verify " + image + " (eastus): Standard_DS2_v2 in rg-east-us-gecko-t"; !strings.Contains(step.log, want) {
		t.Errorf("the verify step's log does not say %q:\n%s", want, step.log)
	}
	if run.outputs["images"] != "1" || run.outputs["healthy"] != "0" || run.outputs["unhealthy"] != "0" {
		t.Errorf("outputs %v; want images 1, healthy 0, unhealthy 0", run.outputs)
	}
	for _, want := range []string{"### Verify gecko-t/win7-32-gpu-azure in staging (dry run)", "Nothing was created", "| `" + image + "` | win7-32-gpu | rg-east-us-gecko-t | eastus | Standard_DS2_v2 |"} {
		if !strings.Contains(run.summary, want) {
			t.Errorf("the step summary does not say %q:\n%s", want, run.summary)
		}
	}
}
