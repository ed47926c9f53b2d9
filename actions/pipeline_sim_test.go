package actions_test

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"gopkg.in/yaml.v3"
)

// The pipeline's jobs decide from the plan's outputs and the results of
// the jobs they need whether they run: the part of images.yml most easily
// got wrong (a job that needs a skipped job is itself skipped unless its
// if: says otherwise). These tests run that decision as GitHub does, with
// actionlint's parser and a small evaluator, over scenarios: which jobs
// run, and which are skipped, for a plan's counts and the jobs that fail.

// simValue is an expression's value: string, float64, bool, nil, or a
// list or map of them.
type simValue = any

type simulation struct {
	w        *workflow
	event    string
	sameRepo bool              // a pull request from a branch of the repository
	outputs  map[string]string // the plan job's outputs
	fail     map[string]bool   // jobs that fail when they run
	results  map[string]string // job → success, failure or skipped
}

func (s *simulation) run(t *testing.T) map[string]string {
	t.Helper()
	s.results = map[string]string{}
	for len(s.results) < len(s.w.Jobs) {
		progress := false
		for name, j := range s.w.Jobs {
			if _, done := s.results[name]; done {
				continue
			}
			needs := jobNeeds(t, j)
			if slices.ContainsFunc(needs, func(n string) bool { _, ok := s.results[n]; return !ok }) {
				continue
			}
			progress = true
			cond := strings.TrimSpace(j.If)
			cond = strings.TrimSuffix(strings.TrimPrefix(cond, "${{"), "}}")
			if cond == "" {
				cond = "success()"
			} else if !regexpStatus.MatchString(cond) {
				cond = "success() && (" + cond + ")"
			}
			v := s.eval(t, name, needs, cond)
			switch {
			case !truthy(v):
				s.results[name] = "skipped"
			case s.fail[name]:
				s.results[name] = "failure"
			default:
				s.results[name] = "success"
			}
		}
		if !progress {
			t.Fatalf("the jobs' needs make a cycle or name a job that does not exist: %v", s.results)
		}
	}
	return s.results
}

var regexpStatus = regexp.MustCompile(`\b(success|failure|always|cancelled)\(\)`)

func jobNeeds(t *testing.T, j workflowJob) []string {
	t.Helper()
	switch j.Needs.Kind {
	case 0:
		return nil
	case yaml.ScalarNode:
		return []string{j.Needs.Value}
	default:
		var out []string
		if err := j.Needs.Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func (s *simulation) eval(t *testing.T, job string, needs []string, src string) simValue {
	t.Helper()
	node, err := actionlint.NewExprParser().Parse(actionlint.NewExprLexer(src + "}}"))
	if err != nil {
		t.Fatalf("job %s: if: %s: %v", job, src, err)
	}
	needsCtx := map[string]simValue{}
	for _, n := range needs {
		entry := map[string]simValue{"result": s.results[n]}
		if n == "plan" {
			outs := map[string]simValue{}
			for k, v := range s.outputs {
				outs[k] = v
			}
			entry["outputs"] = outs
		}
		needsCtx[n] = entry
	}
	headRepo := "fork/images"
	if s.sameRepo {
		headRepo = "owner/images"
	}
	ctx := map[string]simValue{
		"github": map[string]simValue{
			"event_name": s.event,
			"repository": "owner/images",
			"event":      map[string]simValue{"pull_request": map[string]simValue{"head": map[string]simValue{"repo": map[string]simValue{"full_name": headRepo}}}},
		},
		"needs":  needsCtx,
		"inputs": map[string]simValue{},
	}
	var ev func(n actionlint.ExprNode) simValue
	ev = func(n actionlint.ExprNode) simValue {
		switch n := n.(type) {
		case *actionlint.VariableNode:
			v, ok := ctx[strings.ToLower(n.Name)]
			if !ok {
				t.Fatalf("job %s: if: %s: the simulation has no context %q", job, src, n.Name)
			}
			return v
		case *actionlint.StringNode:
			return n.Value
		case *actionlint.BoolNode:
			return n.Value
		case *actionlint.IntNode:
			return float64(n.Value)
		case *actionlint.NullNode:
			return nil
		case *actionlint.ObjectDerefNode:
			switch r := ev(n.Receiver).(type) {
			case map[string]simValue:
				return r[n.Property]
			case []simValue: // a filter: x.*.property
				var out []simValue
				for _, e := range r {
					if m, ok := e.(map[string]simValue); ok {
						out = append(out, m[n.Property])
					}
				}
				return out
			}
			return nil
		case *actionlint.ArrayDerefNode:
			m, _ := ev(n.Receiver).(map[string]simValue)
			var out []simValue
			for _, k := range slices.Sorted(maps.Keys(m)) {
				out = append(out, m[k])
			}
			return out
		case *actionlint.NotOpNode:
			return !truthy(ev(n.Operand))
		case *actionlint.LogicalOpNode:
			l := ev(n.Left)
			if (n.Kind == actionlint.LogicalOpNodeKindAnd) != truthy(l) {
				return l
			}
			return ev(n.Right)
		case *actionlint.CompareOpNode:
			eq := strings.EqualFold(fmt.Sprint(ev(n.Left)), fmt.Sprint(ev(n.Right)))
			switch n.Kind {
			case actionlint.CompareOpNodeKindEq:
				return eq
			case actionlint.CompareOpNodeKindNotEq:
				return !eq
			}
		case *actionlint.FuncCallNode:
			switch strings.ToLower(n.Callee) {
			case "success":
				return !slices.ContainsFunc(needs, func(x string) bool { return s.results[x] != "success" })
			case "failure":
				return slices.ContainsFunc(needs, func(x string) bool { return s.results[x] == "failure" })
			case "always":
				return true
			case "cancelled":
				return false
			case "contains":
				hay, needle := ev(n.Args[0]), fmt.Sprint(ev(n.Args[1]))
				if list, ok := hay.([]simValue); ok {
					return slices.ContainsFunc(list, func(e simValue) bool { return strings.EqualFold(fmt.Sprint(e), needle) })
				}
				return strings.Contains(strings.ToLower(fmt.Sprint(hay)), strings.ToLower(needle))
			}
		}
		t.Fatalf("job %s: if: %s: the simulation does not evaluate %T", job, src, n)
		return nil
	}
	return ev(node)
}

func truthy(v simValue) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case float64:
		return v != 0
	}
	return true
}

