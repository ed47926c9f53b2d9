package cli_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/cli"
)

// The tests of `cib prepare`: the configuration's targets made to exist in
// an in-memory Azure (azuretest) through the real clients of
// internal/azure, then left alone.

const (
	prepCentral = "rg-central-us-gecko-t"
	prepEast    = "rg-east-us-gecko-t"
)

// prepareRepo is a repository whose win10-64 key stores its disk image in
// an Azure container, so that prepare makes one.
func prepareRepo(t *testing.T) *repo {
	t.Helper()
	r := newRepo(t, "config")
	path := filepath.Join(r.dir, "config", "win10-64.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	old := "    target:\n        platform: amazon\n        bucket: windows-ami-builder\n"
	require.Contains(t, string(data), old)
	data = bytes.Replace(data, []byte(old), []byte("    target:\n        platform: azure\n        bucket: disk-images\n"), 1)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	git(t, r.dir, "commit", "-q", "-am", "win10-64: disk images in azure")
	return r
}

func runPrepare(t *testing.T, dir string, a *azuretest.Azure, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(append([]string{"prepare"}, args...), cli.Env{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Getenv: func(k string) string { return env[k] },
		Dir:    dir,
		Azure: func(subscription string) (*azure.Machines, error) {
			m, err := azure.StandIn(subscription, a.ClientOptions())
			if m != nil {
				m.PollFrequency = time.Millisecond
			}
			return m, err
		},
	})
	return result{code, out.String(), errb.String()}
}

func prepareArgs(extra ...string) []string {
	return append([]string{"--environment", "staging", "--key", "win10-64", "--groups", prepCentral + "," + prepEast,
		"--gallery", "cib_images"}, extra...)
}

// writeCalls are the calls that change something.
func writeCalls(calls []azuretest.Call) []string {
	var out []string
	for _, c := range calls {
		if c.Method != http.MethodGet {
			out = append(out, c.Method+" "+c.Path)
		}
	}
	return out
}

func TestPrepareMakesTheTargetsInfrastructureThenChangesNothing(t *testing.T) {
	r := prepareRepo(t)
	a := azuretest.New()
	t.Cleanup(a.Close)
	env := actionsEnv(t, "push", map[string]any{}, r.head(t))
	env["AZURE_SUBSCRIPTION_ID"] = azuretest.Subscription

	res := runPrepare(t, r.dir, a, env, prepareArgs()...)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	t.Log(res.stdout)
	want := []string{
		"created resource group " + prepCentral + " (" + prepCentral + ", centralus)",
		"created storage account sacentralusgeckot (" + prepCentral + ", centralus)",
		"created container sacentralusgeckot/disk-images (" + prepCentral + ", centralus)",
		"created NSG nsg-central-us-gecko-t (" + prepCentral + ", centralus)",
		"created virtual network vn-central-us-gecko-t (" + prepCentral + ", centralus)",
		"created subnet vn-central-us-gecko-t/sn-central-us-gecko-t (" + prepCentral + ", centralus)",
		"created gallery cib_images (" + prepCentral + ", centralus)",
		"created image definition cib_images/win10-64 (" + prepCentral + ", centralus)",
		"created resource group " + prepEast + " (" + prepEast + ", eastus)",
		"created storage account saeastusgeckot (" + prepEast + ", eastus)",
		"created container saeastusgeckot/disk-images (" + prepEast + ", eastus)",
		"created NSG nsg-east-us-gecko-t (" + prepEast + ", eastus)",
		"created virtual network vn-east-us-gecko-t (" + prepEast + ", eastus)",
		"created subnet vn-east-us-gecko-t/sn-east-us-gecko-t (" + prepEast + ", eastus)",
		"created gallery cib_images (" + prepEast + ", eastus)",
		"created image definition cib_images/win10-64 (" + prepEast + ", eastus)",
		"prepare: 16 created, 0 updated, 0 unchanged",
	}
	assert.Equal(t, want, strings.Split(strings.TrimSpace(res.stdout), "\n"))
	out := outputs(t, env["GITHUB_OUTPUT"])
	assert.Equal(t, map[string]string{"created": "16", "updated": "0", "unchanged": "0", "changed": "true"}, out)
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "## cib prepare: staging\n")
	assert.Contains(t, string(summary), "| created | storage account | sacentralusgeckot | "+prepCentral+" | centralus |  |\n")
	assert.Contains(t, string(summary), "**16 created, 0 updated, 0 unchanged**")
	for _, id := range []string{
		azuretest.ContainerID(prepEast, "saeastusgeckot", "disk-images"),
		azuretest.ImageDefinitionID(prepCentral, "cib_images", "win10-64"),
		azuretest.SubnetID(prepEast, "vn-east-us-gecko-t", "sn-east-us-gecko-t"),
	} {
		assert.Contains(t, a.IDs(), id)
	}

	// The second run says nothing changed, and writes nothing.
	before := len(a.Calls())
	env = actionsEnv(t, "push", map[string]any{}, r.head(t))
	res = runPrepare(t, r.dir, a, env, prepareArgs("--subscription", azuretest.Subscription)...)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	got := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, got, len(want))
	for i, l := range got[:len(got)-1] {
		assert.Equal(t, "unchanged"+strings.TrimPrefix(want[i], "created"), l)
	}
	assert.Equal(t, "prepare: everything already matches the configuration; nothing changed", got[len(got)-1])
	assert.Empty(t, writeCalls(a.Calls()[before:]))
	assert.Equal(t, "false", outputs(t, env["GITHUB_OUTPUT"])["changed"])
	summary, err = os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "**Everything already matches the configuration; nothing changed**")
	assert.Contains(t, string(summary), "| unchanged | NSG | nsg-east-us-gecko-t | "+prepEast+" | eastus |  |\n")
}

