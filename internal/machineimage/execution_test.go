package machineimage

import (
	"strings"
	"testing"
	"time"

	"github.com/cib-project/cib/internal/config"
)

func TestParseAction(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Action
		err  string
	}{
		{"", Action{}, ""},
		{"reboot", Action{Kind: "reboot"}, ""},
		{"retry-task", Action{Kind: "retry-task"}, ""},
		{"  fail ", Action{Kind: "fail"}, ""},
		{"reboot after 30 s", Action{Kind: "reboot", After: 30 * time.Second}, ""},
		{"reboot after 30s", Action{Kind: "reboot", After: 30 * time.Second}, ""},
		{"retry after 2 minutes", Action{Kind: "retry", After: 2 * time.Minute}, ""},
		{"retest after 1 hour", Action{Kind: "retest", After: time.Hour}, ""},
		{"retest after 3 h", Action{Kind: "retest", After: 3 * time.Hour}, ""},
		{"retry after 5 min", Action{Kind: "retry", After: 5 * time.Minute}, ""},
		{"retry after 5 sec", Action{Kind: "retry", After: 5 * time.Second}, ""},
		{"retry after 5 days", Action{}, "unknown unit"},
		{"retry after 5 ms", Action{}, "unknown unit"},
		{"retry after 5", Action{}, "unknown unit"},
		{"retry after s", Action{}, "whole number"},
		{"retry after -5 s", Action{}, "whole number"},
		{"retry in 5 s", Action{}, "expected retry after"},
		{"retry after 5 s now", Action{}, "expected retry after"},
		{"restart", Action{}, "use reboot"},
	} {
		got, err := ParseAction(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseAction(%q) error = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseAction(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestFormatCommand(t *testing.T) {
	values := map[string]string{"COMPUTER_NAME": "cib-0123456", "EVIL": "$(Remove-Item C:\\ -Recurse)"}
	for _, c := range []struct {
		cmd  config.Command
		want string
		err  string
	}{
		{config.Command{Text: "Get-Date"}, "Get-Date", ""},
		{config.Command{Format: "Set-ItemProperty -Value '{0}'", Tokens: []string{"COMPUTER_NAME"}}, "Set-ItemProperty -Value 'cib-0123456'", ""},
		{config.Command{Format: "{1}{0}{1}", Tokens: []string{"COMPUTER_NAME", "EVIL"}}, "$(Remove-Item C:\\ -Recurse)cib-0123456$(Remove-Item C:\\ -Recurse)", ""},
		{config.Command{Format: "@{{ a = '{0}' }}", Tokens: []string{"COMPUTER_NAME"}}, "@{ a = 'cib-0123456' }", ""},
		{config.Command{Format: "x {0}", Tokens: []string{"$env:SECRET"}}, "", "has no value"},
		{config.Command{Format: "x {1}", Tokens: []string{"COMPUTER_NAME"}}, "", "only 1 tokens"},
		{config.Command{Format: "x {a}", Tokens: []string{"COMPUTER_NAME"}}, "", "not a token index"},
		{config.Command{Format: "x {0", Tokens: []string{"COMPUTER_NAME"}}, "", "unclosed"},
		{config.Command{Format: "x }", Tokens: nil}, "", "unmatched"},
	} {
		got, err := FormatCommand(c.cmd, values)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("FormatCommand(%+v) error = %v, want %q", c.cmd, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("FormatCommand(%+v) = %q, %v; want %q", c.cmd, got, err, c.want)
		}
	}
}

func TestPrepareExecution(t *testing.T) {
	e := config.Execution{
		Name:  "set-computer-name",
		Shell: "azure-powershell",
		Commands: []config.Command{
			{Text: "$x = 1"},
			{Format: "Rename-Computer '{0}'", Tokens: []string{"NAME"}},
		},
		Test: &config.Test{
			Std:    &config.StdTest{Out: &config.Match{Match: "renamed"}},
			Status: &config.StatusTest{Code: &config.Match{Match: "PowerState/running"}},
		},
		On: &config.On{Success: "reboot after 10 s", Failure: "retry after 1 m"},
	}
	x, err := prepareExecution(e, map[string]string{"NAME": "cib-1"})
	if err != nil {
		t.Fatal(err)
	}
	if x.script != "$x = 1; Rename-Computer 'cib-1'" {
		t.Errorf("script = %q", x.script)
	}
	if x.attempts != DefaultAttempts || x.success != (Action{"reboot", 10 * time.Second}) || x.failure != (Action{"retry", time.Minute}) {
		t.Errorf("prepared = %+v", x)
	}
	for _, c := range []struct {
		r     RunResult
		state PowerState
		want  bool
	}{
		{RunResult{Stdout: "Computer RENAMED"}, Running, true},
		{RunResult{Stdout: "nothing"}, Running, false},
		{RunResult{Stdout: "renamed"}, Stopped, false},
	} {
		if got := x.passes(c.r, c.state); got != c.want {
			t.Errorf("passes(%+v, %s) = %v", c.r, c.state, got)
		}
	}
	// The status test is anchored: PowerState/stop does not match stopped.
	e.Test.Status.Code.Match = "PowerState/stop"
	x, _ = prepareExecution(e, map[string]string{"NAME": "cib-1"})
	if x.passes(RunResult{Stdout: "renamed"}, Stopped) {
		t.Error("PowerState/stop matched PowerState/stopped")
	}
	for name, edit := range map[string]func(*config.Execution){
		"missing token": func(e *config.Execution) { e.Commands[1].Tokens = []string{"OTHER"} },
		"bad regex":     func(e *config.Execution) { e.Test.Std.Out.Match = "(" },
		"bad unit":      func(e *config.Execution) { e.On.Failure = "retry after 1 fortnight" },
		"bad success":   func(e *config.Execution) { e.On.Success = "fail" },
		"bad shell":     func(e *config.Execution) { e.Shell = "bash" },
	} {
		e2 := e
		e2.Commands = append([]config.Command(nil), e.Commands...)
		t2 := *e.Test
		std := *t2.Std
		out := *std.Out
		std.Out, t2.Std = &out, &std
		e2.Test = &t2
		on := *e.On
		e2.On = &on
		edit(&e2)
		if _, err := prepareExecution(e2, map[string]string{"NAME": "cib-1"}); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "cib-1") {
			t.Errorf("%s: error quotes a token value: %v", name, err)
		}
	}
}
