package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/record"
)

const recordHelp = `
Record a successful build on the records branch, so that the next plan
knows what was built and from which inputs. The stages call it after they
succeed; it is also how a build made by hand is made known.

STAGE is disk-image (needs --key), machine-image (--key and --group) or
pool-config (--pool). The fingerprint and canonical inputs are computed
from the configuration at the current commit; --fingerprint, from the
plan's matrix entry, makes sure they are still the ones the plan decided on.

The record is committed to the branch without touching the work tree and
pushed; a push that loses a race with another job is rebuilt on the new
tip and retried. For an https remote the push authenticates with
GITHUB_TOKEN (contents: write), which is masked in the log.`

func runRecord(args []string, env Env) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs := recordFlags(env, new(recordOpts))
			fs.SetOutput(env.Stdout)
			fs.Usage()
			return ExitOK
		}
		fmt.Fprintln(env.Stderr, "cib record: name the stage: cib record disk-image|machine-image|pool-config [flags] (cib record --help)")
		return ExitUsage
	}
	o := recordOpts{stage: args[0]}
	fs := recordFlags(env, &o)
	if code, ok := parse(fs, args[1:], env); !ok {
		return code
	}
	cfg, code := loadConfig(env, "record", o.config)
	if cfg == nil {
		return code
	}
	rec, err := o.build(cfg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "cib record: %v\n", err)
		return ExitUsage
	}
	rev := o.rev
	if rev == "" {
		rev = "HEAD"
	}
	hash, _, err := commitAt(env.path(o.repo), rev)
	if err != nil {
		return fail(env, "record", err)
	}
	r := env.runner()
	rec.Revision = hash
	rec.RunURL = r.RunURL()
	if err := rec.Validate(); err != nil {
		return fail(env, "record", err)
	}
	if o.dryRun {
		data, _ := json.MarshalIndent(rec, "", "  ")
		fmt.Fprintln(env.Stdout, string(data))
		return ExitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	commit, branch, err := pushRecord(ctx, env, cfg, o, rec)
	if err != nil {
		return fail(env, "record", err)
	}
	fmt.Fprintf(env.Stdout, "recorded %s %s at %s (%s)\n", o.stage, rec.Path(), commit[:7], branch)
	return ExitOK
}

// pushRecord commits rec to the records branch of the repository at
// o.repo and pushes it to o.remote; it returns the commit and the branch.
func pushRecord(ctx context.Context, env Env, cfg *config.Config, o recordOpts, rec record.Record) (commit, branch string, err error) {
	w := &record.Writer{
		RepoPath: env.path(o.repo),
		Remote:   o.remote,
		Branch:   o.branch,
		Log: func(format string, a ...any) {
			fmt.Fprintf(env.Stderr, "cib record: "+format+"\n", a...)
		},
	}
	if w.Branch == "" {
		w.Branch = cfg.Settings.RecordsBranch()
	}
	if token := env.Getenv("GITHUB_TOKEN"); token != "" {
		env.runner().Mask(token)
		w.Auth = &http.BasicAuth{Username: "x-access-token", Password: token}
	}
	h, err := w.Write(ctx, rec)
	if err != nil {
		return "", w.Branch, err
	}
	return h.String(), w.Branch, nil
}

type recordOpts struct {
	stage                                   string
	config, repo, rev, remote, branch       string
	environment, platform, key, group, pool string
	imageName, imageLocation, fingerprint   string
	dryRun                                  bool
}

func recordFlags(env Env, o *recordOpts) *flagSet {
	fs := newFlags(env, "record", "disk-image|machine-image|pool-config [flags]", recordHelp)
	fs.StringVar(&o.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&o.repo, "repo", ".", "the git `repository` to record in")
	fs.StringVar(&o.rev, "rev", "", "the `revision` that was built (default HEAD)")
	fs.StringVar(&o.remote, "remote", "origin", "push to this `remote`")
	fs.StringVar(&o.branch, "branch", "", "the records `branch` (default: records.branch in settings.yaml)")
	fs.StringVar(&o.environment, "environment", "", "the `environment` built for (required)")
	fs.StringVar(&o.platform, "platform", "azure", "the `platform` built for")
	fs.StringVar(&o.key, "key", "", "the image `key` (disk-image, machine-image)")
	fs.StringVar(&o.group, "group", "", "the target resource `group` (machine-image)")
	fs.StringVar(&o.pool, "pool", "", "the worker `pool`, domain/variant (pool-config)")
	fs.StringVar(&o.imageName, "image-name", "", "the built image's `name`")
	fs.StringVar(&o.imageLocation, "image-location", "", "where the image is: blob URL, resource ID or path")
	fs.StringVar(&o.fingerprint, "fingerprint", "", "the `fingerprint` the plan computed; the record is refused if the inputs differ")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the record instead of writing it")
	return fs
}

// build makes the record's identity, fingerprint and inputs from the
// configuration.
func (o *recordOpts) build(cfg *config.Config) (record.Record, error) {
	rec := record.Record{Environment: o.environment, Platform: o.platform,
		Image: record.Image{Name: o.imageName, Location: o.imageLocation}}
	known := false
	for _, e := range cfg.Settings.Environments {
		known = known || e.Name == o.environment
	}
	if !known {
		return rec, fmt.Errorf("--environment %q is not an environment of settings.yaml", o.environment)
	}
	var in config.Inputs
	switch o.stage {
	case "disk-image", "machine-image":
		k := cfg.Key(o.key)
		if k == nil {
			return rec, fmt.Errorf("--key %q is not an image key of the configuration", o.key)
		}
		rec.Key = k.Name
		if o.stage == "disk-image" {
			if k.Marketplace() {
				return rec, fmt.Errorf("key %s starts from a marketplace image and has no disk image", k.Name)
			}
			rec.Kind = record.Disk
			in = cfg.DiskInputs(k, o.platform)
			break
		}
		rec.Kind, rec.Group = record.Machine, o.group
		var t *config.Target
		for i := range k.Targets {
			if k.Targets[i].Group == o.group && k.Targets[i].Platform == o.platform {
				t = &k.Targets[i]
			}
		}
		if t == nil {
			return rec, fmt.Errorf("key %s has no %s target in group %q", k.Name, o.platform, o.group)
		}
		disk := ""
		if !k.Marketplace() {
			disk = cfg.DiskInputs(k, o.platform).Fingerprint()
		}
		in = cfg.MachineInputs(k, t, disk)
	case "pool-config":
		rec.Kind, rec.Pool = record.Pool, o.pool
		for _, k := range cfg.Keys {
			for _, p := range k.Pools() {
				if p.ID() != o.pool {
					continue
				}
				disk := ""
				if !k.Marketplace() {
					disk = cfg.DiskInputs(k, o.platform).Fingerprint()
				}
				in = cfg.PoolInputs(k, p, o.platform, func(t *config.Target) string { return cfg.MachineInputs(k, t, disk).Fingerprint() })
			}
		}
		if in == nil {
			return rec, fmt.Errorf("--pool %q is not a pool of the configuration", o.pool)
		}
	default:
		return rec, fmt.Errorf("unknown stage %q: use disk-image, machine-image or pool-config", o.stage)
	}
	rec.Fingerprint = in.Fingerprint()
	rec.Inputs = json.RawMessage(in.Canonical())
	if o.fingerprint != "" && o.fingerprint != rec.Fingerprint {
		return rec, fmt.Errorf("the inputs' fingerprint is %s, not %s as planned: the configuration differs from the commit the plan was made for", rec.Fingerprint, o.fingerprint)
	}
	return rec, nil
}
