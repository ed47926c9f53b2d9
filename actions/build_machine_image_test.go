package actions_test

import (
	"strings"
	"testing"
)

// A machine-image build needs Azure, which a runner-like test does not
// have (internal/cli's tests run whole builds against an in-memory
// Azure). What the action does around cib is tested here, on the paths
// that end before Azure is called: its inputs reach cib, cib's exit code
// becomes the action's (after the artifact step had its chance), no
// artifact is uploaded when there are no boot diagnostics, and neither
// the GitHub token nor a bootstrap token reaches the log unmasked.

const bootstrapSecret = "bootstrapSecretValue42"

func runMachineImageAction(t *testing.T, inputs map[string]string) *actionRun {
	t.Helper()
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	msg := "build win10-64\n\ninclude keys: win10-64\n"
	ws := newWorkspace(t, root, msg, "")
	in := map[string]string{
		"key": "win10-64", "group": "rg-central-us-gecko-t", "environment": "staging",
		"subscription":       "00000000-0000-0000-0000-000000000000",
		"storage-account-id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa",
		"bootstrap-tokens":   "SECRET_TOKEN=" + bootstrapSecret + "\n",
	}
	for k, v := range inputs {
		in[k] = v
	}
	return runNamedAction(t, root, "build-machine-image", ws, msg, in)
}

func checkMachineImageRun(t *testing.T, run *actionRun, exit, stderr string) {
	t.Helper()
	if !run.failed {
		t.Fatal("the action succeeded; want a failure")
	}
	build := run.step(t, "build (id: build)", func(s actionStep) bool { return s.ID == "build" })
	if build.status != "success" {
		t.Errorf("the build step is %s; it keeps cib's exit code and succeeds, so that the artifacts are uploaded", build.status)
	}
	if !strings.Contains(build.log, stderr) {
		t.Errorf("the build step's log does not say %q:\n%s", stderr, build.log)
	}
	if run.outputs["exit"] != exit {
		t.Errorf("output exit = %q, want %s", run.outputs["exit"], exit)
	}
	upload := run.step(t, "upload-artifact", func(s actionStep) bool { return strings.HasPrefix(s.Uses, "actions/upload-artifact@") })
	if upload.status != "skipped" || len(run.artifacts) != 0 {
		t.Errorf("upload step: %s, artifacts %v; want skipped, none, without boot diagnostics", upload.status, run.artifacts)
	}
	last := run.steps[len(run.steps)-1]
	if last.status != "failure" || last.exitCode != atoi(t, exit) {
		t.Errorf("the last step: %s, exit %d; want failure, exit %s", last.status, last.exitCode, exit)
	}
	for _, s := range run.steps {
		for _, secret := range []string{testToken, bootstrapSecret} {
			if strings.Contains(strings.ReplaceAll(s.log, "::add-mask::"+secret, ""), secret) {
				t.Errorf("step %q shows a secret unmasked:\n%s", s.title, s.log)
			}
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("%q is not a number", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestBuildMachineImageActionWithoutADiskRecord: the key's disk image was
// never recorded, so cib stops before logging in to Azure, saying what to
// do (exit 1).
func TestBuildMachineImageActionWithoutADiskRecord(t *testing.T) {
	run := runMachineImageAction(t, nil)
	checkMachineImageRun(t, run, "1", "key win10-64 has no disk-image record for environment staging on azure")
	if fetch := run.fetchStep(t); fetch.status != "success" || !strings.Contains(fetch.log, "no records branch") {
		t.Errorf("the records fetch: %s\n%s", fetch.status, fetch.log)
	}
}

// TestBuildMachineImageActionUnknownGroup: a group that is not one of the
// key's targets is a usage error (exit 64) that lists the key's groups.
func TestBuildMachineImageActionUnknownGroup(t *testing.T) {
	run := runMachineImageAction(t, map[string]string{"group": "rg-nowhere"})
	checkMachineImageRun(t, run, "64", `key win10-64 has no azure target in group "rg-nowhere"; its azure groups: rg-central-us-gecko-t`)
}