func TestPrepareDryRunWritesNothing(t *testing.T) {
	r := prepareRepo(t)
	a := azuretest.New()
	t.Cleanup(a.Close)
	env := actionsEnv(t, "pull_request", map[string]any{}, r.head(t))
	res := runPrepare(t, r.dir, a, env, prepareArgs("--subscription", azuretest.Subscription, "--dry-run")...)
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "would create storage account saeastusgeckot ("+prepEast+", eastus)\n")
	assert.Contains(t, res.stdout, "prepare: dry run: 16 to create, 0 to update, 0 unchanged; nothing written\n")
	for _, c := range a.Calls() {
		assert.Contains(t, []string{http.MethodGet, http.MethodPost}, c.Method, "%s %s", c.Method, c.Path)
		if c.Method == http.MethodPost {
			assert.Equal(t, "AccountsClient.CheckNameAvailability", c.API)
		}
	}
	assert.Empty(t, a.IDs())
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "## cib prepare: staging (dry run)")
	assert.Contains(t, string(summary), "| would create | image definition | cib_images/win10-64 |")
}

// Every key with targets on azure, as the plan's prepare job without keys
// would run it. The seed's configurations describe the shared NSG of a
// group with rules that differ (win7-32's allow-winrm description is
// wrapped differently): an NSG holds one set of rules, so builds would
// set it back and forth; prepare refuses, naming the rule, before any
// call. With the keys that agree, the same dry run goes through.
// TestPrepareEveryKeyDryRun plans the whole ported configuration, whose
// keys word some shared NSG rules differently (a warning: the rules do the
// same), then a copy in which two keys give a shared rule different
// ports: refused before any call, since one NSG holds one set of rules.
func TestPrepareEveryKeyDryRun(t *testing.T) {
	r := newRepo(t, "config")
	a := azuretest.New()
	t.Cleanup(a.Close)
	res := runPrepare(t, r.dir, a, map[string]string{}, "--environment", "production", "--subscription", azuretest.Subscription, "--dry-run")
	require.Equal(t, cli.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "prepare: dry run: ")
	assert.Contains(t, res.stdout, "would create NSG nsg-central-us-gecko-t (rg-central-us-gecko-t, centralus)")
	assert.Contains(t, res.stderr, "prepare: warning: NSG nsg-central-us-gecko-t in rg-central-us-gecko-t: rule allow-winrm: description")
	assert.Empty(t, a.IDs())

	path := filepath.Join(r.dir, "config", "win7-32.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	edited := strings.Replace(string(data), "                    priority: 112\n", "                    priority: 113\n", 1)
	require.NotEqual(t, string(data), edited)
	require.NoError(t, os.WriteFile(path, []byte(edited), 0o644))
	git(t, r.dir, "commit", "-q", "-am", "win7-32 moves its winrm rule")
	b := azuretest.New()
	t.Cleanup(b.Close)
	res = runPrepare(t, r.dir, b, map[string]string{}, "--environment", "production", "--subscription", azuretest.Subscription, "--dry-run")
	require.Equal(t, cli.ExitFailure, res.code, res.stderr)
	assert.Contains(t, res.stderr, "targets disagree: NSG nsg-central-us-gecko-t in rg-central-us-gecko-t has different rules for win7-32 → rg-central-us-gecko-t (rule allow-winrm differs in what it lets through")
	assert.Empty(t, b.Calls())
}

func TestPrepareThrottledIsRetryable(t *testing.T) {
	r := prepareRepo(t)
	a := azuretest.New()
	t.Cleanup(a.Close)
	a.Inject(azuretest.Fault{API: "AccountsClient.BeginCreate", Status: http.StatusTooManyRequests, Code: "TooManyRequests", Times: 1})
	env := actionsEnv(t, "push", map[string]any{}, r.head(t))
	res := runPrepare(t, r.dir, a, env, prepareArgs("--subscription", azuretest.Subscription)...)
	assert.Equal(t, cli.ExitRetryable, res.code, res.stderr)
	assert.Contains(t, res.stderr, "create storage account "+prepCentral+"/sacentralusgeckot")
	assert.Contains(t, res.stdout, "created resource group "+prepCentral, "what was done is reported")
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), "**Failed: azure: create storage account "+prepCentral+"/sacentralusgeckot")

	// A wrong region is permanent.
	b := azuretest.New()
	t.Cleanup(b.Close)
	b.AddGalleryImage(prepEast, "cib_images", "win10-64", "westus", "V1")
	res = runPrepare(t, r.dir, b, map[string]string{}, prepareArgs("--subscription", azuretest.Subscription)...)
	assert.Equal(t, cli.ExitFailure, res.code, res.stderr)
	assert.Contains(t, res.stderr, "gallery "+prepEast+"/cib_images is in region westus, but the configuration puts it in eastus")
}