// counts are plan outputs with count_<stage> of each stage named, 0 for
// the others.
func counts(nonZero ...string) map[string]string {
	out := map[string]string{}
	for _, s := range []string{"prepare", "purge", "disk_image", "machine_image", "pool_config", "verify"} {
		out["count_"+s] = "0"
		if slices.Contains(nonZero, s) {
			out["count_"+s] = "2"
		}
	}
	return out
}

func TestPipelineJobsRunAsPlanned(t *testing.T) {
	w := loadPipeline(t, repoRoot(t))
	every := []string{"prepare", "purge", "disk_image", "machine_image", "pool_config", "verify"}
	for _, c := range []struct {
		name     string
		event    string
		sameRepo bool
		counts   map[string]string
		fail     []string
		want     map[string]string // the jobs that run: success or failure; the others are skipped
	}{
		{
			name: "a push that runs every stage", event: "push", counts: counts(every...),
			want: map[string]string{"plan": "success", "prepare": "success", "purge": "success", "disk-image": "success",
				"machine-image": "success", "pool-config": "success", "verify": "success"},
		},
		{
			name: "only machine images: the skipped stages before them do not hold them back", event: "push",
			counts: counts("purge", "machine_image", "pool_config"),
			want:   map[string]string{"plan": "success", "purge": "success", "machine-image": "success", "pool-config": "success"},
		},
		{
			name: "pool-deploy: pools and verification without images", event: "push", counts: counts("pool_config", "verify"),
			want: map[string]string{"plan": "success", "pool-config": "success", "verify": "success"},
		},
		{
			name:  "a failed disk image: the machine images still build (each refuses a disk without its record), no pool is deployed, the run's leftovers are purged",
			event: "push", counts: counts(every...), fail: []string{"disk-image"},
			want: map[string]string{"plan": "success", "prepare": "success", "purge": "success", "disk-image": "failure",
				"machine-image": "success", "pool-config": "success", "verify": "success", "cleanup": "success"},
		},
		{
			name:  "a failed machine image: no pool deployed, nothing verified, the leftovers purged",
			event: "push", counts: counts(every...), fail: []string{"machine-image"},
			want: map[string]string{"plan": "success", "prepare": "success", "purge": "success", "disk-image": "success",
				"machine-image": "failure", "cleanup": "success"},
		},
		{
			name:  "a failed prepare: nothing is built on missing infrastructure",
			event: "push", counts: counts(every...), fail: []string{"prepare"},
			want: map[string]string{"plan": "success", "prepare": "failure", "purge": "success", "cleanup": "success"},
		},
		{
			name: "instruction errors: the plan fails and nothing runs", event: "push", counts: counts(), fail: []string{"plan"},
			want: map[string]string{"plan": "failure"},
		},
		{
			name: "a pull request from a branch: the plan and its comment only", event: "pull_request", sameRepo: true,
			counts: counts(every...), want: map[string]string{"plan": "success", "comment": "success"},
		},
		{
			name: "a pull request whose instructions have errors still gets its comment", event: "pull_request", sameRepo: true,
			counts: counts(), fail: []string{"plan"}, want: map[string]string{"plan": "failure", "comment": "success"},
		},
		{
			name: "a pull request from a fork: the plan only (plan-comment.yml comments)", event: "pull_request",
			counts: counts(every...), want: map[string]string{"plan": "success"},
		},
		{
			name: "a manual run", event: "workflow_dispatch", counts: counts("disk_image", "machine_image"),
			want: map[string]string{"plan": "success", "disk-image": "success", "machine-image": "success"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			fail := map[string]bool{}
			for _, f := range c.fail {
				fail[f] = true
			}
			s := &simulation{w: w, event: c.event, sameRepo: c.sameRepo, outputs: c.counts, fail: fail}
			got := s.run(t)
			want := map[string]string{}
			for name := range w.Jobs {
				want[name] = "skipped"
			}
			maps.Copy(want, c.want)
			for _, name := range slices.Sorted(maps.Keys(want)) {
				if got[name] != want[name] {
					t.Errorf("job %s: %s; want %s", name, got[name], want[name])
				}
			}
		})
	}
}
