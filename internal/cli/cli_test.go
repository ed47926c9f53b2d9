package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/cli"
)

// repo is a temporary repository holding a copy of the configuration, with
// a bare "origin" to push build records to.
type repo struct {
	dir, origin string
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

func newRepo(t *testing.T, message string) *repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is required by these tests")
	}
	r := &repo{dir: t.TempDir(), origin: t.TempDir()}
	git(t, r.origin, "init", "-q", "--bare")
	git(t, r.dir, "init", "-q", "-b", "main")
	require.NoError(t, os.CopyFS(filepath.Join(r.dir, "config"), os.DirFS("../../config")))
	git(t, r.dir, "add", "config")
	git(t, r.dir, "commit", "-q", "-m", message)
	git(t, r.dir, "remote", "add", "origin", r.origin)
	return r
}

func (r *repo) head(t *testing.T) string { return git(t, r.dir, "rev-parse", "HEAD") }

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, dir string, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, cli.Env{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Getenv: func(k string) string { return env[k] },
		Dir:    dir,
	})
	return result{code, out.String(), errb.String()}
}

// actionsEnv is the environment a GitHub Actions step gets.
func actionsEnv(t *testing.T, event string, payload any, sha string) map[string]string {
	dir := t.TempDir()
	path := filepath.Join(dir, "event.json")
	data, err := json.Marshal(payload)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": path, "GITHUB_SHA": sha,
		"GITHUB_OUTPUT": filepath.Join(dir, "output"), "GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "7",
	}
}

// outputs parses a GITHUB_OUTPUT file.
func outputs(t *testing.T, path string) map[string]string {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]string{}
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		name, delim, ok := strings.Cut(lines[i], "<<")
		if !ok {
			continue
		}
		var val []string
		for i++; i < len(lines) && lines[i] != delim; i++ {
			val = append(val, lines[i])
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

func TestHelpAndUsage(t *testing.T) {
	r := run(t, "", nil)
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "Commands:")
	r = run(t, "", nil, "help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "  plan         decide which jobs")
	assert.Contains(t, r.stdout, "  pool-config  generate worker-pool configurations")
	r = run(t, "", nil, "plan", "--help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "Usage: cib plan")
	assert.Contains(t, r.stdout, "-message-file")
	r = run(t, "", nil, "record", "--help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "GITHUB_TOKEN")
	r = run(t, "", nil, "plna")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, `unknown command "plna"`)
	r = run(t, "", nil, "plan", "--format", "yaml")
	assert.Equal(t, cli.ExitUsage, r.code)
}

func TestPlanJSONHasTheFieldsOutsideToolsRead(t *testing.T) {
	rp := newRepo(t, "bump\n\nInclude Keys:Win7-32.yaml, win7-32\npool-deploy\nexclude regions: East US\n")
	r := run(t, rp.dir, nil, "plan", "--format", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var p map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &p))
	in := p["instructions"].(map[string]any)
	assert.Equal(t, []any{"pool-deploy"}, in["flags"])
	assert.Equal(t, map[string]any{
		"keys":    map[string]any{"mode": "include", "values": []any{"win7-32"}},
		"regions": map[string]any{"mode": "exclude", "values": []any{"eastus"}},
	}, in["filters"])
	diags := in["diagnostics"].([]any)
	require.Len(t, diags, 1)
	d := diags[0].(map[string]any)
	assert.Equal(t, float64(3), d["line"])
	assert.Equal(t, "warning", d["severity"])
	assert.Contains(t, d["message"], ".yaml")
	assert.Equal(t, "", in["skip"])
	sel := p["selection"].(map[string]any)
	assert.Equal(t, []any{"win7-32"}, sel["keys"])
	assert.Equal(t, []any{"gecko-t/win7-32-azure"}, sel["pools"])
	assert.Equal(t, []any{"centralus", "eastus2", "northcentralus", "southcentralus"}, sel["regions"])
	assert.Equal(t, []any{"production", "staging"}, sel["environments"])
	assert.Equal(t, rp.head(t), p["revision"])
	jobs := p["jobs"].([]any)
	require.NotEmpty(t, jobs)
	for _, j := range jobs {
		jm := j.(map[string]any)
		for _, f := range []string{"stage", "environment", "needed", "reason"} {
			assert.Contains(t, jm, f)
		}
		if jm["stage"] == "machine-image" {
			assert.Equal(t, "win7-32", jm["key"])
			assert.Contains(t, jm, "group")
			assert.Equal(t, false, jm["needed"])
		}
		if jm["stage"] == "pool-config" {
			assert.Equal(t, "gecko-t/win7-32-azure", jm["pool"])
			assert.Equal(t, true, jm["needed"])
		}
	}
}

func TestPlanTableFromAMessageFile(t *testing.T) {
	rp := newRepo(t, "initial")
	msg := filepath.Join(t.TempDir(), "msg")
	require.NoError(t, os.WriteFile(msg, []byte("include keys: win10-64-gpu\ninclude environments: staging\n"), 0o600))
	r := run(t, rp.dir, nil, "plan", "--message-file", msg, "--format", "table")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "keys: win10-64-gpu\n")
	assert.Regexp(t, `disk-image\s+staging\s+win10-64-gpu\s+-\s+yes\s+build: no earlier build recorded`, r.stdout)
}

