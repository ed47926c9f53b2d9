package plan_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/config/configtest"
	"github.com/cib-project/cib/internal/instruction"
	"github.com/cib-project/cib/internal/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	configDir = "../../config"
	revision  = "0123456789abcdef0123456789abcdef01234567"
	builtRev  = "abc1234ffffffffffffffffffffffffffffffff0"
)

var builtAt = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func portedFS(t testing.TB) fstest.MapFS { return configtest.PortedFS(t, configDir) }

func edit(t testing.TB, fsys fstest.MapFS, file, old, new string) {
	t.Helper()
	configtest.Edit(t, fsys, file, old, new)
}

func load(t testing.TB, fsys fstest.MapFS) *config.Config {
	t.Helper()
	cfg, err := config.LoadFS(fsys, "config")
	require.NoError(t, err)
	return cfg
}

// records is an in-memory plan.Records.
type records map[string]plan.Record

func (r records) Disk(env, platform, key string) (plan.Record, bool) {
	rec, ok := r["disk/"+env+"/"+platform+"/"+key]
	return rec, ok
}

func (r records) Machine(env, platform, key, group string) (plan.Record, bool) {
	rec, ok := r["machine/"+env+"/"+platform+"/"+key+"/"+group]
	return rec, ok
}

func (r records) Pool(env, platform, pool string) (plan.Record, bool) {
	rec, ok := r["pool/"+env+"/"+platform+"/"+pool]
	return rec, ok
}

// builtEverything records every build of cfg as a successful earlier run
// would have, with the canonical inputs the stages store.
func builtEverything(t testing.TB, cfg *config.Config) records {
	t.Helper()
	recs := records{}
	mk := func(in config.Inputs) plan.Record {
		return plan.Record{Fingerprint: in.Fingerprint(), Inputs: json.RawMessage(in.Canonical()), Revision: builtRev, Time: builtAt}
	}
	for _, env := range cfg.Settings.Environments {
		for _, k := range cfg.Keys {
			disk := ""
			if !k.Marketplace() {
				in := cfg.DiskInputs(k, "azure")
				disk = in.Fingerprint()
				recs["disk/"+env.Name+"/azure/"+k.Name] = mk(in)
			}
			for i := range k.Targets {
				tg := &k.Targets[i]
				recs["machine/"+env.Name+"/"+tg.Platform+"/"+k.Name+"/"+tg.Group] = mk(cfg.MachineInputs(k, tg, disk))
			}
			for _, p := range k.Pools() {
				in := cfg.PoolInputs(k, p, "azure", func(tg *config.Target) string { return cfg.MachineInputs(k, tg, disk).Fingerprint() })
				recs["pool/"+env.Name+"/azure/"+p.ID()] = mk(in)
			}
		}
	}
	return recs
}

func build(cfg *config.Config, message string, recs plan.Records) *plan.Plan {
	return plan.Build(plan.Options{
		Config:       cfg,
		Instructions: instruction.Parse(message, plan.Vocabulary(cfg)),
		Records:      recs,
		Revision:     revision,
		Event:        "push",
	})
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/plan -update to create it")
	assert.Equal(t, string(want), string(got), "%s differs; if the change is intended, run go test ./internal/plan -update and review the diff", path)
}

func table(t *testing.T, p *plan.Plan) []byte {
	var b bytes.Buffer
	require.NoError(t, p.WriteTable(&b))
	return b.Bytes()
}

// run lists the needed jobs' IDs.
func run(p *plan.Plan, s plan.Stage) []string {
	var out []string
	for _, j := range p.Jobs {
		if j.Stage == s && j.Needed {
			out = append(out, j.ID)
		}
	}
	return out
}

