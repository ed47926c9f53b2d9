// Package githubtest is a stand-in for the part of GitHub's REST API that
// cib uses (the comments of an issue or pull request), served by an
// httptest server. It answers as GitHub does: the same JSON, Link headers
// for paging, the same error bodies and statuses; it checks the token,
// records every request, and fails a request on demand.
package githubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxBody is GitHub's limit on a comment's body, in characters.
const MaxBody = 65536

// Comment is a comment as the fake stores it.
type Comment struct {
	ID     int64
	Issue  int
	Body   string
	Author string
	// Created orders comments, as GitHub lists them (oldest first).
	Created, Updated time.Time
}

// Call is one request the fake received.
type Call struct {
	Method, Path string
	Query        string
	// Auth is the Authorization header.
	Auth string
	// Body is the request's JSON body, decoded.
	Body map[string]any
}

// Fault makes the fake answer requests whose method and path match with an
// error, as GitHub would.
type Fault struct {
	Method string // "" matches every method
	// PathContains matches the request path ("" matches every path).
	PathContains string
	Status       int
	Message      string
	// Headers are set on the answer (e.g. X-RateLimit-Remaining: 0).
	Headers map[string]string
	// Times is how many requests fail; 0 means every one.
	Times int
}

// GitHub is the fake API.
type GitHub struct {
	// Server serves the API; its URL is the API's base URL (a GitHub
	// Enterprise prefix /api/v3 is accepted too).
	Server *httptest.Server
	// Token is the token requests must carry ("Bearer" or "token").
	Token string
	// Login is the author of the comments the API creates.
	Login string
	// Repos are the repositories that exist, owner/name.
	Repos map[string]bool

	mu       sync.Mutex
	comments map[string][]*Comment // by repo
	heads    map[string]string     // "owner/name#N" → head commit of pull request N
	nextID   int64
	clock    time.Time
	calls    []Call
	faults   []*Fault
}

// New starts a fake GitHub holding the repository repo, accepting token.
// It stops at the end of the test.
func New(t interface{ Cleanup(func()) }, token, repo string) *GitHub {
	g := &GitHub{
		Token: token, Login: "github-actions[bot]",
		Repos:    map[string]bool{repo: true},
		comments: map[string][]*Comment{},
		heads:    map[string]string{},
		nextID:   1000,
		clock:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Server.Close)
	return g
}

// URL is the API's base URL.
func (g *GitHub) URL() string { return g.Server.URL }

// AddComment stores a comment as if someone had written it, and returns
// its ID.
func (g *GitHub) AddComment(repo string, issue int, author, body string) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.add(repo, issue, author, body).ID
}

func (g *GitHub) add(repo string, issue int, author, body string) *Comment {
	g.nextID++
	g.clock = g.clock.Add(time.Minute)
	c := &Comment{ID: g.nextID, Issue: issue, Body: body, Author: author, Created: g.clock, Updated: g.clock}
	g.comments[repo] = append(g.comments[repo], c)
	return c
}

// SetPullRequest makes pull request number of repo exist with the head
// commit sha. (Comments need no pull request: GitHub's issue-comment API
// takes any number, as it does for issues.)
func (g *GitHub) SetPullRequest(repo string, number int, sha string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.heads[fmt.Sprintf("%s#%d", repo, number)] = sha
}

// Comments returns copies of the comments of an issue, oldest first.
func (g *GitHub) Comments(repo string, issue int) []Comment {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Comment
	for _, c := range g.comments[repo] {
		if c.Issue == issue {
			out = append(out, *c)
		}
	}
	return out
}

// Calls returns the requests received so far.
func (g *GitHub) Calls() []Call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Call(nil), g.calls...)
}

