package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/actionsio"
	"github.com/cib-project/cib/internal/githubapi"
	"github.com/cib-project/cib/internal/plan"
)

const commentHelp = `
Post the plan's Markdown (written by cib plan) as one comment on a pull
request, and on every later push update that same comment in place instead
of adding another: the comment is found again by a hidden marker
(<!-- cib-plan -->, which cib plan's Markdown starts with). Comments
without the marker are never touched; an unchanged plan is not rewritten.

The body comes from --file (cib plan --comment-out writes it), or from
standard input. A body longer than GitHub's 65,536 characters is cut at a
line (closing any open <details> and code fence, leaving a Mermaid graph
out whole) and ends with a pointer to the run's summary and its plan
artifact, where the whole plan is.

Where it posts:
  --repo   default $GITHUB_REPOSITORY
  --pr     default the pull request of the event in $GITHUB_EVENT_PATH:
           pull_request and pull_request_target (.pull_request.number),
           workflow_run (.workflow_run.pull_requests[0].number), or a
           comment on a pull request (issue_comment)
  the API  $GITHUB_API_URL (GitHub Enterprise Server too), default
           https://api.github.com
The token is read from $GITHUB_TOKEN (or the variable --token-env names),
is masked in the log, and needs pull-requests: write (or issues: write).

Pull requests from forks: their pull_request runs get a read-only token,
so GitHub refuses the comment (403 "Resource not accessible by
integration"). Run the plan there, upload its Markdown and the pull
request's number as an artifact, and post it from a workflow_run
workflow, which has a write token, with --pr set from the artifact
(GitHub lists no pull request in a fork's workflow_run event).

From a workflow_run, --head-sha github.event.workflow_run.head_sha makes
sure the pull request still has the planned commit at its head: an
artifact from a fork's run is the fork's to write, so its pull request
number is checked, and a plan older than the latest push is not posted
(action skipped).

A comment that cannot be posted (no token, no pull request, GitHub
refusing or failing) is a warning: the plan does not fail because of its
comment, and cib comment exits 0, unless --strict makes it exit 1.

In GitHub Actions it writes the step outputs comment_id, comment_url and
action: created, updated, unchanged, or failed or skipped when nothing was
posted.`

type commentFlags struct {
	file, repo, pr, marker, tokenEnv, apiURL, headSHA string
	strict                                            bool
}