func TestPrepareRefusals(t *testing.T) {
	r := prepareRepo(t)
	a := azuretest.New()
	t.Cleanup(a.Close)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--key", "win10-64"}, "--environment is required"},
		{[]string{"--environment", "nope"}, `--environment "nope" is not an environment of settings.yaml`},
		{[]string{"--environment", "staging", "--platform", "amazon"}, `--platform "amazon": cib prepares azure only`},
		{[]string{"--environment", "staging", "--key", "nope"}, `--key "nope" is not an image key`},
		{[]string{"--environment", "staging", "--key", "win10-64", "--groups", "rg-nowhere"}, "--groups: rg-nowhere is the group of no selected target on azure"},
		{[]string{"--environment", "staging", "--gallery", "bad-name"}, `--gallery "bad-name"`},
		{[]string{"--environment", "staging"}, "no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID"},
		{[]string{"--environment", "staging", "extra"}, `unexpected argument "extra"`},
	} {
		env := actionsEnv(t, "push", map[string]any{}, r.head(t))
		res := runPrepare(t, r.dir, a, env, c.args...)
		assert.Equal(t, cli.ExitUsage, res.code, "%v: %s", c.args, res.stderr)
		assert.Contains(t, res.stderr, c.want, "%v", c.args)
	}
	assert.Empty(t, a.Calls(), "refused before Azure is called")

	env := actionsEnv(t, "push", map[string]any{}, r.head(t))
	res := runPrepare(t, r.dir, a, env, "--environment", "nope")
	require.Equal(t, cli.ExitUsage, res.code)
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Contains(t, string(summary), `**Refused: --environment "nope" is not an environment of settings.yaml**`)

	res = runPrepare(t, r.dir, a, map[string]string{}, "--help")
	assert.Equal(t, cli.ExitOK, res.code)
	for _, s := range []string{"Usage: cib prepare", "--gallery NAME", "--dry-run", "Compute Gallery", "a second run changes nothing"} {
		assert.Contains(t, res.stdout, s)
	}
}
