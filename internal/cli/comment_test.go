package cli_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/cli"
	"github.com/cib-project/cib/internal/githubapi/githubtest"
	"github.com/cib-project/cib/internal/plan"
)

const commentToken = "ghs_commentTestToken0123456789abcdef"

// commentEnv is a pull_request step's environment with a fake GitHub API
// holding o/r, the repository actionsEnv names.
func commentEnv(t *testing.T, event string, payload any) (map[string]string, *githubtest.GitHub) {
	t.Helper()
	gh := githubtest.New(t, commentToken, "o/r")
	env := actionsEnv(t, event, payload, "merge-sha")
	env["GITHUB_API_URL"] = gh.URL()
	env["GITHUB_TOKEN"] = commentToken
	return env, gh
}

func prEvent(n int) map[string]any {
	return map[string]any{"number": n, "pull_request": map[string]any{"number": n, "head": map[string]any{"sha": "abc"}}}
}

func writePlan(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "plan.md")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

// tokenShown fails the test when the token appears anywhere but in the
// mask command that hides it.
func tokenShown(t *testing.T, r result) {
	t.Helper()
	out := strings.ReplaceAll(r.stdout+r.stderr, "::add-mask::"+commentToken+"\n", "")
	assert.NotContains(t, out, commentToken)
}

func TestCommentIsPostedThenUpdatedInPlace(t *testing.T) {
	env, gh := commentEnv(t, "pull_request", prEvent(5))
	other := gh.AddComment("o/r", 5, "reviewer", "please rebase")
	dir := t.TempDir()
	file := writePlan(t, dir, plan.CommentMarker+"\n## cib plan (dry run)\none job\n")

	r := run(t, dir, env, "comment", "--file", "plan.md")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	tokenShown(t, r)
	assert.Contains(t, r.stdout, "::add-mask::"+commentToken)
	out := outputs(t, env["GITHUB_OUTPUT"])
	assert.Equal(t, "created", out["action"])
	require.NotEmpty(t, out["comment_id"])
	assert.Equal(t, "https://github.com/o/r/pull/5#issuecomment-"+out["comment_id"], out["comment_url"])
	assert.Contains(t, r.stdout, "cib comment: posted the plan on o/r#5: "+out["comment_url"])
	writes := gh.Writes()
	require.Len(t, writes, 1)
	assert.Equal(t, http.MethodPost, writes[0].Method)
	assert.Equal(t, "/repos/o/r/issues/5/comments", writes[0].Path)
	assert.Equal(t, "Bearer "+commentToken, writes[0].Auth)
	assert.Equal(t, plan.CommentMarker+"\n## cib plan (dry run)\none job\n", writes[0].Body["body"])

	// The next push: the same comment, edited.
	gh.ResetCalls()
	require.NoError(t, os.WriteFile(file, []byte(plan.CommentMarker+"\n## cib plan (dry run)\ntwo jobs\n"), 0o644))
	env = withFreshOutput(t, env)
	r = run(t, dir, env, "comment", "--file", file)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	second := outputs(t, env["GITHUB_OUTPUT"])
	assert.Equal(t, "updated", second["action"])
	assert.Equal(t, out["comment_id"], second["comment_id"])
	assert.Equal(t, out["comment_url"], second["comment_url"])
	writes = gh.Writes()
	require.Len(t, writes, 1)
	assert.Equal(t, http.MethodPatch, writes[0].Method)
	assert.Equal(t, "/repos/o/r/issues/comments/"+out["comment_id"], writes[0].Path)

	// The same plan again: nothing written.
	gh.ResetCalls()
	env = withFreshOutput(t, env)
	r = run(t, dir, env, "comment", "--file", file)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Equal(t, "unchanged", outputs(t, env["GITHUB_OUTPUT"])["action"])
	assert.Contains(t, r.stdout, "left unchanged")
	assert.Empty(t, gh.Writes())

	comments := gh.Comments("o/r", 5)
	require.Len(t, comments, 2)
	assert.Equal(t, other, comments[0].ID)
	assert.Equal(t, "please rebase", comments[0].Body)
	assert.Contains(t, comments[1].Body, "two jobs")
}

func withFreshOutput(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	out["GITHUB_OUTPUT"] = filepath.Join(t.TempDir(), "output")
	return out
}

// Standard input, an explicit pull request and repository, another token
// variable and a body without the marker: the marker is added.
func TestCommentFromStdinOutsideActions(t *testing.T) {
	gh := githubtest.New(t, commentToken, "octo/images")
	env := map[string]string{"GITHUB_API_URL": gh.URL() + "/api/v3", "CIB_TOKEN": commentToken}
	var stdout, stderr strings.Builder
	code := cli.Main([]string{"comment", "--repo", "octo/images", "--pr", "#3", "--token-env", "CIB_TOKEN", "--marker", "<!-- my-plan -->"}, cli.Env{
		Stdout: &stdout, Stderr: &stderr, Stdin: strings.NewReader("a plan without a marker\n"),
		Getenv: func(k string) string { return env[k] },
	})
	require.Equal(t, cli.ExitOK, code, stderr.String())
	assert.NotContains(t, stdout.String()+stderr.String(), commentToken)
	comments := gh.Comments("octo/images", 3)
	require.Len(t, comments, 1)
	assert.Equal(t, "<!-- my-plan -->\na plan without a marker\n", comments[0].Body)
}