// runComment is `cib comment`.
func runComment(args []string, env Env) int {
	fs := newFlags(env, "comment", "[--file plan.md] [--repo owner/name] [--pr N] [flags]", commentHelp)
	var f commentFlags
	fs.StringVar(&f.file, "file", "", "the comment's Markdown `file`, as cib plan --comment-out writes it (none or -: standard input)")
	fs.StringVar(&f.repo, "repo", "", "the `repository`, owner/name (default $GITHUB_REPOSITORY)")
	fs.StringVar(&f.pr, "pr", "", "the pull request `number` (default: the event's pull request)")
	fs.StringVar(&f.marker, "marker", plan.CommentMarker, "the hidden `marker` that finds the comment again; added at the top when the body lacks it")
	fs.StringVar(&f.tokenEnv, "token-env", "GITHUB_TOKEN", "the environment `variable` holding the token")
	fs.StringVar(&f.apiURL, "api-url", "", "the GitHub REST API `URL` (default $GITHUB_API_URL, else "+githubapi.DefaultAPIURL+")")
	fs.StringVar(&f.headSHA, "head-sha", "", "post only if the pull request's head is this `commit` (the planned one; from a workflow_run: github.event.workflow_run.head_sha)")
	fs.BoolVar(&f.strict, "strict", false, "exit 1 when the comment cannot be posted, instead of warning")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	if strings.TrimSpace(f.marker) == "" {
		fmt.Fprintln(env.Stderr, "cib comment: --marker must not be empty: it would match every comment")
		return ExitUsage
	}
	r := env.runner()

	body, err := readBody(env, f.file)
	if err != nil {
		return fail(env, "comment", err)
	}
	if strings.TrimSpace(body) == "" {
		where := f.file
		if where == "" || where == "-" {
			where = "standard input"
		}
		return fail(env, "comment", fmt.Errorf("%s is empty: no plan to post (does cib plan write its Markdown there?)", where))
	}
	if !strings.Contains(body, f.marker) {
		body = f.marker + "\n" + body
	}
	if fitted := githubapi.Fit(body, plan.MaxComment, pointerLine(r)); len(fitted) < len(body) {
		fmt.Fprintf(env.Stdout, "cib comment: the plan is %d bytes, more than a comment holds: cut to %d, pointing to the run's summary\n", len(body), len(fitted))
		body = fitted
	}

	repo := f.repo
	if repo == "" {
		repo = env.Getenv("GITHUB_REPOSITORY")
	}
	if repo == "" {
		fmt.Fprintln(env.Stderr, "cib comment: no repository: give --repo owner/name (GITHUB_REPOSITORY is not set)")
		return ExitUsage
	}
	number := 0
	if f.pr != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(f.pr, "#"))
		if err != nil || n <= 0 {
			fmt.Fprintf(env.Stderr, "cib comment: --pr %q: want a pull request number\n", f.pr)
			return ExitUsage
		}
		number = n
	} else {
		n, why := eventPullRequest(r)
		if n == 0 {
			if !r.InActions() {
				fmt.Fprintf(env.Stderr, "cib comment: no pull request: give --pr (%s)\n", why)
				return ExitUsage
			}
			return notPosted(env, r, f, repo, 0, "failed", errors.New(why))
		}
		number = n
	}

	token := strings.TrimSpace(env.Getenv(f.tokenEnv))
	if token == "" {
		return notPosted(env, r, f, repo, number, "failed", fmt.Errorf("no token: $%s is empty (give the step env %s: ${{ github.token }}, or another variable with --token-env)", f.tokenEnv, f.tokenEnv))
	}
	r.Mask(token)
	apiURL := f.apiURL
	if apiURL == "" {
		apiURL = env.Getenv("GITHUB_API_URL")
	}
	client, err := githubapi.New(token, apiURL)
	if err != nil {
		return notPosted(env, r, f, repo, number, "failed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if f.headSHA != "" {
		head, err := client.PullRequestHead(ctx, repo, number)
		if err != nil {
			return notPosted(env, r, f, repo, number, "failed", err)
		}
		if !sameCommit(head, f.headSHA) {
			return notPosted(env, r, f, repo, number, "skipped", fmt.Errorf(
				"its head is %s, not %s, the commit planned: a newer push has a plan of its own, or the plan names the wrong pull request", head, f.headSHA))
		}
	}
	c, action, err := client.UpsertComment(ctx, repo, number, f.marker, body)
	if err != nil {
		return notPosted(env, r, f, repo, number, "failed", err)
	}
	switch action {
	case githubapi.Created:
		fmt.Fprintf(env.Stdout, "cib comment: posted the plan on %s#%d: %s\n", repo, number, c.URL)
	case githubapi.Updated:
		fmt.Fprintf(env.Stdout, "cib comment: updated the plan's comment on %s#%d in place: %s\n", repo, number, c.URL)
	default:
		fmt.Fprintf(env.Stdout, "cib comment: the plan's comment on %s#%d already shows this plan: left unchanged: %s\n", repo, number, c.URL)
	}
	if err := setCommentOutputs(r, strconv.FormatInt(c.ID, 10), c.URL, string(action)); err != nil {
		return fail(env, "comment", err)
	}
	return ExitOK
}