func TestPlanInstructionErrorsExitTwo(t *testing.T) {
	rp := newRepo(t, "oops\n\ninclude keys: win10-64 win7-32\n")
	r := run(t, rp.dir, nil, "plan", "--format", "markdown")
	assert.Equal(t, cli.ExitInstructions, r.code)
	assert.Contains(t, r.stdout, "| 3 | ❌ error |")
	assert.Contains(t, r.stdout, "separate")
	assert.Contains(t, r.stdout, "nothing runs")
	assert.Contains(t, r.stderr, "the commit instructions have errors: nothing runs (exit code 2)")
	r = run(t, rp.dir, nil, "plan", "--format", "json")
	assert.Equal(t, cli.ExitInstructions, r.code)
	assert.Contains(t, r.stderr, "line 3: error:")

	// no-ci: errors are still reported, but nothing was going to run
	rp = newRepo(t, "oops\n\nno-ci\ninclude keys: win10-64 win7-32\n")
	r = run(t, rp.dir, nil, "plan", "--format", "json")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "line 4: error:")
}

func TestPlanInActionsWritesMatricesSummaryAndAnnotations(t *testing.T) {
	rp := newRepo(t, "gpu pools\n\ninclude pools: gecko-t/win10-64-gpu-azure\ninclude environments: production\ninclude key: x\n")
	env := actionsEnv(t, "push", map[string]any{"after": rp.head(t)}, rp.head(t))
	r := run(t, rp.dir, env, "plan", "--format", "table")
	require.Equal(t, 0, r.code, r.stderr)
	out := outputs(t, env["GITHUB_OUTPUT"])
	for _, s := range []string{"prepare", "purge", "disk_image", "machine_image", "pool_config", "verify"} {
		assert.Contains(t, out, "matrix_"+s)
		assert.Contains(t, out, "count_"+s)
	}
	assert.Equal(t, "1", out["count_disk_image"])
	assert.Equal(t, "1", out["count_machine_image"])
	var m struct {
		Include []map[string]any `json:"include"`
	}
	require.NoError(t, json.Unmarshal([]byte(out["matrix_machine_image"]), &m))
	require.Len(t, m.Include, 1)
	assert.Equal(t, "rg-east-us-gecko-t", m.Include[0]["group"])
	assert.Equal(t, "production", m.Include[0]["environment"])
	assert.Equal(t, "0", out["exit"])
	var p map[string]any
	require.NoError(t, json.Unmarshal([]byte(out["plan"]), &p))
	assert.Equal(t, "push", p["event"])

	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "<!-- cib-plan -->")
	assert.Contains(t, string(summary), "```mermaid")
	assert.Contains(t, r.stdout, "::warning::commit "+rp.head(t)[:7]+", line 5: warning:")
}

