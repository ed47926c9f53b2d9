package cli_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/cli"
	"github.com/cib-project/cib/internal/pool/pooltest"
)

func TestPoolConfigGeneratesDeploysAndRecords(t *testing.T) {
	const (
		id    = "project/releng/cib"
		token = "pool-config-test-token-4242"
		image = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-east-us-gecko-t/providers/Microsoft.Compute/images/win7-32-gpu-abc1234"
	)
	rp := newRepo(t, "x")
	wm := pooltest.Start(t, id, token)
	creds := map[string]string{"TASKCLUSTER_CLIENT_ID": id, "TASKCLUSTER_ACCESS_TOKEN": token}
	base := []string{"pool-config", "--environment", "staging", "--pool", "gecko-t/win7-32-gpu-azure"}

	// no machine-image record yet
	r := run(t, rp.dir, nil, append(base, "--output", "out")...)
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "pool gecko-t/win7-32-gpu-azure: no machine image recorded for key win7-32-gpu, group rg-east-us-gecko-t in environment staging")

	r = run(t, rp.dir, nil, "record", "machine-image", "--environment", "staging", "--key", "win7-32-gpu", "--group", "rg-east-us-gecko-t",
		"--image-name", "win7-32-gpu-abc1234", "--image-location", image)
	require.Equal(t, 0, r.code, r.stderr)

	// generation
	r = run(t, rp.dir, nil, append(base, "--output", "out")...)
	require.Equal(t, 0, r.code, r.stderr)
	js, err := os.ReadFile(filepath.Join(rp.dir, "out", "gecko-t", "win7-32-gpu-azure.json"))
	require.NoError(t, err)
	assert.Contains(t, string(js), `"id": "`+image+`"`)
	assert.FileExists(t, filepath.Join(rp.dir, "out", "gecko-t", "win7-32-gpu-azure.yaml"))
	assert.Empty(t, wm.Calls(), "generation alone calls no worker manager")

	// dry run: a diff, no write
	dry := append(base, "--dry-run", "--root-url", wm.URL)
	r = run(t, rp.dir, creds, dry...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "gecko-t/win7-32-gpu-azure: would be created in staging (dry run)")
	assert.Contains(t, r.stdout, "+  \"providerId\": \"azure2\",")
	assert.Empty(t, wm.Writes())

	// deploy and record; the token is masked in Actions and never printed
	actions := actionsEnv(t, "push", map[string]any{}, rp.head(t))
	for k, v := range creds {
		actions[k] = v
	}
	r = run(t, rp.dir, actions, append(base, "--deploy", "--record", "--root-url", wm.URL)...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "gecko-t/win7-32-gpu-azure: created in staging")
	assert.Contains(t, r.stdout, "::add-mask::"+token)
	assert.Equal(t, 1, countOf(r.stdout+r.stderr, token), "the token appears only in the mask command")
	assert.Contains(t, r.stdout, "recorded pool-config records/staging/azure/pool/gecko-t/win7-32-gpu-azure.json")
	assert.Contains(t, string(wm.Pool("gecko-t/win7-32-gpu-azure")), image)

	// deployed as wanted: nothing to write, and the dry run says so
	r = run(t, rp.dir, creds, append(base, "--deploy", "--root-url", wm.URL)...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "gecko-t/win7-32-gpu-azure: unchanged in staging")
	r = run(t, rp.dir, creds, dry...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "no change")
	writes := wm.Writes()
	require.Len(t, writes, 1)
	assert.Equal(t, "PUT", writes[0].Method)
	for _, c := range wm.Calls() {
		assert.True(t, c.Authenticated, "%s %s: %s", c.Method, c.Pool, c.AuthError)
	}

	// wrong credentials: the worker manager's refusal, naming the pool
	r = run(t, rp.dir, map[string]string{"TASKCLUSTER_CLIENT_ID": id, "TASKCLUSTER_ACCESS_TOKEN": "wrong-token"}, append(base, "--deploy", "--root-url", wm.URL)...)
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "get worker pool gecko-t/win7-32-gpu-azure: HTTP 401")
	assert.NotContains(t, r.stderr+r.stdout, "wrong-token")

	// usage
	r = run(t, rp.dir, nil, "pool-config", "--environment", "staging", "--pool", "nope/nope")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, `--pool "nope/nope" is not a pool`)
	r = run(t, rp.dir, nil, append(base, "--deploy", "--root-url", wm.URL)...)
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN")
}

func countOf(s, sub string) int {
	n := 0
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			n++
		}
	}
	return n
}