func TestNoInstructionsNoRecordsBuildsEverything(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "bump packages\n\nnothing special here", nil)
	assert.Empty(t, p.Instructions.Diagnostics)
	assert.Len(t, p.Selection.Keys, 27)
	assert.Equal(t, []string{"production", "staging"}, p.Selection.Environments)
	assert.NotContains(t, p.Selection.Pools, "mpd001-1/win2012-amazon", "amazon pools are not planned on an azure-only repository")
	assert.Len(t, p.Selection.Pools, 8)
	for _, j := range p.Jobs {
		assert.True(t, j.Needed, "%s: %s", j.ID, j.Reason)
	}
	assert.Len(t, run(p, plan.DiskImage), 2*7)
	// 7 ISO keys: 6+1+6+12 (azure only)+6+1+5 targets, 20 marketplace keys: 1 each
	assert.Len(t, run(p, plan.MachineImage), 2*(37+20))
	assert.Len(t, run(p, plan.PoolConfig), 2*8)
	assert.Equal(t, 0, p.Exit())
	for _, j := range p.Jobs {
		if j.Stage == plan.MachineImage && j.Key == "win10-64" {
			assert.Contains(t, j.Needs, "disk-image/"+j.Environment+"/azure/win10-64")
			assert.Contains(t, j.Needs, "prepare/"+j.Environment)
		}
		if j.Stage == plan.MachineImage && j.Key == "win11-64-2009" {
			assert.Equal(t, []string{"prepare/" + j.Environment}, j.Needs, "marketplace keys have no disk image")
			assert.Contains(t, j.Locations, "westus3")
		}
	}
	data, err := p.JSON()
	require.NoError(t, err)
	golden(t, "everything.json", append(data, '\n'))
	golden(t, "everything.txt", table(t, p))
	golden(t, "everything.md", []byte(p.Markdown(0)))
}

func TestMatchingRecordsBuildNothingAndSayWhy(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "docs only", builtEverything(t, cfg))
	for _, s := range []plan.Stage{plan.DiskImage, plan.MachineImage, plan.PoolConfig, plan.Verify} {
		assert.Empty(t, run(p, s), "%s", s)
	}
	for _, j := range p.Jobs {
		switch j.Stage {
		case plan.DiskImage, plan.MachineImage, plan.PoolConfig:
			assert.Equal(t, "skip: inputs unchanged since abc1234 (built 2026-11-20)", j.Reason, j.ID)
		case plan.Prepare, plan.Purge:
			assert.True(t, j.Needed, "%s still runs", j.ID)
		}
	}
	golden(t, "records-match.txt", table(t, p))
}

func TestWindows10PackageChangeRebuildsOnlyWindows10(t *testing.T) {
	before := load(t, portedFS(t))
	fsys := portedFS(t)
	edit(t, fsys, "packages.yaml", "msiexec /i C:\\Windows\\Temp\\nxlog-ce.msi /q /L*v", "msiexec /i C:\\Windows\\Temp\\nxlog-ce.msi /qn /L*v")
	p := build(load(t, fsys), "update nxlog install flags for windows 10", builtEverything(t, before))

	var disks []string
	for _, j := range p.Jobs {
		if j.Stage == plan.DiskImage && j.Needed {
			disks = append(disks, j.Environment+"/"+j.Key)
			assert.Equal(t, `rebuild: packages.yaml entry "nxlog-ce.msi" changed (unattend[2].command)`, j.Reason)
		}
	}
	assert.ElementsMatch(t, []string{"production/win10-64", "production/win10-64-gpu", "production/win10-64-occ",
		"staging/win10-64", "staging/win10-64-gpu", "staging/win10-64-occ"}, disks)
	for _, j := range p.Jobs {
		if j.Stage == plan.MachineImage {
			assert.Equal(t, strings.HasPrefix(j.Key, "win10-64") && !strings.HasPrefix(j.Key, "win10-64-20"), j.Needed, "%s: %s", j.ID, j.Reason)
			if j.Needed {
				assert.Equal(t, "rebuild: disk image inputs changed", j.Reason)
			}
		}
		if j.Stage == plan.PoolConfig {
			assert.Equal(t, strings.HasPrefix(j.Pool, "gecko-t/win10-64"), j.Needed, j.ID)
		}
	}
	golden(t, "windows10-package.txt", table(t, p))
}

func TestTagChangeInOneGroupRebuildsOneMachineImage(t *testing.T) {
	before := load(t, portedFS(t))
	fsys := portedFS(t)
	// give win2019's second target its own tags, with a new deploymentId
	edit(t, fsys, "win2019.yaml", "              rules: *rules\n      tag: *tag\n", `              rules: *rules
      tag:
          - name: workerType
            value: relops-win2019-azure
          - name: sourceOrganisation
            value: mozilla-releng
          - name: sourceRepository
            value: OpenCloudConfig
          - name: sourceRevision
            value: 20d46de
          - name: sourceScript
            value: userdata/rundsc.ps1
          - name: deploymentId
            value: 4a1b2c3
`)
	cfg := load(t, fsys)
	require.Equal(t, "4a1b2c3", cfg.Key("win2019").Targets[1].Tag[5].Value, "the edit reached target[1]")
	p := build(cfg, "new bootstrap for win2019 in east us", builtEverything(t, before))
	assert.Equal(t, []string{
		"machine-image/production/azure/win2019/rg-east-us-relops",
		"machine-image/staging/azure/win2019/rg-east-us-relops",
	}, run(p, plan.MachineImage))
	assert.Empty(t, run(p, plan.DiskImage))
	assert.Equal(t, []string{"pool-config/production/relops/win2019-azure", "pool-config/staging/relops/win2019-azure"}, run(p, plan.PoolConfig))
	for _, j := range p.Jobs {
		if j.Needed && j.Stage == plan.MachineImage {
			assert.Equal(t, "rebuild: tag deploymentId changed 20d46de → 4a1b2c3", j.Reason)
		}
		if j.Needed && j.Stage == plan.PoolConfig {
			assert.Equal(t, []string{"machine-image/" + j.Environment + "/azure/win2019/rg-east-us-relops"}, j.Needs)
		}
	}
	golden(t, "tag-one-group.txt", table(t, p))
}