func TestPlanFromWorkflowDispatchInputs(t *testing.T) {
	rp := newRepo(t, "no instructions here")
	env := actionsEnv(t, "workflow_dispatch", map[string]any{"inputs": map[string]any{
		"keys": "win7-32-gpu", "environments": "staging", "overwrite-machine-image": true, "pool_deploy": "false",
	}}, rp.head(t))
	r := run(t, rp.dir, env, "plan", "--format", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var p map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &p))
	assert.Equal(t, "workflow_dispatch", p["event"])
	assert.Equal(t, []any{"overwrite-machine-image"}, p["instructions"].(map[string]any)["flags"])
	assert.Equal(t, []any{"win7-32-gpu"}, p["selection"].(map[string]any)["keys"])
	assert.Equal(t, []any{"staging"}, p["selection"].(map[string]any)["environments"])

	env = actionsEnv(t, "workflow_dispatch", map[string]any{"inputs": map[string]any{"keys": "win7-32", "pools": "gecko-t/win7-32-azure"}}, rp.head(t))
	r = run(t, rp.dir, env, "plan", "--format", "json")
	assert.Equal(t, cli.ExitInstructions, r.code, "the same rules as a commit message: keys and pools do not combine")
	assert.Equal(t, "2", outputs(t, env["GITHUB_OUTPUT"])["exit"])
	assert.Contains(t, r.stdout, "::error::workflow_dispatch inputs, input pools: error:")
}

func TestPlanPullRequestIsADryRunOfTheHeadCommit(t *testing.T) {
	rp := newRepo(t, "base")
	require.NoError(t, os.WriteFile(filepath.Join(rp.dir, "README"), []byte("x"), 0o600))
	git(t, rp.dir, "add", "README")
	git(t, rp.dir, "commit", "-q", "-m", "pr head\n\ninclude keys: win2019")
	head := rp.head(t)
	git(t, rp.dir, "checkout", "-q", "HEAD~1")
	env := actionsEnv(t, "pull_request", map[string]any{"number": 12, "pull_request": map[string]any{"number": 12, "head": map[string]any{"sha": head}}}, "merge-sha")
	out := t.TempDir()
	r := run(t, rp.dir, env, "plan", "--format", "json", "--markdown-out", filepath.Join(out, "plan.md"), "--comment-out", filepath.Join(out, "comment.md"))
	require.Equal(t, 0, r.code, r.stderr)
	var p map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &p))
	assert.Equal(t, true, p["dry_run"])
	assert.Equal(t, head, p["revision"])
	assert.Equal(t, []any{"win2019"}, p["selection"].(map[string]any)["keys"])
	assert.Equal(t, "12", outputs(t, env["GITHUB_OUTPUT"])["pull_request"])

	// The comment and the whole plan are files for the comment and the artifact.
	md, err := os.ReadFile(filepath.Join(out, "plan.md"))
	require.NoError(t, err)
	comment, err := os.ReadFile(filepath.Join(out, "comment.md"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(comment), "<!-- cib-plan -->\n## cib plan for "+head[:7]+" (dry run)"), string(comment))
	assert.Equal(t, string(md), string(comment), "a short plan's comment is the whole plan")
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), string(md))
}

func TestValidate(t *testing.T) {
	r := run(t, "", nil, "validate", "--config", "../../config")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "27 image keys (7 from ISO, 20 from marketplace images)")

	dir := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(dir, "config"), os.DirFS("../../config")))
	path := filepath.Join(dir, "config", "win10-64.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, bytes.Replace(data, []byte("    size: 64\n"), []byte("    size: 64GB\n"), 1), 0o600))
	env := map[string]string{"GITHUB_ACTIONS": "true"}
	r = run(t, dir, env, "validate")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, dir+"/config/win10-64.yaml:15:11: image.size: expected a whole number")
	assert.Contains(t, r.stdout, "::error col=11,file=config/win10-64.yaml,line=15::image.size: expected a whole number")
	// a plan on a bad configuration plans nothing
	r = run(t, dir, nil, "plan", "--message", "x")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "nothing was planned or built")
	assert.Empty(t, r.stdout)
}

