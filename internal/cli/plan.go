package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cib-project/cib/internal/actionsio"
	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/instruction"
	"github.com/cib-project/cib/internal/plan"
	"github.com/cib-project/cib/internal/record"
)

const planHelp = `
Decide which jobs of every stage run, and why, before anything is built:
from the configuration, the instructions in the commit message, and the
records of earlier builds on the records branch. Nothing here needs a cloud
account, a token or the network.

The message comes from --message, --message-file, the commit at --rev, or,
in GitHub Actions, the event that started the run: the pushed commit, the
pull request's head commit (planned as a dry run), or the inputs of a
workflow_dispatch run (keys, pools, regions, environments and one boolean
per flag, e.g. pool-deploy).

In GitHub Actions it also writes, as step outputs, one job matrix per stage
(matrix_prepare, matrix_purge, matrix_disk_image, matrix_machine_image,
matrix_pool_config, matrix_verify, each {"include":[...]} for fromJSON),
a count per stage (count_disk_image, ...; GitHub rejects an empty matrix),
the plan JSON (plan), its exit code (exit), the pull request's number in
a pull_request run (pull_request); and the whole plan in
Markdown to the step summary. --comment-out writes the pull-request comment
(shortened to GitHub's limit when it must be) for cib comment to post.

Exits 2 when the commit instructions have errors (nothing runs), 1 when the
configuration is invalid, 0 otherwise.`

type planFlags struct {
	config, repo, rev, message, messageFile, format, output, branch, event string
	markdownOut, commentOut                                                string
	noRecords                                                              bool
}

func runPlan(args []string, env Env) int {
	fs := newFlags(env, "plan", "[flags]", planHelp)
	var f planFlags
	fs.StringVar(&f.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&f.repo, "repo", ".", "the git `repository` holding the commit and the records branch")
	fs.StringVar(&f.rev, "rev", "", "plan for this `revision` and read its message (default HEAD, or the event's commit)")
	fs.StringVar(&f.message, "message", "", "take the instructions from this commit `message`")
	fs.StringVar(&f.messageFile, "message-file", "", "take the instructions from this `file` (- for standard input)")
	fs.StringVar(&f.format, "format", "", "output `format`: table, json or markdown (default table on a terminal, else json)")
	fs.StringVar(&f.output, "output", "", "also write the plan JSON to this `file`")
	fs.StringVar(&f.markdownOut, "markdown-out", "", "also write the whole plan in Markdown to this `file` (the step summary's text)")
	fs.StringVar(&f.commentOut, "comment-out", "", "also write the plan's pull-request comment to this `file`: the Markdown shortened to GitHub's comment limit, pointing to the run when shortened (cib comment posts it)")
	fs.StringVar(&f.branch, "records-branch", "", "read build records from this `branch` (default: records.branch in settings.yaml)")
	fs.StringVar(&f.event, "event", "auto", "`source` of the message in GitHub Actions: auto (use the event when no message or revision is given) or none")
	fs.BoolVar(&f.noRecords, "no-records", false, "plan as if nothing had been built before")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	if f.format == "" {
		f.format = "json"
		if env.Terminal {
			f.format = "table"
		}
	}
	if f.format != "table" && f.format != "json" && f.format != "markdown" {
		fmt.Fprintf(env.Stderr, "cib plan: --format %q: use table, json or markdown\n", f.format)
		return ExitUsage
	}
	if f.message != "" && f.messageFile != "" {
		fmt.Fprintln(env.Stderr, "cib plan: give --message or --message-file, not both")
		return ExitUsage
	}
	if f.event != "auto" && f.event != "none" {
		fmt.Fprintf(env.Stderr, "cib plan: --event %q: use auto or none\n", f.event)
		return ExitUsage
	}

	// With --rev the plan is for that commit, so its configuration comes
	// from that commit too; otherwise from the work tree, uncommitted
	// changes included, which is what a person trying a change wants.
	var cfg *config.Config
	var code int
	if f.rev != "" {
		hash, _, err := commitAt(env.path(f.repo), f.rev)
		if err != nil {
			return fail(env, "plan", err)
		}
		fsys, err := configAt(env.path(f.repo), hash, f.config)
		if err != nil {
			return fail(env, "plan", err)
		}
		cfg, code = loadConfigFS(env, "plan", fsys, f.config)
	} else {
		cfg, code = loadConfig(env, "plan", f.config)
	}
	if cfg == nil {
		return code
	}
	r := env.runner()
	vocab := plan.Vocabulary(cfg)
	src, err := resolveSource(env, r, f, vocab)
	if err != nil {
		return fail(env, "plan", err)
	}

	opts := plan.Options{Config: cfg, Instructions: src.instructions, Revision: src.revision, Event: src.event}
	if !f.noRecords {
		branch := f.branch
		if branch == "" {
			branch = cfg.Settings.RecordsBranch()
		}
		set, source, err := record.Read(env.path(f.repo), "origin", branch)
		if err != nil {
			return fail(env, "plan", fmt.Errorf("read build records: %w", err))
		}
		opts.Records = planRecords{set}
		opts.RecordSource = plan.RecordSource{Ref: source.Ref, Commit: source.Commit}
	}
	p := plan.Build(opts)

	data, err := p.JSON()
	if err != nil {
		return fail(env, "plan", err)
	}
	for _, out := range []struct{ file, text string }{
		{f.output, string(data) + "\n"},
		{f.markdownOut, p.Markdown(plan.MaxSummary)},
		{f.commentOut, p.Comment(r.RunURL())},
	} {
		if out.file == "" {
			continue
		}
		if err := os.WriteFile(env.path(out.file), []byte(out.text), 0o644); err != nil {
			return fail(env, "plan", fmt.Errorf("write the plan: %w", err))
		}
	}
	switch f.format {
	case "json":
		fmt.Fprintln(env.Stdout, string(data))
	case "markdown":
		fmt.Fprint(env.Stdout, p.Markdown(0))
	default:
		if err := p.WriteTable(env.Stdout); err != nil {
			return fail(env, "plan", err)
		}
	}
	// The table and Markdown show the diagnostics first; JSON is for
	// programs, so a person reading the terminal gets them on stderr.
	if f.format == "json" {
		for _, d := range p.Instructions.Diagnostics {
			fmt.Fprintln(env.Stderr, d.String())
		}
	}
	if p.Exit() == plan.ExitInstructions {
		fmt.Fprintln(env.Stderr, "cib plan: the commit instructions have errors: nothing runs (exit code 2)")
	}
	if r.InActions() {
		if err := writeActionsOutputs(r, p, src); err != nil {
			return fail(env, "plan", err)
		}
	}
	return p.Exit()
}

