package githubapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/githubapi"
	"github.com/cib-project/cib/internal/githubapi/githubtest"
)

const (
	token  = "ghs_testTokenNeverShown0123456789"
	repo   = "octo/images"
	pr     = 7
	marker = "<!-- cib-plan -->"
)

func newClient(t *testing.T, url string) *githubapi.Client {
	t.Helper()
	c, err := githubapi.New(token, url)
	require.NoError(t, err)
	return c
}

func TestUpsertCreatesThenUpdatesTheSameComment(t *testing.T) {
	gh := githubtest.New(t, token, repo)
	other := gh.AddComment(repo, pr, "someone", "looks good")
	c := newClient(t, gh.URL())
	ctx := context.Background()

	first, action, err := c.UpsertComment(ctx, repo, pr, marker, marker+"\nplan one")
	require.NoError(t, err)
	assert.Equal(t, githubapi.Created, action)
	assert.NotZero(t, first.ID)
	assert.Equal(t, fmt.Sprintf("https://github.com/%s/pull/%d#issuecomment-%d", repo, pr, first.ID), first.URL)

	calls := gh.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, http.MethodGet, calls[0].Method)
	assert.Equal(t, "/repos/octo/images/issues/7/comments", calls[0].Path)
	assert.Contains(t, calls[0].Query, "per_page=100")
	assert.Equal(t, "Bearer "+token, calls[0].Auth)
	assert.Equal(t, http.MethodPost, calls[1].Method)
	assert.Equal(t, "/repos/octo/images/issues/7/comments", calls[1].Path)
	assert.Equal(t, map[string]any{"body": marker + "\nplan one"}, calls[1].Body)
	assert.Equal(t, "Bearer "+token, calls[1].Auth)

	// The next push: the same comment, edited in place.
	gh.ResetCalls()
	second, action, err := c.UpsertComment(ctx, repo, pr, marker, marker+"\nplan two")
	require.NoError(t, err)
	assert.Equal(t, githubapi.Updated, action)
	assert.Equal(t, first, second)
	writes := gh.Writes()
	require.Len(t, writes, 1)
	assert.Equal(t, http.MethodPatch, writes[0].Method)
	assert.Equal(t, fmt.Sprintf("/repos/octo/images/issues/comments/%d", first.ID), writes[0].Path)
	assert.Equal(t, map[string]any{"body": marker + "\nplan two"}, writes[0].Body)

	// The same plan again: nothing written.
	gh.ResetCalls()
	third, action, err := c.UpsertComment(ctx, repo, pr, marker, marker+"\nplan two\n")
	require.NoError(t, err)
	assert.Equal(t, githubapi.Unchanged, action)
	assert.Equal(t, first, third)
	assert.Empty(t, gh.Writes())

	comments := gh.Comments(repo, pr)
	require.Len(t, comments, 2)
	assert.Equal(t, other, comments[0].ID)
	assert.Equal(t, "looks good", comments[0].Body, "a comment without the marker is never touched")
	assert.Equal(t, marker+"\nplan two", comments[1].Body)
}

// Every page is read: the marker is on page 2 of 100 comments a page, and
// of two comments with the marker the newer is the plan's.
func TestUpsertFindsTheNewestMarkedCommentOnAnyPage(t *testing.T) {
	gh := githubtest.New(t, token, repo)
	older := gh.AddComment(repo, pr, "github-actions[bot]", marker+"\nan old plan")
	for i := range 130 {
		gh.AddComment(repo, pr, "someone", fmt.Sprintf("comment %d", i))
	}
	newer := gh.AddComment(repo, pr, "github-actions[bot]", marker+"\nthe last plan")
	for i := range 5 {
		gh.AddComment(repo, pr, "someone", fmt.Sprintf("later comment %d", i))
	}
	gh.AddComment(repo, pr+1, "github-actions[bot]", marker+"\nanother pull request's plan")

	got, action, err := newClient(t, gh.URL()).UpsertComment(context.Background(), repo, pr, marker, marker+"\nnew plan")
	require.NoError(t, err)
	assert.Equal(t, githubapi.Updated, action)
	assert.Equal(t, newer, got.ID)

	var pages []string
	for _, c := range gh.Calls() {
		if c.Method == http.MethodGet {
			pages = append(pages, c.Query)
		}
	}
	assert.Equal(t, []string{"per_page=100", "page=2&per_page=100"}, pages, "both pages, following the Link header")
	writes := gh.Writes()
	require.Len(t, writes, 1)
	assert.Equal(t, fmt.Sprintf("/repos/octo/images/issues/comments/%d", newer), writes[0].Path)
	for _, c := range gh.Comments(repo, pr) {
		switch c.ID {
		case newer:
			assert.Equal(t, marker+"\nnew plan", c.Body)
		case older:
			assert.Equal(t, marker+"\nan old plan", c.Body)
		default:
			assert.Contains(t, c.Body, "comment")
		}
	}
	assert.Equal(t, marker+"\nanother pull request's plan", gh.Comments(repo, pr+1)[0].Body)
}

func TestEnterpriseServerAPI(t *testing.T) {
	gh := githubtest.New(t, token, repo)
	_, action, err := newClient(t, gh.URL()+"/api/v3").UpsertComment(context.Background(), repo, pr, marker, marker)
	require.NoError(t, err)
	assert.Equal(t, githubapi.Created, action)
	assert.Len(t, gh.Comments(repo, pr), 1)
}

func TestErrorsAreExplainedWithoutTheToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  *githubtest.Fault
		repo   string
		token  string
		status int
		want   []string
		retry  bool
	}{
		{
			name:   "fork: read-only token",
			fault:  &githubtest.Fault{Method: http.MethodPost, Status: 403, Message: "Resource not accessible by integration"},
			status: 403,
			want:   []string{"create a comment on octo/images#7", "GitHub answered 403 Forbidden", "Resource not accessible by integration", "fork", "read-only GITHUB_TOKEN", "workflow_run", "pull-requests: write"},
		},
		{
			name:   "not found",
			repo:   "octo/gone",
			status: 404,
			want:   []string{"list the comments of octo/gone#7", "404 Not Found", "no repository octo/gone with pull request #7, or the token cannot see it"},
		},
		{
			name:   "bad credentials",
			token:  "ghs_wrongTokenAlsoNeverShown",
			status: 401,
			want:   []string{"401 Unauthorized", "Bad credentials", "the token is not valid"},
		},
		{
			name:   "server error",
			fault:  &githubtest.Fault{Status: 500, Message: "Server Error"},
			status: 500,
			want:   []string{"list the comments of octo/images#7", "500 Internal Server Error", "Server Error", "a later run may succeed"},
			retry:  true,
		},
		{
			name:   "rate limit",
			fault:  &githubtest.Fault{Status: 403, Message: "API rate limit exceeded for installation ID 1.", Headers: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1767322800"}},
			status: 403,
			want:   []string{"API rate limit exceeded", "the API rate limit is spent until 2026-01-02T03:00:00Z"},
			retry:  true,
		},
		{
			name:   "too long",
			fault:  &githubtest.Fault{Method: http.MethodPost, Status: 422, Message: "Validation Failed"},
			status: 422,
			want:   []string{"422 Unprocessable Entity", "Validation Failed", "GitHub refused the comment"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gh := githubtest.New(t, token, repo)
			if tc.fault != nil {
				gh.Fail(*tc.fault)
			}
			tok := token
			if tc.token != "" {
				tok = tc.token
			}
			c, err := githubapi.New(tok, gh.URL())
			require.NoError(t, err)
			r := repo
			if tc.repo != "" {
				r = tc.repo
			}
			_, _, err = c.UpsertComment(context.Background(), r, pr, marker, marker+"\nplan")
			require.Error(t, err)
			var e *githubapi.Error
			require.True(t, errors.As(err, &e), "%T", err)
			assert.Equal(t, tc.status, e.Status)
			assert.Equal(t, tc.retry, e.Retryable())
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), tok)
			assert.NotContains(t, err.Error(), token)
		})
	}
}

// GitHub's real body-length check, not an injected fault.
func TestTooLongBodyIsRefusedByGitHub(t *testing.T) {
	gh := githubtest.New(t, token, repo)
	_, _, err := newClient(t, gh.URL()).UpsertComment(context.Background(), repo, pr, marker, marker+strings.Repeat("é", githubtest.MaxBody))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Validation Failed: Body is too long (maximum is 65536 characters)")
}

func TestUnreachableAPI(t *testing.T) {
	gh := githubtest.New(t, token, repo)
	url := gh.URL()
	gh.Server.Close()
	_, _, err := newClient(t, url).UpsertComment(context.Background(), repo, pr, marker, marker)
	require.Error(t, err)
	var e *githubapi.Error
	require.ErrorAs(t, err, &e)
	assert.Zero(t, e.Status)
	assert.True(t, e.Retryable())
	assert.Contains(t, err.Error(), "list the comments of octo/images#7")
	assert.Contains(t, err.Error(), "GitHub could not be reached")
	assert.NotContains(t, err.Error(), token)
}

func TestBadArguments(t *testing.T) {
	_, err := githubapi.New("", "")
	assert.EqualError(t, err, "no GitHub token")
	_, err = githubapi.New(token, "ftp://example.com")
	assert.ErrorContains(t, err, `the GitHub API URL "ftp://example.com" is not an http(s) URL`)
	c, err := githubapi.New(token, "")
	require.NoError(t, err)
	ctx := context.Background()
	_, _, err = c.UpsertComment(ctx, "no-slash", 1, marker, "x")
	assert.EqualError(t, err, `repository "no-slash": want owner/name`)
	_, _, err = c.UpsertComment(ctx, repo, 0, marker, "x")
	assert.ErrorContains(t, err, "must be positive")
	_, _, err = c.UpsertComment(ctx, repo, 1, "", "x")
	assert.ErrorContains(t, err, "empty marker")
}

func TestPullRequestHead(t *testing.T) {
	gh := githubtest.New(t, token, repo)
	gh.SetPullRequest(repo, pr, "0123456789abcdef0123456789abcdef01234567")
	c := newClient(t, gh.URL())
	sha, err := c.PullRequestHead(context.Background(), repo, pr)
	require.NoError(t, err)
	assert.Equal(t, "0123456789abcdef0123456789abcdef01234567", sha)
	assert.Equal(t, "/repos/octo/images/pulls/7", gh.Calls()[0].Path)

	_, err = c.PullRequestHead(context.Background(), repo, pr+1)
	assert.ErrorContains(t, err, "read pull request octo/images#8: GitHub answered 404 Not Found")
}