func TestRecordThenPlanSkipsWhatWasBuilt(t *testing.T) {
	rp := newRepo(t, "build win7-32\n\ninclude keys: win7-32\ninclude environments: staging")
	env := map[string]string{"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "9"}

	r := run(t, rp.dir, nil, "plan", "--format", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var before struct {
		Jobs []struct {
			Stage, Key, Group, Fingerprint string
			Needed                         bool
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &before))
	var diskFP string
	for _, j := range before.Jobs {
		if j.Stage == "disk-image" {
			diskFP = j.Fingerprint
			assert.True(t, j.Needed)
		}
	}
	require.NotEmpty(t, diskFP)

	r = run(t, rp.dir, env, "record", "disk-image", "--environment", "staging", "--key", "win7-32", "--fingerprint", diskFP,
		"--image-name", "vhd/2026-11-27/abc.vhd", "--image-location", "https://example.invalid/vhd")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "recorded disk-image records/staging/azure/disk/win7-32.json")
	r = run(t, rp.dir, env, "record", "machine-image", "--environment", "staging", "--key", "win7-32", "--group", "rg-east-us-gecko-t")
	require.Equal(t, 0, r.code, r.stderr)

	// a new clone sees what the remote branch holds
	clone := t.TempDir()
	git(t, clone, "clone", "-q", rp.origin, ".")
	git(t, clone, "fetch", "-q", "origin", "+refs/heads/cib-records:refs/remotes/origin/cib-records")
	show := git(t, clone, "show", "origin/cib-records:records/staging/azure/disk/win7-32.json")
	assert.Contains(t, show, `"run_url": "https://github.com/o/r/actions/runs/9"`)
	assert.Contains(t, show, `"revision": "`+rp.head(t)+`"`)

	r = run(t, rp.dir, nil, "plan", "--format", "table")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `disk-image\s+staging\s+win7-32\s+-\s+no\s+skip: inputs unchanged since `+rp.head(t)[:7], r.stdout)
	assert.Regexp(t, `machine-image\s+staging\s+win7-32\s+rg-east-us-gecko-t\s+no\s+skip: inputs unchanged`, r.stdout)
	assert.Regexp(t, `machine-image\s+staging\s+win7-32\s+rg-central-us-gecko-t\s+yes\s+build: no earlier build recorded`, r.stdout)
}

func TestRecordRefusesAStaleFingerprintAndUnknownTargets(t *testing.T) {
	rp := newRepo(t, "x")
	r := run(t, rp.dir, nil, "record", "disk-image", "--environment", "staging", "--key", "win7-32", "--fingerprint", "sha256:"+strings.Repeat("0", 64))
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "the configuration differs from the commit the plan was made for")
	r = run(t, rp.dir, nil, "record", "machine-image", "--environment", "staging", "--key", "win7-32", "--group", "rg-nowhere")
	assert.Contains(t, r.stderr, `key win7-32 has no azure target in group "rg-nowhere"`)
	r = run(t, rp.dir, nil, "record", "disk-image", "--environment", "qa", "--key", "win7-32")
	assert.Contains(t, r.stderr, `--environment "qa" is not an environment`)
	r = run(t, rp.dir, nil, "record", "disk-image", "--environment", "staging", "--key", "win11-64-2009")
	assert.Contains(t, r.stderr, "has no disk image")
	r = run(t, rp.dir, nil, "record")
	assert.Equal(t, cli.ExitUsage, r.code)
	// nothing was pushed by any of these
	assert.Empty(t, git(t, rp.origin, "for-each-ref"))
}

func diskFingerprint(t *testing.T, planJSON string) string {
	t.Helper()
	var p struct {
		Jobs []struct{ Stage, Fingerprint string }
	}
	require.NoError(t, json.Unmarshal([]byte(planJSON), &p))
	for _, j := range p.Jobs {
		if j.Stage == "disk-image" {
			return j.Fingerprint
		}
	}
	t.Fatal("no disk-image job in the plan")
	return ""
}

func TestPlanAtARevisionUsesThatRevisionsConfiguration(t *testing.T) {
	rp := newRepo(t, "first\n\ninclude keys: win7-32\ninclude environments: staging")
	first := rp.head(t)
	path := filepath.Join(rp.dir, "config", "win7-32.yaml")
	setSize := func(from, to string) {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Contains(t, string(data), "    size: "+from+"\n")
		require.NoError(t, os.WriteFile(path, bytes.Replace(data, []byte("    size: "+from+"\n"), []byte("    size: "+to+"\n"), 1), 0o600))
	}
	setSize("64", "128")
	git(t, rp.dir, "commit", "-q", "-am", "bigger\n\ninclude keys: win7-32\ninclude environments: staging")
	setSize("128", "256") // uncommitted

	out := filepath.Join(t.TempDir(), "plan.json")
	atFirst := run(t, rp.dir, nil, "plan", "--rev", first, "--format", "json", "--output", out)
	require.Equal(t, 0, atFirst.code, atFirst.stderr)
	written, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.JSONEq(t, atFirst.stdout, string(written), "--output writes the same plan")
	atHead := run(t, rp.dir, nil, "plan", "--rev", "HEAD", "--format", "json")
	require.Equal(t, 0, atHead.code, atHead.stderr)
	workTree := run(t, rp.dir, nil, "plan", "--format", "json")
	require.Equal(t, 0, workTree.code, workTree.stderr)

	f1, f2, f3 := diskFingerprint(t, atFirst.stdout), diskFingerprint(t, atHead.stdout), diskFingerprint(t, workTree.stdout)
	assert.NotEqual(t, f1, f2, "HEAD~1 and HEAD differ in image.size")
	assert.NotEqual(t, f2, f3, "without --rev the uncommitted change counts")

	// a revision whose configuration is broken plans nothing
	setSize("256", "big")
	git(t, rp.dir, "commit", "-q", "-am", "broken")
	r := run(t, rp.dir, nil, "plan", "--rev", "HEAD", "--format", "json")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "config/win7-32.yaml:15:11: image.size: expected a whole number")
	r = run(t, rp.dir, nil, "plan", "--rev", "no-such-branch")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, `find revision "no-such-branch"`)
}