// source is where the plan's instructions came from.
type source struct {
	instructions instruction.Instructions
	revision     string
	event        string
	// where names the message's origin in diagnostics' annotations.
	where string
	// pullRequest is the pull request's number in a pull_request run.
	pullRequest int
}

func resolveSource(env Env, r *actionsio.Runner, f planFlags, vocab instruction.Vocabulary) (source, error) {
	var s source
	switch {
	case f.message != "":
		s.instructions = instruction.Parse(f.message, vocab)
		s.where = "--message"
	case f.messageFile != "":
		var data []byte
		var err error
		if f.messageFile == "-" {
			data, err = io.ReadAll(env.Stdin)
		} else {
			data, err = os.ReadFile(env.path(f.messageFile))
		}
		if err != nil {
			return s, fmt.Errorf("read the message: %w", err)
		}
		s.instructions = instruction.Parse(string(data), vocab)
		s.where = f.messageFile
	case f.rev == "" && f.event == "auto" && r.InActions() && r.Getenv("GITHUB_EVENT_NAME") != "":
		return fromEvent(env, r, f, vocab)
	default:
		rev := f.rev
		if rev == "" {
			rev = "HEAD"
		}
		hash, msg, err := commitAt(env.path(f.repo), rev)
		if err != nil {
			return s, err
		}
		s.instructions = instruction.Parse(msg, vocab)
		s.revision = hash
		s.where = "commit " + hash[:7]
		return s, nil
	}
	// A message given by hand still plans for a revision: the one asked
	// for, or HEAD when there is a repository.
	rev := f.rev
	if rev == "" {
		rev = "HEAD"
	}
	if hash, _, err := commitAt(env.path(f.repo), rev); err == nil {
		s.revision = hash
	} else if f.rev != "" {
		return s, err
	}
	return s, nil
}

