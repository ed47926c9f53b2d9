package machineimage

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/config"
)

// The actions an execution's on.success and on.failure name (spec §3).
const (
	ActionNone      = ""
	ActionReboot    = "reboot"
	ActionRetry     = "retry"
	ActionRetryTask = "retry-task"
	ActionFail      = "fail"
	ActionRetest    = "retest"
)

// The bootstrap shells.
const (
	ShellAzure = "azure-powershell"
	ShellWinRM = "winrm-powershell"
)

// DefaultAttempts bounds retry when an execution sets no attempts (the
// seed retried forever).
const DefaultAttempts = 3

// Action is a parsed on.success or on.failure: what to do, after a pause.
type Action struct {
	Kind  string
	After time.Duration
}

var afterUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
}

// ParseAction parses "<kind> [after N <unit>]", where the unit is one of
// s/sec/second(s), m/min/minute(s), h/hour(s), written with or without a
// space after N. The seed ignored the unit; here an unknown one is an
// error rather than a guess.
func ParseAction(s string) (Action, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Action{}, nil
	}
	a := Action{Kind: f[0]}
	switch a.Kind {
	case ActionReboot, ActionRetry, ActionRetryTask, ActionFail, ActionRetest:
	default:
		return Action{}, fmt.Errorf("action %q: use reboot, retry, retry-task, fail or retest", s)
	}
	if len(f) == 1 {
		return a, nil
	}
	if f[1] != "after" || len(f) < 3 || len(f) > 4 {
		return Action{}, fmt.Errorf("action %q: expected %s after N seconds|minutes|hours", s, a.Kind)
	}
	rest := strings.Join(f[2:], "")
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(rest[:i])
	if err != nil || i == 0 {
		return Action{}, fmt.Errorf("action %q: after needs a whole number, then a unit", s)
	}
	unit, ok := afterUnits[rest[i:]]
	if !ok {
		return Action{}, fmt.Errorf("action %q: unknown unit %q: use s, m or h (seconds, minutes, hours)", s, rest[i:])
	}
	if n > 1_000_000 {
		return Action{}, fmt.Errorf("action %q: %d is too long a pause", s, n)
	}
	a.After = time.Duration(n) * unit
	return a, nil
}

// FormatCommand renders one bootstrap command: its text, or its format
// with each {n} replaced by the value of tokens[n], looked up in values.
// Tokens are names of values the caller supplies (from secrets or the
// environment), never expressions to evaluate. {{ and }} are literal
// braces, as in the seed's PowerShell -f formats.
func FormatCommand(c config.Command, values map[string]string) (string, error) {
	if c.Format == "" {
		return c.Text, nil
	}
	var b strings.Builder
	f := c.Format
	for i := 0; i < len(f); i++ {
		switch ch := f[i]; {
		case ch == '{' && i+1 < len(f) && f[i+1] == '{':
			b.WriteByte('{')
			i++
		case ch == '}' && i+1 < len(f) && f[i+1] == '}':
			b.WriteByte('}')
			i++
		case ch == '{':
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("format %q: unclosed {", f)
			}
			n, err := strconv.Atoi(f[i+1 : i+end])
			if err != nil || n < 0 {
				return "", fmt.Errorf("format %q: {%s} is not a token index", f, f[i+1:i+end])
			}
			if n >= len(c.Tokens) {
				return "", fmt.Errorf("format %q: {%d} but only %d tokens", f, n, len(c.Tokens))
			}
			v, ok := values[c.Tokens[n]]
			if !ok {
				return "", fmt.Errorf("token %q has no value: pass it to the build", c.Tokens[n])
			}
			b.WriteString(v)
			i += end
		case ch == '}':
			return "", fmt.Errorf("format %q: unmatched }", f)
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}

// execution is a bootstrap execution made ready to run: its script
// rendered, its tests compiled, its actions parsed.
type execution struct {
	name, shell string
	script      string // may hold secrets: never logged nor put in errors
	out, err    *regexp.Regexp
	status      *regexp.Regexp
	success     Action
	failure     Action
	attempts    int
}

// prepareExecution checks and renders e, so that a bad execution fails the
// build before anything is created.
func prepareExecution(e config.Execution, tokens map[string]string) (*execution, error) {
	x := &execution{name: e.Name, shell: e.Shell, attempts: e.Attempts}
	if x.shell == "" {
		x.shell = ShellAzure
	}
	if x.shell != ShellAzure && x.shell != ShellWinRM {
		return nil, fmt.Errorf("execution %s: unknown shell %q", e.Name, e.Shell)
	}
	if x.attempts <= 0 {
		x.attempts = DefaultAttempts
	}
	lines := make([]string, 0, len(e.Commands))
	for i, c := range e.Commands {
		s, err := FormatCommand(c, tokens)
		if err != nil {
			return nil, fmt.Errorf("execution %s: command %d: %w", e.Name, i, err)
		}
		lines = append(lines, s)
	}
	x.script = strings.Join(lines, "; ")
	compile := func(what string, m *config.Match, anchor bool) (*regexp.Regexp, error) {
		if m == nil || m.Match == "" {
			return nil, nil
		}
		expr := "(?i)" + m.Match
		if anchor {
			expr = "(?i)^(?:" + m.Match + ")$"
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("execution %s: test %s: %w", e.Name, what, err)
		}
		return re, nil
	}
	var err error
	if t := e.Test; t != nil {
		if t.Std != nil {
			if x.out, err = compile("std.out", t.Std.Out, false); err != nil {
				return nil, err
			}
			if x.err, err = compile("std.err", t.Std.Err, false); err != nil {
				return nil, err
			}
		}
		if t.Status != nil {
			if x.status, err = compile("status.code", t.Status.Code, true); err != nil {
				return nil, err
			}
		}
	}
	if e.On != nil {
		if x.success, err = ParseAction(e.On.Success); err != nil {
			return nil, fmt.Errorf("execution %s: on.success: %w", e.Name, err)
		}
		if x.failure, err = ParseAction(e.On.Failure); err != nil {
			return nil, fmt.Errorf("execution %s: on.failure: %w", e.Name, err)
		}
		switch x.success.Kind {
		case ActionNone, ActionReboot:
		default:
			return nil, fmt.Errorf("execution %s: on.success: %q: only reboot follows a success", e.Name, x.success.Kind)
		}
	}
	return x, nil
}

// hasStd reports whether the test reads the command's output, so that
// testing again means running the command again.
func (x *execution) hasStd() bool { return x.out != nil || x.err != nil }

// passes is the test against a run's output and the VM's power state.
func (x *execution) passes(r RunResult, state PowerState) bool {
	if x.out != nil && !x.out.MatchString(r.Stdout) {
		return false
	}
	if x.err != nil && !x.err.MatchString(r.Stderr) {
		return false
	}
	if x.status != nil && !x.status.MatchString("PowerState/"+string(state)) {
		return false
	}
	return true
}