func TestPoolDeploy(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "redeploy gpu pools to cheaper regions\n\npool-deploy\ninclude pools: gecko-t/win7-32-gpu-azure, gecko-t/win10-64-gpu-azure\ninclude regions: eastus, westus2", builtEverything(t, cfg))
	assert.Empty(t, p.Instructions.Diagnostics)
	assert.Equal(t, []string{"gecko-t/win10-64-gpu-azure", "gecko-t/win7-32-gpu-azure"}, p.Selection.Pools)
	assert.Equal(t, []string{"win10-64-gpu", "win7-32-gpu"}, p.Selection.Keys)
	assert.Equal(t, []string{"eastus"}, p.Selection.Regions, "westus2 has no target of these pools")
	assert.Empty(t, run(p, plan.DiskImage))
	assert.Empty(t, run(p, plan.MachineImage))
	assert.Len(t, run(p, plan.PoolConfig), 4)
	assert.Len(t, run(p, plan.Verify), 4)
	for _, j := range p.Jobs {
		if j.Stage == plan.DiskImage || j.Stage == plan.MachineImage {
			assert.Equal(t, "skip: pool-deploy (line 3) deploys existing images", j.Reason)
		}
		if j.Stage == plan.PoolConfig {
			assert.Equal(t, "deploy: pool-deploy (line 3) deploys the newest images", j.Reason)
			assert.Empty(t, j.Needs)
		}
	}
	golden(t, "pool-deploy.txt", table(t, p))
}

func TestFilters(t *testing.T) {
	cfg := load(t, portedFS(t))

	p := build(cfg, "include pools: gecko-1/win2012-azure, relops/win2019-azure", nil)
	assert.Equal(t, []string{"win2012", "win2019"}, p.Selection.Keys)
	assert.Equal(t, []string{"gecko-1/win2012-azure", "relops/win2019-azure"}, p.Selection.Pools)
	for _, j := range p.Jobs {
		if j.Stage == plan.MachineImage {
			assert.True(t, strings.HasSuffix(j.Group, "-gecko-1") || strings.HasSuffix(j.Group, "-relops"), "gecko-3 targets are not in the selected pool: %s", j.ID)
		}
	}
	assert.Len(t, run(p, plan.MachineImage), 2*12)
	golden(t, "include-pools.txt", table(t, p))

	p = build(cfg, "exclude regions: East US, westus\ninclude environments: staging", nil)
	assert.Equal(t, []string{"staging"}, p.Selection.Environments)
	assert.NotContains(t, p.Selection.Regions, "eastus")
	assert.NotContains(t, p.Selection.Regions, "westus")
	assert.NotContains(t, p.Selection.Keys, "win10-64-gpu", "its only target is in eastus")
	for _, j := range p.Jobs {
		assert.Equal(t, "staging", j.Environment)
		if len(j.Locations) == 0 {
			assert.NotEqual(t, "eastus", j.Region, j.ID)
			assert.NotEqual(t, "westus", j.Region, j.ID)
		}
		if j.Key == "win11-64-2009" && j.Stage == plan.MachineImage {
			assert.Equal(t, "eastus", j.Region, "a marketplace image is still built in its build region")
			assert.NotContains(t, j.Locations, "eastus")
			assert.NotContains(t, j.Locations, "westus")
			assert.Contains(t, j.Locations, "westus2")
		}
	}
	golden(t, "exclude-regions-staging.txt", table(t, p))

	p = build(cfg, "include pools: none", nil)
	assert.Empty(t, p.Selection.Keys)
	assert.Empty(t, p.Jobs, "include pools: none builds nothing")
	require.Len(t, p.Instructions.Diagnostics, 1)
	assert.Equal(t, instruction.Warning, p.Instructions.Diagnostics[0].Severity)
}