func readBody(env Env, file string) (string, error) {
	var data []byte
	var err error
	if file == "" || file == "-" {
		if env.Stdin == nil {
			return "", errors.New("no --file and no standard input")
		}
		data, err = io.ReadAll(env.Stdin)
	} else {
		data, err = os.ReadFile(env.path(file))
	}
	if err != nil {
		return "", fmt.Errorf("read the plan: %w", err)
	}
	return string(data), nil
}

// pointerLine ends a plan cut to fit a comment.
func pointerLine(r *actionsio.Runner) string {
	if u := r.RunURL(); u != "" {
		return fmt.Sprintf("_The plan is longer than a comment can hold; the full plan is in the [run's summary](%s) and its plan artifact._", u)
	}
	return "_The plan is longer than a comment can hold; the full plan is in the run's summary and its plan artifact._"
}

// eventPullRequest is the number of the pull request of the event that
// started the run, or 0 and why there is none.
func eventPullRequest(r *actionsio.Runner) (int, string) {
	name, payload, err := r.Event()
	if err != nil {
		return 0, err.Error()
	}
	number := func(v any) int {
		if f, ok := v.(float64); ok && f > 0 && f == float64(int(f)) {
			return int(f)
		}
		return 0
	}
	switch name {
	case "workflow_run":
		prs, _ := dig(payload, "workflow_run", "pull_requests").([]any)
		if len(prs) == 0 {
			return 0, "the workflow_run event lists no pull request (GitHub leaves the list empty for pull requests from forks, and for runs of no pull request): give --pr, e.g. the number saved with the plan artifact"
		}
		if first, ok := prs[0].(map[string]any); ok {
			if n := number(first["number"]); n > 0 {
				return n, ""
			}
		}
		return 0, "the workflow_run event's pull_requests[0] has no number: give --pr"
	case "issue_comment":
		if dig(payload, "issue", "pull_request") == nil {
			return 0, "the issue_comment event is about an issue, not a pull request: give --pr"
		}
		if n := number(dig(payload, "issue", "number")); n > 0 {
			return n, ""
		}
	}
	if n := number(dig(payload, "pull_request", "number")); n > 0 {
		return n, ""
	}
	if n := number(payload["number"]); n > 0 && dig(payload, "pull_request") != nil {
		return n, ""
	}
	return 0, fmt.Sprintf("the %s event is not about a pull request: give --pr", name)
}

// sameCommit compares a full commit hash with one that may be
// abbreviated (7 characters at least).
func sameCommit(full, given string) bool {
	full, given = strings.ToLower(full), strings.ToLower(strings.TrimSpace(given))
	return full == given || (len(given) >= 7 && strings.HasPrefix(full, given))
}

// notPosted reports a comment that could not be posted: a warning, for the
// plan must not fail because of its comment, unless --strict. outcome is
// the action output: failed, or skipped when posting would be wrong.
func notPosted(env Env, r *actionsio.Runner, f commentFlags, repo string, number int, outcome string, err error) int {
	where := repo
	if number > 0 {
		where = fmt.Sprintf("%s#%d", repo, number)
	}
	msg := fmt.Sprintf("the plan was not posted on %s: %v", where, err)
	var ge *githubapi.Error
	if errors.As(err, &ge) && ge.Retryable() {
		msg += "; a re-run may post it"
	}
	level, code := actionsio.Warning, ExitOK
	if f.strict {
		level, code = actionsio.Error, ExitFailure
	}
	if r.InActions() {
		r.Annotate(level, "", 0, 0, "cib comment: "+msg)
	} else {
		fmt.Fprintf(env.Stderr, "cib comment: %s: %s\n", level, msg)
	}
	if err := setCommentOutputs(r, "", "", outcome); err != nil {
		return fail(env, "comment", err)
	}
	return code
}

func setCommentOutputs(r *actionsio.Runner, id, url, action string) error {
	for _, o := range [][2]string{{"comment_id", id}, {"comment_url", url}, {"action", action}} {
		if err := r.SetOutput(o[0], o[1]); err != nil {
			return err
		}
	}
	return nil
}
