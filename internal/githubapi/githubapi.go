// Package githubapi is cib's one door to GitHub's REST API (and the only
// importer of go-github): the plan's sticky pull-request comment, found
// again by a hidden marker and updated in place on every push.
//
// Errors name what was being done, GitHub's status and message, and what
// usually causes it; the token never appears in them.
package githubapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-github/v90/github"
)

// DefaultAPIURL is the REST API of github.com; GitHub Actions gives the
// API of the instance a run belongs to (GitHub Enterprise Server too) in
// GITHUB_API_URL.
const DefaultAPIURL = "https://api.github.com/"

// Client talks to one GitHub instance with one token.
type Client struct {
	gh    *github.Client
	token string
}

// New returns a client of the REST API at apiURL ("" for github.com; a
// GitHub Enterprise Server API is https://HOST/api/v3) authenticated with
// token.
func New(token, apiURL string) (*Client, error) {
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("no GitHub token")
	}
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("the GitHub API URL %q is not an http(s) URL", apiURL)
	}
	gh, err := github.NewClient(
		github.WithAuthToken(token),
		github.WithURLs(&apiURL, &apiURL),
		github.WithTimeout(time.Minute),
		github.WithUserAgent("cib"),
	)
	if err != nil {
		return nil, fmt.Errorf("the GitHub API URL %q: %w", apiURL, err)
	}
	return &Client{gh: gh, token: token}, nil
}

// Comment is an issue or pull-request comment.
type Comment struct {
	ID int64
	// URL is the comment's web address.
	URL string
}

// Action is what UpsertComment did.
type Action string

// What UpsertComment did.
const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
)

// maxPages bounds the listing of comments (100 a page) against a server
// whose pages never end.
const maxPages = 1000

// UpsertComment makes body the one comment of pull request (or issue)
// number of repo ("owner/name") that contains marker: it edits the newest
// comment holding the marker when the body differs, leaves it alone when it
// is the same, and creates a comment when none holds the marker. Other
// comments are never touched. The author is not checked: whoever posted a
// comment with the marker, it is the plan's.
func (c *Client) UpsertComment(ctx context.Context, repo string, number int, marker, body string) (Comment, Action, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Comment{}, "", err
	}
	if number <= 0 {
		return Comment{}, "", fmt.Errorf("pull request number %d: it must be positive", number)
	}
	if marker == "" {
		return Comment{}, "", errors.New("an empty marker would match every comment")
	}
	where := fmt.Sprintf("%s#%d", repo, number)

	found, err := c.find(ctx, owner, name, number, marker, where)
	if err != nil {
		return Comment{}, "", err
	}
	if found == nil {
		made, _, err := c.gh.Issues.CreateComment(ctx, owner, name, number, &github.IssueComment{Body: github.Ptr(body)})
		if err != nil {
			return Comment{}, "", c.explain("create a comment on "+where, repo, number, err)
		}
		return toComment(made), Created, nil
	}
	if sameBody(found.GetBody(), body) {
		return toComment(found), Unchanged, nil
	}
	edited, _, err := c.gh.Issues.EditComment(ctx, owner, name, found.GetID(), &github.IssueComment{Body: github.Ptr(body)})
	if err != nil {
		return Comment{}, "", c.explain(fmt.Sprintf("update comment %d on %s", found.GetID(), where), repo, number, err)
	}
	return toComment(edited), Updated, nil
}

// PullRequestHead returns the commit at the head of pull request number of
// repo.
func (c *Client) PullRequestHead(ctx context.Context, repo string, number int) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	p, _, err := c.gh.PullRequests.Get(ctx, owner, name, number)
	if err != nil {
		return "", c.explain(fmt.Sprintf("read pull request %s#%d", repo, number), repo, number, err)
	}
	sha := p.GetHead().GetSHA()
	if sha == "" {
		return "", fmt.Errorf("read pull request %s#%d: GitHub gave no head commit", repo, number)
	}
	return sha, nil
}

// find lists every comment, page by page, and returns the newest that
// holds marker, or nil.
func (c *Client) find(ctx context.Context, owner, name string, number int, marker, where string) (*github.IssueComment, error) {
	var found *github.IssueComment
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for pages := 0; ; pages++ {
		if pages == maxPages {
			return nil, fmt.Errorf("list the comments of %s: more than %d pages", where, maxPages)
		}
		list, resp, err := c.gh.Issues.ListComments(ctx, owner, name, number, opts)
		if err != nil {
			return nil, c.explain("list the comments of "+where, owner+"/"+name, number, err)
		}
		for _, cm := range list {
			if !strings.Contains(cm.GetBody(), marker) {
				continue
			}
			// GitHub lists the oldest first; the creation time decides
			// anyway, and the later in the list among equals.
			if found == nil || !cm.GetCreatedAt().Before(found.GetCreatedAt().Time) {
				found = cm
			}
		}
		if resp.NextPage == 0 || resp.NextPage <= opts.Page {
			return found, nil
		}
		opts.Page = resp.NextPage
	}
}

