package actionsio_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/actionsio"
)

// runnerEnv is a runner-like environment in a temporary folder.
func runnerEnv(t *testing.T) map[string]string {
	dir := t.TempDir()
	env := map[string]string{
		"GITHUB_ACTIONS":      "true",
		"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
		"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
	}
	return env
}

func TestOutputsAndSummaryGoToTheRunnerFiles(t *testing.T) {
	env := runnerEnv(t)
	var out bytes.Buffer
	r := actionsio.NewWith(func(k string) string { return env[k] }, &out)
	require.NoError(t, r.SetOutput("count", "3"))
	require.NoError(t, r.SetOutput("matrix", "{\"include\":[]}\nsecond line"))
	require.NoError(t, r.AddStepSummary("## plan"))

	data, err := os.ReadFile(env["GITHUB_OUTPUT"])
	require.NoError(t, err)
	assert.Regexp(t, `(?s)^count<<(\S+)\n3\n(\S+)\nmatrix<<\S+\n\{"include":\[\]\}\nsecond line\n\S+\n$`, string(data))
	summary, err := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	require.NoError(t, err)
	assert.Equal(t, "## plan\n", string(summary))
	assert.Empty(t, out.String(), "outputs are files, not log lines")
}

func TestAnnotationsMasksAndGroups(t *testing.T) {
	env := runnerEnv(t)
	var out bytes.Buffer
	r := actionsio.NewWith(func(k string) string { return env[k] }, &out)
	r.Annotate(actionsio.Error, "config/win10-64.yaml", 12, 5, "image.size: expected a whole number")
	r.Annotate(actionsio.Warning, "", 0, 0, "line 3: did you mean include keys:?")
	r.Mask("s3cr3t")
	end := r.Group("plan")
	end()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 5)
	assert.Equal(t, "::error col=5,file=config/win10-64.yaml,line=12::image.size: expected a whole number", lines[0])
	assert.Equal(t, "::warning::line 3: did you mean include keys:?", lines[1])
	assert.Equal(t, "::add-mask::s3cr3t", lines[2])
	assert.Equal(t, "::group::plan", lines[3])
	assert.Equal(t, "::endgroup::", lines[4])
}

func TestOutsideActionsNothingIsWritten(t *testing.T) {
	var out bytes.Buffer
	r := actionsio.NewWith(func(string) string { return "" }, &out)
	assert.False(t, r.InActions())
	require.NoError(t, r.SetOutput("a", "b"))
	require.NoError(t, r.AddStepSummary("x"))
	r.Annotate(actionsio.Error, "f", 1, 1, "m")
	r.Mask("secret")
	r.Group("g")()
	assert.Empty(t, out.String())
	_, _, err := r.Event()
	assert.ErrorIs(t, err, actionsio.ErrNoEvent)
	assert.Empty(t, r.RunURL())
}

func TestEventAndRunURL(t *testing.T) {
	env := runnerEnv(t)
	path := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"inputs":{"keys":"win10-64"}}`), 0o600))
	env["GITHUB_EVENT_NAME"], env["GITHUB_EVENT_PATH"] = "workflow_dispatch", path
	env["GITHUB_SERVER_URL"], env["GITHUB_REPOSITORY"], env["GITHUB_RUN_ID"], env["GITHUB_RUN_ATTEMPT"] = "https://github.com", "o/r", "42", "2"
	r := actionsio.NewWith(func(k string) string { return env[k] }, &bytes.Buffer{})
	name, payload, err := r.Event()
	require.NoError(t, err)
	assert.Equal(t, "workflow_dispatch", name)
	assert.Equal(t, "win10-64", payload["inputs"].(map[string]any)["keys"])
	assert.Equal(t, "https://github.com/o/r/actions/runs/42/attempts/2", r.RunURL())

	require.NoError(t, os.WriteFile(path, []byte(`{not json`), 0o600))
	_, _, err = r.Event()
	assert.ErrorContains(t, err, "read the workflow_dispatch event at "+path)
}

func TestUnwritableOutputIsAnError(t *testing.T) {
	env := runnerEnv(t)
	env["GITHUB_OUTPUT"] = filepath.Join(t.TempDir(), "missing", "dir", "output")
	r := actionsio.NewWith(func(k string) string { return env[k] }, &bytes.Buffer{})
	assert.ErrorContains(t, r.SetOutput("a", "b"), "write GITHUB_OUTPUT")
}

// The ID token comes from the runner's token service, asked with the
// request token for the audience, and is masked before it is used.
func TestIDToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer request-token" || r.URL.Query().Get("audience") != "api://AzureADTokenExchange" {
			http.Error(w, "bad request", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"value":"the.id.token"}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	env := map[string]string{"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": srv.URL + "/token?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token"}
	r := actionsio.NewWith(func(k string) string { return env[k] }, &out)
	require.True(t, r.CanRequestIDToken())
	tok, err := r.IDToken(context.Background(), "api://AzureADTokenExchange")
	require.NoError(t, err)
	assert.Equal(t, "the.id.token", tok)
	assert.Contains(t, out.String(), "::add-mask::the.id.token")

	none := actionsio.NewWith(func(string) string { return "" }, &out)
	_, err = none.IDToken(context.Background(), "x")
	assert.ErrorContains(t, err, "permissions: id-token: write")
}