// Writes returns the requests received so far that were not GETs.
func (g *GitHub) Writes() []Call {
	var out []Call
	for _, c := range g.Calls() {
		if c.Method != http.MethodGet {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the requests received so far.
func (g *GitHub) ResetCalls() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = nil
}

// Fail adds a fault.
func (g *GitHub) Fail(f Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.faults = append(g.faults, &f)
}

var (
	listPath = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$`)
	editPath = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$`)
	pullPath = regexp.MustCompile(`^/repos/([^/]+/[^/]+)/pulls/(\d+)$`)
)

func (g *GitHub) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/api/v3")
	call := Call{Method: r.Method, Path: path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")}
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPatch) {
		if err := json.NewDecoder(r.Body).Decode(&call.Body); err != nil {
			g.calls = append(g.calls, call)
			g.error(w, http.StatusBadRequest, "Problems parsing JSON", nil)
			return
		}
	}
	g.calls = append(g.calls, call)

	if call.Auth != "Bearer "+g.Token && call.Auth != "token "+g.Token {
		g.error(w, http.StatusUnauthorized, "Bad credentials", nil)
		return
	}
	for _, f := range g.faults {
		if f.Times < 0 || (f.Method != "" && f.Method != r.Method) || !strings.Contains(path, f.PathContains) {
			continue
		}
		if f.Times > 0 {
			if f.Times--; f.Times == 0 {
				f.Times = -1 // spent
			}
		}
		for k, v := range f.Headers {
			w.Header().Set(k, v)
		}
		g.error(w, f.Status, f.Message, nil)
		return
	}

	if m := listPath.FindStringSubmatch(path); m != nil {
		repo, issue := m[1], atoi(m[2])
		if !g.Repos[repo] {
			g.error(w, http.StatusNotFound, "Not Found", nil)
			return
		}
		switch r.Method {
		case http.MethodGet:
			g.list(w, r, repo, issue)
		case http.MethodPost:
			body, _ := call.Body["body"].(string)
			if g.tooLong(w, body) {
				return
			}
			c := g.add(repo, issue, g.Login, body)
			g.json(w, http.StatusCreated, g.render(repo, c))
		default:
			g.error(w, http.StatusNotFound, "Not Found", nil)
		}
		return
	}
	if m := pullPath.FindStringSubmatch(path); m != nil && r.Method == http.MethodGet {
		if sha, ok := g.heads[m[1]+"#"+m[2]]; ok {
			g.json(w, http.StatusOK, map[string]any{
				"number": atoi(m[2]), "state": "open",
				"html_url": fmt.Sprintf("https://github.com/%s/pull/%s", m[1], m[2]),
				"head":     map[string]any{"sha": sha, "ref": "topic"},
			})
			return
		}
	}
	if m := editPath.FindStringSubmatch(path); m != nil && r.Method == http.MethodPatch {
		repo, id := m[1], int64(atoi(m[2]))
		for _, c := range g.comments[repo] {
			if c.ID == id {
				body, _ := call.Body["body"].(string)
				if g.tooLong(w, body) {
					return
				}
				g.clock = g.clock.Add(time.Minute)
				c.Body, c.Updated = body, g.clock
				g.json(w, http.StatusOK, g.render(repo, c))
				return
			}
		}
	}
	g.error(w, http.StatusNotFound, "Not Found", nil)
}

func (g *GitHub) tooLong(w http.ResponseWriter, body string) bool {
	if utf8.RuneCountInString(body) <= MaxBody {
		return false
	}
	g.error(w, http.StatusUnprocessableEntity, "Validation Failed", []map[string]string{{
		"resource": "IssueComment", "code": "custom", "field": "data",
		"message": fmt.Sprintf("Body is too long (maximum is %d characters)", MaxBody),
	}})
	return true
}

// list answers a page of comments with GitHub's Link header.
func (g *GitHub) list(w http.ResponseWriter, r *http.Request, repo string, issue int) {
	perPage, page := 30, 1
	if v := atoi(r.URL.Query().Get("per_page")); v > 0 {
		perPage = min(v, 100)
	}
	if v := atoi(r.URL.Query().Get("page")); v > 0 {
		page = v
	}
	var all []*Comment
	for _, c := range g.comments[repo] {
		if c.Issue == issue {
			all = append(all, c)
		}
	}
	last := max(1, (len(all)+perPage-1)/perPage)
	from, to := min((page-1)*perPage, len(all)), min(page*perPage, len(all))
	out := []map[string]any{}
	for _, c := range all[from:to] {
		out = append(out, g.render(repo, c))
	}
	link := func(p int, rel string) string {
		u := *r.URL
		u.Scheme, u.Host = "http", r.Host
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = q.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	g.json(w, http.StatusOK, out)
}

func (g *GitHub) render(repo string, c *Comment) map[string]any {
	issue := fmt.Sprintf("https://github.com/%s/pull/%d", repo, c.Issue)
	return map[string]any{
		"id":         c.ID,
		"node_id":    fmt.Sprintf("IC_%d", c.ID),
		"body":       c.Body,
		"user":       map[string]any{"login": c.Author, "type": "Bot"},
		"created_at": c.Created.Format(time.RFC3339),
		"updated_at": c.Updated.Format(time.RFC3339),
		"url":        fmt.Sprintf("%s/repos/%s/issues/comments/%d", g.Server.URL, repo, c.ID),
		"html_url":   fmt.Sprintf("%s#issuecomment-%d", issue, c.ID),
		"issue_url":  fmt.Sprintf("%s/repos/%s/issues/%d", g.Server.URL, repo, c.Issue),
	}
}

func (g *GitHub) error(w http.ResponseWriter, status int, msg string, errs []map[string]string) {
	body := map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest", "status": strconv.Itoa(status)}
	if errs != nil {
		body["errors"] = errs
	}
	g.json(w, status, body)
}

func (g *GitHub) json(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