// A plan longer than a comment holds is cut at a line, closed, and points
// to the run's summary.
func TestCommentTrimsALongPlan(t *testing.T) {
	env, gh := commentEnv(t, "pull_request", prEvent(5))
	var b strings.Builder
	b.WriteString(plan.CommentMarker + "\n## cib plan (dry run)\n\n")
	for s := 0; b.Len() < plan.MaxComment+5000; s++ {
		fmt.Fprintf(&b, "<details><summary>stage %d</summary>\n\n| job | reason |\n|---|---|\n", s)
		for i := range 50 {
			fmt.Fprintf(&b, "| win10-64 %d | the configuration changed |\n", i)
		}
		b.WriteString("\n```text\nwould purge rg-east-us\n```\n\n</details>\n\n")
	}
	dir := t.TempDir()
	writePlan(t, dir, b.String())

	r := run(t, dir, env, "comment", "--file", "plan.md")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Regexp(t, `cib comment: the plan is \d+ bytes, more than a comment holds: cut to \d+`, r.stdout)
	comments := gh.Comments("o/r", 5)
	require.Len(t, comments, 1)
	body := comments[0].Body
	assert.LessOrEqual(t, len(body), plan.MaxComment)
	assert.Greater(t, len(body), plan.MaxComment-2000)
	assert.True(t, strings.HasPrefix(body, plan.CommentMarker+"\n"))
	assert.True(t, strings.HasSuffix(body, "\n_The plan is longer than a comment can hold; the full plan is in the [run's summary](https://github.com/o/r/actions/runs/7) and its plan artifact._\n"), body[len(body)-300:])
	assert.Equal(t, strings.Count(body, "<details>"), strings.Count(body, "</details>"))
	assert.Zero(t, strings.Count(body, "```")%2, "every fence is closed")
}

func TestCommentFindsThePullRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		event   string
		payload map[string]any
		args    []string
		want    int
	}{
		{"pull_request", "pull_request", prEvent(11), nil, 11},
		{"pull_request_target by number", "pull_request_target", map[string]any{"number": 12, "pull_request": map[string]any{}}, nil, 12},
		{"workflow_run", "workflow_run", map[string]any{"workflow_run": map[string]any{"pull_requests": []any{map[string]any{"number": 13}}}}, nil, 13},
		{"comment on a pull request", "issue_comment", map[string]any{"issue": map[string]any{"number": 14, "pull_request": map[string]any{}}}, nil, 14},
		{"--pr wins", "workflow_run", map[string]any{"workflow_run": map[string]any{"pull_requests": []any{map[string]any{"number": 13}}}}, []string{"--pr", "15"}, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, gh := commentEnv(t, tc.event, tc.payload)
			dir := t.TempDir()
			writePlan(t, dir, plan.CommentMarker+"\nplan\n")
			r := run(t, dir, env, append([]string{"comment", "--file", "plan.md"}, tc.args...)...)
			require.Equal(t, cli.ExitOK, r.code, r.stderr)
			assert.Len(t, gh.Comments("o/r", tc.want), 1)
			assert.Contains(t, outputs(t, env["GITHUB_OUTPUT"])["comment_url"], fmt.Sprintf("/pull/%d#", tc.want))
		})
	}
}