func TestUnattendPrintsTheRedactedAnswerFile(t *testing.T) {
	rp := newRepo(t, "x")
	r := run(t, rp.dir, nil, "unattend", "win10-64")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "<?xml"))
	assert.Contains(t, r.stdout, "<ComputerName>cib-"+rp.head(t)[:7]+"</ComputerName>")
	assert.Contains(t, r.stdout, "<Value>REDACTED</Value>")

	env := map[string]string{"GITHUB_ACTIONS": "true"}
	r = run(t, rp.dir, env, "unattend", "win10-64", "--with-password")
	require.Equal(t, 0, r.code, r.stderr)
	mask, _, ok := strings.Cut(r.stdout, "\n")
	require.True(t, ok)
	require.True(t, strings.HasPrefix(mask, "::add-mask::"), "the password is masked before the document is printed")
	assert.NotContains(t, r.stdout, "REDACTED")

	r = run(t, rp.dir, nil, "unattend", "win11-64-2009")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "marketplace")
	r = run(t, rp.dir, nil, "unattend", "nope")
	assert.Equal(t, cli.ExitUsage, r.code)
	r = run(t, rp.dir, nil, "unattend")
	assert.Equal(t, cli.ExitUsage, r.code)
}

// storedImage puts a file where LocalStore keeps an image, with metadata.
func storedImage(t *testing.T, dir, name string, md map[string]string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte("a stored image"), 0o644))
	b, err := json.Marshal(md)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p+".json", b, 0o644))
}

func TestBuildDiskImageSkipsAStoredImageAndRecordsIt(t *testing.T) {
	rp := newRepo(t, "build win10-64")
	// The fingerprint of the key's disk image on the local platform, as
	// the record of it would hold.
	r := run(t, rp.dir, nil, "record", "disk-image", "--dry-run", "--environment", "staging", "--key", "win10-64")
	require.Equal(t, 0, r.code, r.stderr)
	var dry struct{ Fingerprint string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &dry))
	fp := dry.Fingerprint
	require.NotEmpty(t, fp)
	store := filepath.Join(t.TempDir(), "images")
	name := "vhd/" + time.Now().UTC().Format("2006-01-02") + "/" + rp.head(t)[:7] + "-azure-windows10-professional-en-us-x86-64-fixed.vhd"
	storedImage(t, store, name, map[string]string{"fingerprint": fp})
	env := actionsEnv(t, "push", map[string]any{}, rp.head(t))
	work := t.TempDir()

	r = run(t, rp.dir, env, "build", "disk-image", "win10-64", "--store", "local", "--store-dir", store,
		"--work-dir", work, "--fingerprint", fp, "--record", "--environment", "staging")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "is already stored with fingerprint "+fp+"; nothing to build")
	assert.Contains(t, r.stdout, "recorded records/staging/azure/disk/win10-64.json")
	out := outputs(t, env["GITHUB_OUTPUT"])
	assert.Equal(t, "true", out["skipped"])
	assert.Equal(t, name, out["image-name"])
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "already stored with this fingerprint")
	assertEmptyDir(t, work)
	show := git(t, rp.origin, "show", "cib-records:records/staging/azure/disk/win10-64.json")
	assert.Contains(t, show, `"fingerprint": "`+fp+`"`)
	assert.Contains(t, show, store+"/"+name)
}

