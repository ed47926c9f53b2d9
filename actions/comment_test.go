package actions_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cib-project/cib/internal/githubapi/githubtest"
)

// runCommentAction runs actions/comment as the runner would for an event,
// against a fake GitHub API (GITHUB_API_URL, as the runner sets it), in a
// workspace holding plan.md.
func runCommentAction(t *testing.T, root string, gh *githubtest.GitHub, event string, payload map[string]any, plan string, inputs map[string]string) *actionRun {
	t.Helper()
	ws := workspace{dir: t.TempDir(), sha: "0123456789abcdef0123456789abcdef01234567"}
	if err := os.WriteFile(filepath.Join(ws.dir, "plan.md"), []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	return runEventAction(t, root, "comment", ws, event, payload, inputs, "GITHUB_API_URL="+gh.URL())
}

// commentStep is the step that runs cib comment.
func (r *actionRun) commentStep(t *testing.T) stepResult {
	t.Helper()
	return r.step(t, "comment (id: comment)", func(s actionStep) bool { return s.ID == "comment" })
}

// noToken fails the test when the token shows in a log anywhere but in the
// mask command the runner swallows.
func noToken(t *testing.T, run *actionRun) {
	t.Helper()
	for _, s := range run.steps {
		if strings.Contains(strings.ReplaceAll(s.log, "::add-mask::"+testToken+"\n", ""), testToken) {
			t.Errorf("step %q shows the token:\n%s", s.title, s.log)
		}
	}
}

// TestCommentAction runs actions/comment as a runner would on a pull
// request's pushes: the first posts the plan with github.token, the next
// updates the same comment, the same plan again writes nothing; GitHub
// refusing is a warning (the action succeeds with action=failed) unless
// strict; from a workflow_run the pr input names the pull request.
func TestCommentAction(t *testing.T) {
	requireTools(t, "bash")
	root := repoRoot(t)
	const repo = "cib-project/cib"
	pr := map[string]any{"number": 21, "pull_request": map[string]any{"number": 21}}
	gh := githubtest.New(t, testToken, repo)
	gh.SetPullRequest(repo, 21, "0123456789abcdef0123456789abcdef01234567")
	reviewer := gh.AddComment(repo, 21, "reviewer", "nice")

	run := runCommentAction(t, root, gh, "pull_request", pr, "<!-- cib-plan -->\n## cib plan (dry run)\nfirst\n", map[string]string{"file": "plan.md"})
	if run.failed {
		t.Fatal("the action failed")
	}
	noToken(t, run)
	id, url := run.outputs["comment-id"], run.outputs["comment-url"]
	if run.outputs["action"] != "created" || id == "" || url != "https://github.com/"+repo+"/pull/21#issuecomment-"+id {
		t.Fatalf("outputs %v: want created, with the comment's id and URL", run.outputs)
	}

	run = runCommentAction(t, root, gh, "pull_request", pr, "<!-- cib-plan -->\n## cib plan (dry run)\nsecond\n", map[string]string{"file": "plan.md"})
	if run.failed || run.outputs["action"] != "updated" || run.outputs["comment-id"] != id || run.outputs["comment-url"] != url {
		t.Fatalf("second push: failed %t, outputs %v; want the same comment updated", run.failed, run.outputs)
	}
	gh.ResetCalls()
	run = runCommentAction(t, root, gh, "pull_request", pr, "<!-- cib-plan -->\n## cib plan (dry run)\nsecond\n", map[string]string{"file": "plan.md"})
	if run.failed || run.outputs["action"] != "unchanged" || len(gh.Writes()) != 0 {
		t.Fatalf("same plan: failed %t, outputs %v, writes %v; want unchanged and nothing written", run.failed, run.outputs, gh.Writes())
	}
	comments := gh.Comments(repo, 21)
	if len(comments) != 2 || comments[0].ID != reviewer || comments[0].Body != "nice" || !strings.Contains(comments[1].Body, "second") {
		t.Errorf("comments: %+v; want the reviewer's untouched and one plan", comments)
	}
	for _, c := range gh.Calls() {
		if c.Auth != "Bearer "+testToken {
			t.Errorf("%s %s: Authorization %q, want the token input", c.Method, c.Path, c.Auth)
		}
	}

	// From a workflow_run (a fork's pull request): the number is an input,
	// checked against the planned commit.
	const head = "fedcba9876543210fedcba9876543210fedcba98"
	gh.SetPullRequest(repo, 22, head)
	fork := map[string]any{"workflow_run": map[string]any{"head_sha": head, "pull_requests": []any{}}}
	run = runCommentAction(t, root, gh, "workflow_run", fork, "<!-- cib-plan -->\nfork plan\n", map[string]string{"file": "plan.md", "pr": "22", "head-sha": head})
	if run.failed || run.outputs["action"] != "created" || len(gh.Comments(repo, 22)) != 1 {
		t.Fatalf("workflow_run with pr 22: failed %t, outputs %v", run.failed, run.outputs)
	}
	run = runCommentAction(t, root, gh, "workflow_run", fork, "<!-- cib-plan -->\nfork plan\n", map[string]string{"file": "plan.md", "pr": "21", "head-sha": head})
	if run.failed || run.outputs["action"] != "skipped" || len(gh.Comments(repo, 21)) != 2 {
		t.Fatalf("workflow_run naming another pull request: failed %t, outputs %v; want skipped, nothing posted", run.failed, run.outputs)
	}

	// A read-only token: a warning, and the plan's job goes on.
	gh.Fail(githubtest.Fault{Method: http.MethodPatch, Status: 403, Message: "Resource not accessible by integration"})
	run = runCommentAction(t, root, gh, "pull_request", pr, "<!-- cib-plan -->\nthird\n", map[string]string{"file": "plan.md"})
	step := run.commentStep(t)
	if run.failed || run.outputs["action"] != "failed" || run.outputs["comment-id"] != "" {
		t.Errorf("refused: failed %t, outputs %v; want success with action failed", run.failed, run.outputs)
	}
	if !strings.Contains(step.log, "::warning::cib comment: the plan was not posted on "+repo+"#21") || !strings.Contains(step.log, "read-only GITHUB_TOKEN") {
		t.Errorf("no warning explaining the refusal:\n%s", step.log)
	}
	noToken(t, run)

	run = runCommentAction(t, root, gh, "pull_request", pr, "<!-- cib-plan -->\nthird\n", map[string]string{"file": "plan.md", "strict": "true"})
	if step := run.commentStep(t); !run.failed || step.exitCode != 1 || !strings.Contains(step.log, "::error::cib comment: the plan was not posted") {
		t.Errorf("strict: failed %t, exit %d; want a failure with exit 1 and an error:\n%s", run.failed, step.exitCode, step.log)
	}
	if got := gh.Comments(repo, 21)[1].Body; !strings.Contains(got, "second") {
		t.Errorf("the refused update changed the comment: %q", got)
	}
}