// A comment that cannot be posted is a warning and exit 0, or with --strict
// an error and exit 1; the plan never fails because of its comment.
func TestCommentFailuresWarn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		event   string
		payload map[string]any
		fault   *githubtest.Fault
		env     map[string]string
		want    []string
	}{
		{
			name: "fork: read-only token", event: "pull_request", payload: prEvent(5),
			fault: &githubtest.Fault{Method: http.MethodPost, Status: 403, Message: "Resource not accessible by integration"},
			want: []string{"cib comment: the plan was not posted on o/r#5: create a comment on o/r#5: GitHub answered 403 Forbidden: Resource not accessible by integration",
				"a pull_request run from a fork gets a read-only GITHUB_TOKEN", "workflow_run workflow"},
		},
		{
			name: "GitHub fails", event: "pull_request", payload: prEvent(5),
			fault: &githubtest.Fault{Status: 500, Message: "Server Error"},
			want:  []string{"list the comments of o/r#5: GitHub answered 500 Internal Server Error: Server Error", "a re-run may post it"},
		},
		{
			name: "not found", event: "pull_request", payload: prEvent(5), env: map[string]string{"GITHUB_REPOSITORY": "o/missing"},
			want: []string{"404 Not Found", "no repository o/missing with pull request #5, or the token cannot see it"},
		},
		{
			name: "no token", event: "pull_request", payload: prEvent(5), env: map[string]string{"GITHUB_TOKEN": ""},
			want: []string{"no token: $GITHUB_TOKEN is empty"},
		},
		{
			name: "fork's workflow_run", event: "workflow_run", payload: map[string]any{"workflow_run": map[string]any{"pull_requests": []any{}}},
			want: []string{"the plan was not posted on o/r: the workflow_run event lists no pull request", "give --pr"},
		},
		{
			name: "push", event: "push", payload: map[string]any{"after": "abc"},
			want: []string{"the push event is not about a pull request: give --pr"},
		},
	} {
		for _, strict := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s strict=%t", tc.name, strict), func(t *testing.T) {
				env, gh := commentEnv(t, tc.event, tc.payload)
				for k, v := range tc.env {
					env[k] = v
				}
				if tc.fault != nil {
					gh.Fail(*tc.fault)
				}
				dir := t.TempDir()
				writePlan(t, dir, plan.CommentMarker+"\nplan\n")
				args := []string{"comment", "--file", "plan.md"}
				level, code := "warning", cli.ExitOK
				if strict {
					args = append(args, "--strict")
					level, code = "error", cli.ExitFailure
				}
				r := run(t, dir, env, args...)
				assert.Equal(t, code, r.code, r.stdout+r.stderr)
				line := regexp.MustCompile(`(?m)^::` + level + `::cib comment: .*$`).FindString(r.stdout)
				require.NotEmpty(t, line, "no ::%s:: line:\n%s", level, r.stdout)
				for _, w := range tc.want {
					assert.Contains(t, line, w)
				}
				tokenShown(t, r)
				assert.Equal(t, "failed", outputs(t, env["GITHUB_OUTPUT"])["action"])
				assert.Empty(t, gh.Comments("o/r", 5), "nothing was posted")
			})
		}
	}
}

func TestCommentUsage(t *testing.T) {
	r := run(t, t.TempDir(), nil, "comment", "--help")
	require.Equal(t, cli.ExitOK, r.code)
	for _, w := range []string{"Usage: cib comment", "<!-- cib-plan -->", "workflow_run", "--token-env", "--strict", "65,536", "GITHUB_API_URL"} {
		assert.Contains(t, r.stdout, w)
	}

	dir := t.TempDir()
	writePlan(t, dir, "plan\n")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"--pr", "abc", "--repo", "o/r"}, nil, cli.ExitUsage, `--pr "abc": want a pull request number`},
		{[]string{"--pr", "1"}, nil, cli.ExitUsage, "no repository: give --repo owner/name"},
		{[]string{"--repo", "o/r"}, nil, cli.ExitUsage, "no pull request: give --pr"},
		{[]string{"--marker", " "}, nil, cli.ExitUsage, "--marker must not be empty"},
		{[]string{"--file", "missing.md"}, nil, cli.ExitFailure, "read the plan: open"},
		{[]string{"--repo", "o/r", "--pr", "1"}, nil, cli.ExitOK, "cib comment: warning: the plan was not posted on o/r#1: no token"},
		{[]string{"--repo", "o/r", "--pr", "1", "--strict"}, nil, cli.ExitFailure, "cib comment: error: the plan was not posted on o/r#1: no token"},
	} {
		args := append([]string{"comment"}, tc.args...)
		if !strings.Contains(strings.Join(tc.args, " "), "--file") {
			args = append(args, "--file", "plan.md")
		}
		r := run(t, dir, tc.env, args...)
		assert.Equal(t, tc.code, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.want, "%v", tc.args)
	}
}

// --head-sha posts only while the pull request's head is the planned
// commit: a fork's artifact cannot aim the comment at another pull
// request, and an old plan does not overwrite a newer push's.
func TestCommentChecksThePullRequestsHead(t *testing.T) {
	const head = "89abcdef0123456789abcdef0123456789abcdef"
	env, gh := commentEnv(t, "workflow_run", map[string]any{"workflow_run": map[string]any{"head_sha": head, "pull_requests": []any{}}})
	gh.SetPullRequest("o/r", 8, head)
	gh.SetPullRequest("o/r", 9, "ffffffffffffffffffffffffffffffffffffffff")
	dir := t.TempDir()
	writePlan(t, dir, plan.CommentMarker+"\nplan\n")

	r := run(t, dir, env, "comment", "--file", "plan.md", "--pr", "9", "--head-sha", head)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "::warning::cib comment: the plan was not posted on o/r#9: its head is ffffffffffffffffffffffffffffffffffffffff, not "+head+", the commit planned")
	assert.Equal(t, "skipped", outputs(t, env["GITHUB_OUTPUT"])["action"])
	assert.Empty(t, gh.Comments("o/r", 9))

	env = withFreshOutput(t, env)
	r = run(t, dir, env, "comment", "--file", "plan.md", "--pr", "8", "--head-sha", head[:7])
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Equal(t, "created", outputs(t, env["GITHUB_OUTPUT"])["action"])
	assert.Len(t, gh.Comments("o/r", 8), 1)

	env = withFreshOutput(t, env)
	r = run(t, dir, env, "comment", "--file", "plan.md", "--pr", "10", "--head-sha", head, "--strict")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stdout, "::error::cib comment: the plan was not posted on o/r#10: read pull request o/r#10: GitHub answered 404 Not Found")
}