func TestPurgeTaskclusterResourcesAddsTheExtraGroups(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "purge-taskcluster-resources\ninclude environments: staging\npool-deploy", nil)
	var extra []string
	for _, j := range p.Jobs {
		if j.Stage == plan.Purge && j.Extra {
			extra = append(extra, j.Group)
			assert.True(t, j.Needed)
		}
	}
	assert.Equal(t, []string{"rg-taskcluster-worker-manager-staging", "taskcluster-staging-workers-us-central"}, extra)
}

func TestNoCIRunsNothingButReportsEverything(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "tidy messaging\n\nno-ci\ninclude keys: win7-32\ninclude keys: win10-64", nil)
	assert.Equal(t, instruction.NoCI, p.Instructions.Skip)
	assert.True(t, p.Instructions.HasErrors(), "the unknown key is still an error")
	assert.Equal(t, 0, p.Exit(), "no-ci: nothing was going to run, so the plan succeeds")
	assert.NotEmpty(t, p.Jobs)
	for _, s := range plan.Stages {
		assert.Zero(t, p.Count(s), s)
	}
	for _, j := range p.Jobs {
		assert.Equal(t, "skip: no-ci (line 3): nothing runs", j.Reason)
	}
	golden(t, "no-ci.md", []byte(p.Markdown(0)))
}

func TestNoTaskclusterCIKeepsPrepareAndPurge(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "no-taskcluster-ci", nil)
	assert.NotZero(t, p.Count(plan.Prepare))
	assert.NotZero(t, p.Count(plan.Purge))
	for _, s := range []plan.Stage{plan.DiskImage, plan.MachineImage, plan.PoolConfig, plan.Verify} {
		assert.Zero(t, p.Count(s), s)
	}
	p = build(cfg, "no-travis-ci", nil)
	assert.Zero(t, p.Count(plan.Prepare))
	for _, j := range p.Jobs {
		assert.NotContains(t, j.Needs, "prepare/"+j.Environment, "nothing waits for a skipped prepare")
	}
}

func TestInstructionErrorsRunNothing(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "rebuild\n\ninclude keys: win10-64, win10-64-2004-azure\ninclude pools: gecko-t/win10-64-azure", nil)
	assert.Equal(t, 2, p.Exit())
	assert.Empty(t, p.Jobs)
	for _, s := range plan.Stages {
		m, err := p.Matrix(s)
		require.NoError(t, err)
		assert.Empty(t, m["include"])
	}
	md := p.Markdown(0)
	assert.Less(t, strings.Index(md, "### Diagnostics"), strings.Index(md, "### Selection"), "diagnostics come first")
	assert.Contains(t, md, "nothing runs")
	golden(t, "errors.md", []byte(md))
	data, err := p.JSON()
	require.NoError(t, err)
	golden(t, "errors.json", append(data, '\n'))
}

func TestOverwriteFlags(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "overwrite-disk-image\ninclude keys: win7-32", builtEverything(t, cfg))
	assert.Len(t, run(p, plan.DiskImage), 2)
	assert.Len(t, run(p, plan.MachineImage), 2*5, "a rebuilt disk image rebuilds its machine images")
	for _, j := range p.Jobs {
		if j.Stage == plan.MachineImage {
			assert.Equal(t, "rebuild: its disk image is rebuilt", j.Reason)
		}
	}
	p = build(cfg, "overwrite-machine-image\ninclude keys: win7-32", builtEverything(t, cfg))
	assert.Empty(t, run(p, plan.DiskImage))
	assert.Len(t, run(p, plan.MachineImage), 2*5)
}

func TestPullRequestsAreDryRuns(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := plan.Build(plan.Options{Config: cfg, Instructions: instruction.Parse("include keys: win7-32", plan.Vocabulary(cfg)), Event: "pull_request"})
	assert.True(t, p.DryRun)
	m, err := p.Matrix(plan.Purge)
	require.NoError(t, err)
	for _, e := range m["include"].([]map[string]any) {
		assert.Equal(t, true, e["dry_run"])
	}
}

