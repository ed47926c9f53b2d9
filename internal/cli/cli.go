// Package cli is cib's command line: one file per subcommand, each turning
// flags (and, in GitHub Actions, the event) into a call of the stage it
// runs, and its result into output and an exit code. It is the only package
// that builds real clients and hands them to the others.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/cib-project/cib/internal/actionsio"
	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/machineimage"
)

// Exit codes, documented in the README.
const (
	ExitOK = 0
	// ExitFailure is a permanent failure: bad configuration, a missing file.
	ExitFailure = 1
	// ExitInstructions means the commit instructions have errors.
	ExitInstructions = 2
	// ExitUsage means the command line itself is wrong.
	ExitUsage = 64
	// ExitRetryable is a failure a later run may not meet (quota,
	// throttling, a guest that did not reach a state in time): re-run the
	// job. (EX_TEMPFAIL of sysexits.h.)
	ExitRetryable = 75
)

// Env is what a command may touch of the process, so tests can run
// commands in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Getenv         func(string) string
	// Terminal reports whether stdout is a terminal.
	Terminal bool
	// Dir is the working directory relative paths start from; "" is the
	// process's own.
	Dir string
	// Azure, when set, makes the Azure Resource Manager clients of the
	// machine-image stage instead of logging in to Azure's public cloud:
	// tests set azure.StandIn over an azuretest.Azure. (cli never imports
	// the Azure SDK; internal/azure does.)
	Azure func(subscription string) (*azure.Machines, error)
	// TuneMachineImage, when set, adjusts a machine-image build's inputs
	// before it runs: tests shorten its polls and waits.
	TuneMachineImage func(*machineimage.BuildInputs)
}

// System is the real process environment.
func System() Env {
	term := false
	if fi, err := os.Stdout.Stat(); err == nil {
		term = fi.Mode()&os.ModeCharDevice != 0
	}
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv, Terminal: term}
}

func (e Env) runner() *actionsio.Runner { return actionsio.NewWith(e.Getenv, e.Stdout) }

// path resolves a path given on the command line against Env.Dir.
func (e Env) path(p string) string {
	if e.Dir == "" || p == "" || strings.HasPrefix(p, "/") {
		return p
	}
	return e.Dir + "/" + p
}

type command struct {
	name    string
	summary string
	run     func(args []string, env Env) int
}

func commands() []command {
	return []command{
		{"plan", "decide which jobs of every stage run, and why", runPlan},
		{"validate", "check the configuration and list every problem", runValidate},
		{"record", "record a successful build on the records branch", runRecord},
		{"prepare", "make the resource groups, storage, galleries and networks of the selected targets exist as configured", runPrepare},
		{"purge", "delete what builds and workers left behind in the selected resource groups (--dry-run lists only)", runPurge},
		{"build", "build a disk image or a machine image (cib build disk-image|machine-image KEY)", runBuild},
		{"pool-config", "generate worker-pool configurations and deploy them to the worker manager", runPoolConfig},
		{"verify", "start one VM from each new image of a pool, wait until it is healthy, and delete it", runVerify},
		{"tag", "re-apply the tags of the recorded machine images (spec/machine-image.md §4)", runTag},
		{"comment", "post the plan as one pull-request comment, updated in place on every push", runComment},
		{"unattend", "print the unattend.xml answer file of an image key", runUnattend},
		{"version", "print the version", runVersion},
	}
}

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

func usage(w io.Writer) {
	fmt.Fprint(w, `cib builds Windows cloud images from ISO files and marketplace images in
GitHub Actions: a plan decides from the configuration, the commit message and
the records of earlier builds which disk images, machine images and worker
pools to build, and GitHub Actions runs one job per matrix entry.

Usage:
  cib <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'cib <command> --help' for a command's flags.

Exit codes: 0 done; 1 failed (bad configuration, unreadable input);
2 the commit instructions have errors; 64 the command line is wrong;
75 failed in a way a re-run may not (quota, throttling, a transient Azure
error, a guest that did not reach a state in time).
`)
}

// Main runs cib with its arguments and returns the exit code.
func Main(args []string, env Env) int {
	if len(args) == 0 {
		usage(env.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return Main([]string{args[1], "--help"}, env)
		}
		usage(env.Stdout)
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], env)
		}
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	sort.Strings(names)
	fmt.Fprintf(env.Stderr, "cib: unknown command %q; the commands are %s (cib help)\n", args[0], strings.Join(names, ", "))
	return ExitUsage
}

// newFlags makes a flag set whose --help prints the command's description
// and flags to stdout and whose errors go to stderr.
type flagSet = flag.FlagSet

func newFlags(env Env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cib %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; ok is false when the command should return code.
func parse(fs *flag.FlagSet, args []string, env Env) (code int, ok bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(env.Stdout)
		fs.Usage()
		return ExitOK, false
	}
	if err != nil {
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "cib %s: unexpected argument %q (flags start with --)\n", fs.Name(), fs.Arg(0))
		return ExitUsage, false
	}
	return 0, true
}

func runVersion(args []string, env Env) int {
	fs := newFlags(env, "version", "", "Print cib's version.")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	fmt.Fprintln(env.Stdout, "cib", Version)
	return ExitOK
}

// usageError returns a function that reports a wrong command line of cmd
// and returns ExitUsage.
func usageError(env Env, cmd string) func(format string, a ...any) int {
	return func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "cib "+cmd+": "+format+"\n", a...)
		return ExitUsage
	}
}

func fail(env Env, cmd string, err error) int {
	fmt.Fprintf(env.Stderr, "cib %s: %v\n", cmd, err)
	return ExitFailure
}