// fromEvent takes the instructions from the GitHub event: the pushed
// commit, the pull request's head commit, or the dispatch inputs.
func fromEvent(env Env, r *actionsio.Runner, f planFlags, vocab instruction.Vocabulary) (source, error) {
	name, payload, err := r.Event()
	if err != nil {
		return source{}, err
	}
	s := source{event: name, revision: r.Getenv("GITHUB_SHA")}
	switch name {
	case "workflow_dispatch":
		inputs, _ := payload["inputs"].(map[string]any)
		s.instructions = instruction.FromDispatch(dispatchInputs(inputs), vocab)
		s.where = "workflow_dispatch inputs"
		return s, nil
	case "pull_request", "pull_request_target":
		head, _ := dig(payload, "pull_request", "head", "sha").(string)
		if head == "" {
			return s, fmt.Errorf("the %s event has no pull_request.head.sha", name)
		}
		s.event = "pull_request"
		if n, ok := dig(payload, "pull_request", "number").(float64); ok {
			s.pullRequest = int(n)
		}
		hash, msg, err := commitAt(env.path(f.repo), head)
		if err != nil {
			return s, fmt.Errorf("read the pull request's head commit: %w", err)
		}
		s.revision, s.instructions, s.where = hash, instruction.Parse(msg, vocab), "commit "+hash[:7]
		return s, nil
	case "push":
		sha, _ := payload["after"].(string)
		if sha == "" {
			sha = s.revision
		}
		if hash, msg, err := commitAt(env.path(f.repo), sha); err == nil {
			s.revision, s.instructions, s.where = hash, instruction.Parse(msg, vocab), "commit "+hash[:7]
			return s, nil
		}
		msg, _ := dig(payload, "head_commit", "message").(string)
		s.revision, s.instructions, s.where = sha, instruction.Parse(msg, vocab), "the pushed commit"
		return s, nil
	default:
		rev := s.revision
		if rev == "" {
			rev = "HEAD"
		}
		hash, msg, err := commitAt(env.path(f.repo), rev)
		if err != nil {
			return s, err
		}
		s.revision, s.instructions, s.where = hash, instruction.Parse(msg, vocab), "commit "+hash[:7]
		return s, nil
	}
}

func dig(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// dispatchInputs reads workflow_dispatch inputs: keys, pools, regions,
// environments as comma lists and one input per flag, named as the flag
// (pool-deploy) or with underscores (pool_deploy). GitHub sends boolean
// inputs as true/false, strings as text.
func dispatchInputs(in map[string]any) instruction.DispatchInputs {
	str := func(k string) string {
		switch v := in[k].(type) {
		case string:
			return v
		case nil:
			return ""
		default:
			return fmt.Sprint(v)
		}
	}
	d := instruction.DispatchInputs{Keys: str("keys"), Pools: str("pools"), Regions: str("regions"), Environments: str("environments"), Flags: map[instruction.Flag]bool{}}
	for _, fl := range instruction.AllFlags {
		for _, name := range []string{string(fl), strings.ReplaceAll(string(fl), "-", "_")} {
			switch v := in[name].(type) {
			case bool:
				d.Flags[fl] = d.Flags[fl] || v
			case string:
				d.Flags[fl] = d.Flags[fl] || strings.EqualFold(strings.TrimSpace(v), "true")
			}
		}
	}
	return d
}

// outputName is a stage's name as a step output suffix.
func outputName(s plan.Stage) string { return strings.ReplaceAll(string(s), "-", "_") }

func writeActionsOutputs(r *actionsio.Runner, p *plan.Plan, src source) error {
	where := src.where
	for _, d := range p.Instructions.Diagnostics {
		lvl := actionsio.Warning
		if d.Severity == instruction.Error {
			lvl = actionsio.Error
		}
		r.Annotate(lvl, "", 0, 0, fmt.Sprintf("%s, %s", where, d.String()))
	}
	var matrixErr error
	for _, s := range plan.Stages {
		m, err := p.MatrixJSON(s)
		if err != nil {
			matrixErr = err
			m = `{"include":[]}`
		}
		count := p.Count(s)
		if err != nil {
			count = 0
		}
		if err := r.SetOutput("matrix_"+outputName(s), m); err != nil {
			return err
		}
		if err := r.SetOutput("count_"+outputName(s), fmt.Sprint(count)); err != nil {
			return err
		}
	}
	compact, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := r.SetOutput("plan", string(compact)); err != nil {
		return err
	}
	if err := r.SetOutput("exit", fmt.Sprint(p.Exit())); err != nil {
		return err
	}
	pr := ""
	if src.pullRequest > 0 {
		pr = fmt.Sprint(src.pullRequest)
	}
	if err := r.SetOutput("pull_request", pr); err != nil {
		return err
	}
	if err := r.AddStepSummary(p.Markdown(plan.MaxSummary)); err != nil {
		return err
	}
	return matrixErr
}