func TestBuildDiskImageFailuresLeaveNothing(t *testing.T) {
	rp := newRepo(t, "x")
	corrupt := filepath.Join(t.TempDir(), "corrupt.iso")
	require.NoError(t, os.WriteFile(corrupt, bytes.Repeat([]byte("not an iso "), 10000), 0o644))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing iso", []string{"--iso", "/nonexistent/win.iso"}, cli.ExitFailure, "/nonexistent/win.iso: no such file or directory"},
		{"corrupt iso", []string{"--iso", corrupt}, cli.ExitFailure, "step extract-wim"},
		{"wrong checksum", []string{"--iso", corrupt, "--iso-sha256", strings.Repeat("ab", 32)}, cli.ExitFailure, "checksum mismatch"},
		{"stale fingerprint", []string{"--iso", corrupt, "--fingerprint", "sha256:" + strings.Repeat("0", 64)}, cli.ExitFailure, "the configuration differs from the commit the plan was made for"},
		{"record without environment", []string{"--record"}, cli.ExitUsage, "--record needs --environment"},
		{"dism builder", []string{"--builder", "dism"}, cli.ExitUsage, "--builder dism: the dism builder needs a Windows runner"},
		{"unknown platform", []string{"--platform", "local"}, cli.ExitUsage, `--platform "local": the cloud the image is for must be one of azure (a local folder is --store local)`},
		{"unknown store", []string{"--store", "s3"}, cli.ExitUsage, `--store "s3": use azure or local`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, work, arts := t.TempDir(), t.TempDir(), t.TempDir()
			args := append([]string{"build", "disk-image", "win10-64", "--store", "local", "--store-dir", store,
				"--work-dir", work, "--artifacts", arts}, tc.args...)
			r := run(t, rp.dir, nil, args...)
			assert.Equal(t, tc.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tc.want)
			assertEmptyDir(t, store)
			assertEmptyDir(t, work)
			assertEmptyDir(t, arts)
		})
	}
	r := run(t, rp.dir, nil, "build", "disk-image", "win11-64-2009")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "starts from a marketplace image")
	r = run(t, rp.dir, nil, "build", "worker-pool", "win10-64")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, `unknown stage "worker-pool"`)
	r = run(t, rp.dir, nil, "build", "machine-image", "win10-64")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--group is required")
	r = run(t, rp.dir, nil, "build", "disk-image", "win10-64", "--work-dir", t.TempDir())
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, `key win10-64 has image.target amazon bucket "windows-ami-builder", and cib stores disk images in azure or a local folder: pass --store azure --container NAME or --store local --store-dir DIR`)
	r = run(t, rp.dir, nil, "build", "disk-image", "win10-64", "--store", "azure", "--work-dir", t.TempDir())
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "key win10-64: no azure container for the image: pass --container NAME")
	assert.Empty(t, git(t, rp.origin, "for-each-ref"))
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "left in %s", dir)
}

// The configuration of the commit built is what is built, not the work
// tree's: the image is named after the commit. A broken, uncommitted key
// file does not stop the build (it fails later, on the corrupt ISO).
func TestBuildDiskImageReadsTheCommittedConfiguration(t *testing.T) {
	rp := newRepo(t, "x")
	require.NoError(t, os.WriteFile(filepath.Join(rp.dir, "config", "win10-64.yaml"), []byte("image: [broken\n"), 0o644))
	corrupt := filepath.Join(t.TempDir(), "corrupt.iso")
	require.NoError(t, os.WriteFile(corrupt, bytes.Repeat([]byte("not an iso "), 1000), 0o644))
	r := run(t, rp.dir, nil, "build", "disk-image", "win10-64", "--store", "local", "--store-dir", t.TempDir(),
		"--work-dir", t.TempDir(), "--iso", corrupt)
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "step extract-wim")
	assert.NotContains(t, r.stderr, "not valid YAML")

	// A commit with the broken file is refused, naming the commit.
	git(t, rp.dir, "commit", "-qam", "break win10-64")
	r = run(t, rp.dir, nil, "build", "disk-image", "win10-64", "--store", "local", "--store-dir", t.TempDir(), "--iso", corrupt)
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "config (at "+rp.head(t)[:7]+")/win10-64.yaml")
}