// sameBody compares bodies as GitHub shows them: line endings and
// trailing white space do not count.
func sameBody(a, b string) bool {
	norm := func(s string) string { return strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), " \t\n") }
	return norm(a) == norm(b)
}

func toComment(c *github.IssueComment) Comment {
	return Comment{ID: c.GetID(), URL: c.GetHTMLURL()}
}

func splitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("repository %q: want owner/name", repo)
	}
	return owner, name, nil
}

// Error is a failed call of the API.
type Error struct {
	// Op is what was being done: "create a comment on o/r#5".
	Op string
	// Status is the HTTP status (0 when GitHub never answered).
	Status int
	// Message is GitHub's message, with the details of a validation
	// failure, or the transport's error.
	Message string
	// Hint says what usually causes the error and what to do.
	Hint string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": GitHub answered %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

// Retryable reports whether a later try may succeed: GitHub's own
// failures, rate limits and the network.
func (e *Error) Retryable() bool {
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status >= 500 ||
		strings.Contains(strings.ToLower(e.Message), "rate limit")
}

// forkHint is the hint for a token that may not write, which is how a
// pull_request run from a fork always is.
const forkHint = "the token may not write to the pull request: a pull_request run from a fork gets a read-only GITHUB_TOKEN whatever the workflow asks; " +
	"same-repository pull requests need `permissions: pull-requests: write` on the job; " +
	"for forks, upload the plan and the pull request's number as an artifact and post it from a workflow_run workflow, which has a write token, " +
	"with cib comment --pr NUMBER --head-sha github.event.workflow_run.head_sha (GitHub lists no pull request in a fork's workflow_run event)"

// explain turns a go-github error into an Error with a hint, without the
// token.
func (c *Client) explain(op, repo string, number int, err error) error {
	e := &Error{Op: op}
	var (
		resp  *github.ErrorResponse
		rate  *github.RateLimitError
		abuse *github.AbuseRateLimitError
	)
	switch {
	case errors.As(err, &rate):
		e.Status, e.Message = statusOf(rate.Response), rate.Message
		e.Hint = fmt.Sprintf("the API rate limit is spent until %s", rate.Rate.Reset.UTC().Format(time.RFC3339))
	case errors.As(err, &abuse):
		e.Status, e.Message = statusOf(abuse.Response), abuse.Message
		e.Hint = "GitHub's secondary rate limit: too many requests in a short time; try again later"
		if abuse.RetryAfter != nil {
			e.Hint = fmt.Sprintf("GitHub's secondary rate limit: retry after %s", abuse.RetryAfter)
		}
	case errors.As(err, &resp):
		e.Status, e.Message = statusOf(resp.Response), resp.Message
		var details []string
		for _, d := range resp.Errors {
			if d.Message != "" {
				details = append(details, d.Message)
			} else if d.Field != "" {
				details = append(details, d.Field+" "+d.Code)
			}
		}
		if len(details) > 0 {
			e.Message += ": " + strings.Join(details, "; ")
		}
		e.Hint = hint(e.Status, e.Message, repo, number)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		e.Message = "no answer in time: " + err.Error()
	default:
		// The transport's error names the URL, never the header that
		// holds the token.
		e.Message = err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			e.Message = ue.Err.Error()
		}
		e.Hint = "GitHub could not be reached"
	}
	e.Op, e.Message, e.Hint = c.redact(e.Op), c.redact(e.Message), c.redact(e.Hint)
	return e
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

func hint(status int, msg, repo string, number int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "the token is not valid: expired, revoked, or not a GitHub token"
	case status == http.StatusForbidden && strings.Contains(msg, "Resource not accessible by integration"):
		return forkHint
	case status == http.StatusForbidden:
		return "the token lacks a permission: the job needs `permissions: pull-requests: write` (or issues: write)"
	case status == http.StatusNotFound:
		return fmt.Sprintf("no repository %s with pull request #%d, or the token cannot see it (a private repository needs a token with access to it)", repo, number)
	case status == http.StatusGone:
		return "issues are disabled on the repository, or the pull request was deleted"
	case status == http.StatusUnprocessableEntity:
		return "GitHub refused the comment"
	case status >= 500:
		return "GitHub failed; a later run may succeed"
	}
	return ""
}

// redact removes the token from a text, in case a server echoes it.
func (c *Client) redact(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "***")
}
