package cli

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cib-project/cib/internal/actionsio"
	"github.com/cib-project/cib/internal/config"
)

func runValidate(args []string, env Env) int {
	fs := newFlags(env, "validate", "[--config DIR]", `
Check the configuration: every image key, the shared files and the
repository settings. Every problem is listed with file:line:column and what
to do; in GitHub Actions each is also an annotation on that line.
Exits 0 when the configuration is valid, 1 otherwise.`)
	dir := fs.String("config", "config", "the configuration `folder`")
	printBranch := fs.Bool("print-records-branch", false, "print only the records branch's name (for scripts that fetch it)")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	cfg, code := loadConfig(env, "validate", *dir)
	if cfg == nil {
		return code
	}
	if *printBranch {
		fmt.Fprintln(env.Stdout, cfg.Settings.RecordsBranch())
		return ExitOK
	}
	iso, market := 0, 0
	for _, k := range cfg.Keys {
		if k.Marketplace() {
			market++
		} else {
			iso++
		}
	}
	fmt.Fprintf(env.Stdout, "%s: valid: %d image keys (%d from ISO, %d from marketplace images), %d environments\n",
		*dir, len(cfg.Keys), iso, market, len(cfg.Settings.Environments))
	return ExitOK
}

// loadConfig loads the configuration, reporting every problem (and
// annotating it in Actions); it returns nil and an exit code on failure.
func loadConfig(env Env, cmd, dir string) (*config.Config, int) {
	cfg, err := config.Load(env.path(dir))
	return report(env, cmd, dir, cfg, err)
}

// loadConfigFS loads a configuration read from elsewhere than the work
// tree (a commit); name says where in messages.
func loadConfigFS(env Env, cmd string, fsys fs.FS, name string) (*config.Config, int) {
	cfg, err := config.LoadFS(fsys, name)
	return report(env, cmd, name, cfg, err)
}

// report lists a loaded configuration's problems, annotating each in
// Actions; it returns nil and an exit code when there are any.
func report(env Env, cmd, dir string, cfg *config.Config, err error) (*config.Config, int) {
	if err == nil {
		return cfg, ExitOK
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		return nil, fail(env, cmd, err)
	}
	r := env.runner()
	for _, p := range ps {
		fmt.Fprintln(env.Stderr, p.Error())
		msg := p.Message
		if p.Path != "" {
			msg = p.Path + ": " + msg
		}
		r.Annotate(actionsio.Error, relTo(env, p.File), p.Line, p.Column, msg)
	}
	fmt.Fprintf(env.Stderr, "cib %s: the configuration in %s has %d problem(s); nothing was planned or built\n", cmd, dir, len(ps))
	return nil, ExitFailure
}

// relTo strips Env.Dir from a path so annotations name repository files.
func relTo(env Env, p string) string {
	if env.Dir != "" && len(p) > len(env.Dir) && p[:len(env.Dir)+1] == env.Dir+"/" {
		return p[len(env.Dir)+1:]
	}
	return p
}
