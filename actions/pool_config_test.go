package actions_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cib-project/cib/internal/pool/pooltest"
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

// TestPoolConfigActionGenerates runs actions/pool-config in generate mode
// for a pool whose images are recorded: the JSON and YAML configurations
// are the artifact, and the action succeeds. (Deployments are tested in
// internal/cli against a worker manager that checks Hawk signatures.)
func TestPoolConfigActionGenerates(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	msg := "deploy pools\n\npool-deploy\n"
	ws := newWorkspace(t, root, msg, recordsBranch(t, root))
	for group := range azureTargets(t, root, "win7-32") {
		recordMachineImage(t, root, ws, "win7-32", group,
			"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"+group+"/providers/Microsoft.Compute/images/win7-32-abc1234")
	}
	run := runNamedAction(t, root, "pool-config", ws, msg, map[string]string{"environment": "staging", "pool": "gecko-t/win7-32-azure"})
	if run.failed || run.outputs["exit"] != "0" {
		t.Fatalf("failed %t, exit %q; want success", run.failed, run.outputs["exit"])
	}
	files := run.artifacts["pool-config-staging"]
	slices.Sort(files)
	if want := []string{"gecko-t/win7-32-azure.json", "gecko-t/win7-32-azure.yaml"}; !slices.Equal(files, want) {
		t.Errorf("artifact pool-config-staging holds %v; want %v", files, want)
	}
}

// TestPoolConfigActionDeploys runs actions/pool-config as the pipeline's
// pool-config job does (mode deploy, record) against a worker manager that
// checks each request's Hawk signature with the reference hawk package:
// the pool is created, its record pushed, the access token never shown;
// a dry run afterwards finds nothing to change.
func TestPoolConfigActionDeploys(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	const clientID, accessToken = "project/cib/deploy", "tcAccessTokenThatMustNotShow42"
	wm := pooltest.StartTLS(t, clientID, accessToken)
	msg := "deploy pools\n\npool-deploy\n"
	ws := newWorkspaceWith(t, root, msg, recordsBranch(t, root), func(configDir string) {
		path := filepath.Join(configDir, "settings.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(data), "rootUrl: https://stage.taskcluster.nonprod.cloudops.mozgcp.net", "rootUrl: "+wm.URL, 1)
		if edited == string(data) {
			t.Fatal("settings.yaml has no staging rootUrl to point at the test worker manager")
		}
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	for group := range azureTargets(t, root, "win7-32") {
		recordMachineImage(t, root, ws, "win7-32", group,
			"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"+group+"/providers/Microsoft.Compute/images/win7-32-abc1234")
	}
	push := map[string]any{"ref": "refs/heads/main", "after": ws.sha, "head_commit": map[string]any{"id": ws.sha, "message": msg}}
	creds := []string{"TASKCLUSTER_CLIENT_ID=" + clientID, "TASKCLUSTER_ACCESS_TOKEN=" + accessToken, "SSL_CERT_DIR=/etc/ssl/certs:" + wm.CertDir}
	run := runEventAction(t, root, "pool-config", ws, "push", push,
		map[string]string{"environment": "staging", "pool": "gecko-t/win7-32-azure", "mode": "deploy", "record": "true"}, creds...)
	if run.failed || run.outputs["exit"] != "0" {
		t.Fatalf("failed %t, exit %q; want the pool deployed", run.failed, run.outputs["exit"])
	}
	if w := wm.Writes(); len(w) != 1 || w[0].Method != "PUT" {
		t.Errorf("the worker manager saw writes %v; want one PUT creating the pool", w)
	}
	if wm.Pool("gecko-t/win7-32-azure") == nil {
		t.Error("the pool was not created")
	}
	if refs := git(t, ws.dir, "", "ls-remote", "origin", recordsBranch(t, root)); refs == "" {
		t.Error("no records branch in origin after a recorded deployment")
	}
	for _, s := range run.steps {
		if strings.Contains(strings.ReplaceAll(s.log, "::add-mask::"+accessToken, ""), accessToken) {
			t.Errorf("step %q shows the access token", s.title)
		}
	}

	run = runEventAction(t, root, "pool-config", ws, "push", push,
		map[string]string{"environment": "staging", "pool": "gecko-t/win7-32-azure", "mode": "dry-run"}, creds...)
	if run.failed || len(wm.Writes()) != 1 {
		t.Errorf("dry run: failed %t, writes %d; want success and no new write", run.failed, len(wm.Writes()))
	}
}