func TestMatrices(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "include keys: win10-64-gpu\ninclude environments: production", nil)
	got, err := p.MatrixJSON(plan.MachineImage)
	require.NoError(t, err)
	fp := ""
	for _, j := range p.Jobs {
		if j.ID == "machine-image/production/azure/win10-64-gpu/rg-east-us-gecko-t" {
			fp = j.Fingerprint
		}
	}
	require.NotEmpty(t, fp)
	assert.JSONEq(t, `{"include":[{"environment":"production","group":"rg-east-us-gecko-t","id":"machine-image/production/azure/win10-64-gpu/rg-east-us-gecko-t","key":"win10-64-gpu","name":"production win10-64-gpu eastus","platform":"azure","pool":"gecko-t/win10-64-gpu-azure","region":"eastus","fingerprint":"`+fp+`"}]}`, got)
	got, err = p.MatrixJSON(plan.DiskImage)
	require.NoError(t, err)
	assert.Contains(t, got, `"name":"production win10-64-gpu"`)
}

func TestMatrixOverGitHubsLimitIsAnError(t *testing.T) {
	cfg := synthetic(300, 1)
	p := plan.Build(plan.Options{Config: cfg, Instructions: instruction.Parse("", plan.Vocabulary(cfg))})
	_, err := p.Matrix(plan.MachineImage)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "600 jobs, over GitHub Actions' limit of 256 per matrix")
}

func TestMarkdownStaysUnderTheLimit(t *testing.T) {
	cfg := synthetic(200, 10)
	p := plan.Build(plan.Options{Config: cfg, Instructions: instruction.Parse("", plan.Vocabulary(cfg))})
	full := p.Markdown(1 << 30)
	require.Greater(t, len(full), plan.MaxComment, "the test needs a plan too long for one comment")
	md := p.Markdown(0)
	assert.LessOrEqual(t, len(md), plan.MaxComment)
	assert.True(t, strings.HasPrefix(md, plan.CommentMarker))
	assert.Contains(t, md, "more jobs are left out")
	assert.Contains(t, md, "```mermaid\ngraph LR\n  prepare[")

	c := p.Comment("https://github.com/o/r/actions/runs/9")
	assert.LessOrEqual(t, len(c), plan.MaxComment)
	assert.True(t, strings.HasPrefix(c, plan.CommentMarker))
	assert.True(t, strings.HasSuffix(c, "the whole plan is in [the run's step summary](https://github.com/o/r/actions/runs/9) and in its `cib-plan` artifact._\n"), c[len(c)-300:])
	assert.Equal(t, full, p.Markdown(plan.MaxSummary), "the step summary holds the whole plan")

	small := build(load(t, portedFS(t)), "include keys: win10-64-gpu", nil)
	assert.Equal(t, small.Markdown(0), small.Comment("https://x"), "a plan that fits is not marked shortened")
}

func TestMermaidGraphOfJobs(t *testing.T) {
	cfg := load(t, portedFS(t))
	p := build(cfg, "include keys: win10-64-gpu\ninclude environments: production", nil)
	m := p.Mermaid()
	assert.Contains(t, m, `["disk-image: production · win10-64-gpu"]`)
	// prepare → disk-image → machine-image → pool-config → verify
	assert.Contains(t, m, "j0 --> j2")
	assert.Contains(t, m, "j2 --> j3")
	assert.Contains(t, m, "j3 --> j4")
	assert.Contains(t, m, "j4 --> j5")
}

// TestPullRequestCommentDoc renders the pull-request comment of a plan of
// the ported configuration: docs/pr-comment.md, the README's picture of
// what a pull request gets, kept true by this golden test.
func TestPullRequestCommentDoc(t *testing.T) {
	before := load(t, portedFS(t))
	fsys := portedFS(t)
	edit(t, fsys, "packages.yaml", "msiexec /i C:\\Windows\\Temp\\nxlog-ce.msi /q /L*v", "msiexec /i C:\\Windows\\Temp\\nxlog-ce.msi /qn /L*v")
	cfg := load(t, fsys)
	msg := "Install nxlog quietly on Windows 10\n\ninclude environments: staging\nexclude regions: eastus\npool-deploy: true\n"
	p := plan.Build(plan.Options{
		Config: cfg, Instructions: instruction.Parse(msg, plan.Vocabulary(cfg)), Records: builtEverything(t, before),
		RecordSource: plan.RecordSource{Ref: "refs/remotes/origin/cib-records", Commit: builtRev},
		Revision:     revision, Event: "pull_request",
	})
	got := p.Comment("https://github.com/OWNER/REPO/actions/runs/RUN_ID")
	path := filepath.Join("..", "..", "docs", "pr-comment.md")
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/plan -update to create it")
	assert.Equal(t, string(want), got, "docs/pr-comment.md differs; if the change is intended, run go test ./internal/plan -update and review the diff")
	assert.True(t, p.DryRun)
	assert.Contains(t, got, "### Diagnostics")
}
