// Package actionsio is cib's one door to the GitHub Actions runner: step
// outputs, the step summary, masks, log groups, annotations on files, and
// the event that started the run. Outside Actions every call is a no-op or
// returns "not in Actions", so the same code runs on a laptop.
package actionsio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/sethvargo/go-githubactions"
)

// Runner talks to the GitHub Actions runner through its environment files
// and workflow commands.
type Runner struct {
	getenv func(string) string
	a      *githubactions.Action
}

// New returns a Runner for this process's environment, writing workflow
// commands to stdout.
func New() *Runner { return NewWith(os.Getenv, os.Stdout) }

// NewWith returns a Runner over a given environment and command stream, for
// tests that act as the runner.
func NewWith(getenv func(string) string, w io.Writer) *Runner {
	return &Runner{getenv: getenv, a: githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(w))}
}

// InActions reports whether the process runs as a GitHub Actions step.
func (r *Runner) InActions() bool { return r.getenv("GITHUB_ACTIONS") == "true" }

// Getenv reads the runner's environment.
func (r *Runner) Getenv(k string) string { return r.getenv(k) }

// fileCommand runs a file command, turning the library's panic on an
// unwritable file into an error.
func fileCommand(name string, f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write %s: %v", name, p)
		}
	}()
	f()
	return nil
}

// SetOutput sets a step output; without GITHUB_OUTPUT it does nothing.
func (r *Runner) SetOutput(name, value string) error {
	if r.getenv("GITHUB_OUTPUT") == "" {
		return nil
	}
	return fileCommand("GITHUB_OUTPUT", func() { r.a.SetOutput(name, value) })
}

// AddStepSummary appends Markdown to the step summary; without
// GITHUB_STEP_SUMMARY it does nothing.
func (r *Runner) AddStepSummary(markdown string) error {
	if r.getenv("GITHUB_STEP_SUMMARY") == "" {
		return nil
	}
	return fileCommand("GITHUB_STEP_SUMMARY", func() { r.a.AddStepSummary(markdown) })
}

// Mask tells the runner to hide a secret in every later log line. Outside
// Actions nothing is printed, so there is nothing to hide.
func (r *Runner) Mask(secret string) {
	if r.InActions() && secret != "" {
		r.a.AddMask(secret)
	}
}

// Group folds the log lines until the returned function is called.
func (r *Runner) Group(title string) (end func()) {
	if !r.InActions() {
		return func() {}
	}
	r.a.Group(title)
	return r.a.EndGroup
}

// Level is an annotation's level.
type Level string

// Annotation levels.
const (
	Error   Level = "error"
	Warning Level = "warning"
	Notice  Level = "notice"
)

// Annotate attaches a message to a file and line in the run's summary and
// the pull request's diff. Line and column may be 0 when unknown.
func (r *Runner) Annotate(level Level, file string, line, col int, msg string) {
	if !r.InActions() {
		return
	}
	fields := map[string]string{}
	if file != "" {
		fields["file"] = file
	}
	if line > 0 {
		fields["line"] = strconv.Itoa(line)
	}
	if col > 0 {
		fields["col"] = strconv.Itoa(col)
	}
	a := r.a.WithFieldsMap(fields)
	switch level {
	case Error:
		a.Errorf("%s", msg)
	case Warning:
		a.Warningf("%s", msg)
	default:
		a.Noticef("%s", msg)
	}
}

// ErrNoEvent means the process was not started by a GitHub event.
var ErrNoEvent = errors.New("no GitHub event: GITHUB_EVENT_NAME and GITHUB_EVENT_PATH are not set")

// Event returns the name and payload of the event that started the run.
func (r *Runner) Event() (string, map[string]any, error) {
	name, path := r.getenv("GITHUB_EVENT_NAME"), r.getenv("GITHUB_EVENT_PATH")
	if name == "" || path == "" {
		return "", nil, ErrNoEvent
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return name, nil, fmt.Errorf("read the %s event: %w", name, err)
	}
	var payload map[string]any
	if err := json.Unmarshal(data, &payload); err != nil {
		return name, nil, fmt.Errorf("read the %s event at %s: %w", name, path, err)
	}
	return name, payload, nil
}

// RunURL is the web address of the current workflow run, or "" outside
// Actions.
func (r *Runner) RunURL() string {
	server, repo, id := r.getenv("GITHUB_SERVER_URL"), r.getenv("GITHUB_REPOSITORY"), r.getenv("GITHUB_RUN_ID")
	if server == "" || repo == "" || id == "" {
		return ""
	}
	u := fmt.Sprintf("%s/%s/actions/runs/%s", server, repo, id)
	if a := r.getenv("GITHUB_RUN_ATTEMPT"); a != "" && a != "1" {
		u += "/attempts/" + a
	}
	return u
}

// CanRequestIDToken reports whether the job may ask for an OIDC ID token
// (the workflow grants `permissions: id-token: write`).
func (r *Runner) CanRequestIDToken() bool {
	return r.getenv("ACTIONS_ID_TOKEN_REQUEST_URL") != "" && r.getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN") != ""
}

// IDToken asks the runner for an OIDC ID token for audience, which a cloud
// exchanges for its own credentials (workload identity federation). The
// token is masked in the log before it is returned.
func (r *Runner) IDToken(ctx context.Context, audience string) (string, error) {
	if !r.CanRequestIDToken() {
		return "", errors.New("no OIDC ID token: the job needs `permissions: id-token: write`")
	}
	tok, err := r.a.GetIDToken(ctx, audience)
	if err != nil {
		return "", fmt.Errorf("requesting an OIDC ID token: %w", err)
	}
	r.Mask(tok)
	return tok, nil
}
