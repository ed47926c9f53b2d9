package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/pool"
	"github.com/cib-project/cib/internal/record"
)

const poolConfigHelp = `
Generate the Taskcluster worker-manager configuration of worker pools from
the newest machine image of each of the pool's target groups (the
machine-image records of the environment on the records branch), and
optionally deploy it to the environment's worker manager.

--output writes DIR/<domain>/<variant>.json and .yaml. --deploy creates the
pool, or updates it when its definition differs, with Hawk-signed requests
made with TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN (the token is
masked in the log); --dry-run prints the diff against the deployed pool and
writes nothing. --record records the pool's configuration on the records
branch after a deployment, as cib record pool-config does.

Without --pool, every pool of the configuration's platforms is generated.`

type poolConfigOpts struct {
	config, repo, branch, environment, platform, output, rootURL, fingerprint string
	pools                                                                     multiFlag
	deploy, dryRun, record                                                    bool
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runPoolConfig(args []string, env Env) int {
	var o poolConfigOpts
	fs := newFlags(env, "pool-config", "--environment ENV [--pool DOMAIN/VARIANT]... [--output DIR] [--deploy|--dry-run] [--record]", poolConfigHelp)
	fs.StringVar(&o.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&o.repo, "repo", ".", "the git `repository` holding the records branch")
	fs.StringVar(&o.branch, "records-branch", "", "read build records from this `branch` (default: records.branch in settings.yaml)")
	fs.StringVar(&o.environment, "environment", "", "the `environment` to configure (required)")
	fs.StringVar(&o.platform, "platform", "azure", "the `platform` of the machine images")
	fs.Var(&o.pools, "pool", "a worker `pool`, domain/variant (repeatable; default: every pool)")
	fs.StringVar(&o.output, "output", "", "write <domain>/<variant>.json and .yaml into this `folder`")
	fs.BoolVar(&o.deploy, "deploy", false, "create or update the pools in the environment's worker manager")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the diff against the deployed pools; change nothing")
	fs.BoolVar(&o.record, "record", false, "record each deployed pool on the records branch")
	fs.StringVar(&o.rootURL, "root-url", "", "the Taskcluster root `URL` (default: the environment's taskcluster.rootUrl)")
	fs.StringVar(&o.fingerprint, "fingerprint", "", "with --record and one --pool: the `fingerprint` the plan computed")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	switch {
	case o.environment == "":
		fmt.Fprintln(env.Stderr, "cib pool-config: --environment is required")
		return ExitUsage
	case o.deploy && o.dryRun:
		fmt.Fprintln(env.Stderr, "cib pool-config: --deploy and --dry-run exclude each other")
		return ExitUsage
	case o.record && !o.deploy:
		fmt.Fprintln(env.Stderr, "cib pool-config: --record needs --deploy")
		return ExitUsage
	case o.fingerprint != "" && len(o.pools) != 1:
		fmt.Fprintln(env.Stderr, "cib pool-config: --fingerprint needs exactly one --pool")
		return ExitUsage
	}
	cfg, code := loadConfig(env, "pool-config", o.config)
	if cfg == nil {
		return code
	}
	var environment *config.Environment
	for i := range cfg.Settings.Environments {
		if cfg.Settings.Environments[i].Name == o.environment {
			environment = &cfg.Settings.Environments[i]
		}
	}
	if environment == nil {
		fmt.Fprintf(env.Stderr, "cib pool-config: --environment %q is not an environment of settings.yaml\n", o.environment)
		return ExitUsage
	}
	selected, err := selectPools(cfg, o)
	if err != nil {
		fmt.Fprintf(env.Stderr, "cib pool-config: %v\n", err)
		return ExitUsage
	}

	branch := o.branch
	if branch == "" {
		branch = cfg.Settings.RecordsBranch()
	}
	set, _, err := record.Read(env.path(o.repo), "origin", branch)
	if err != nil {
		return fail(env, "pool-config", fmt.Errorf("read build records: %w", err))
	}

	var client *pool.Client
	if o.deploy || o.dryRun {
		root := o.rootURL
		if root == "" && environment.Taskcluster != nil {
			root = environment.Taskcluster.RootURL
		}
		if root == "" {
			return fail(env, "pool-config", fmt.Errorf("environment %s has no taskcluster.rootUrl in settings.yaml", o.environment))
		}
		client = &pool.Client{RootURL: root, ClientID: env.Getenv("TASKCLUSTER_CLIENT_ID"), AccessToken: env.Getenv("TASKCLUSTER_ACCESS_TOKEN")}
		if client.AccessToken != "" {
			env.runner().Mask(client.AccessToken)
		}
		if client.ClientID == "" || client.AccessToken == "" {
			return fail(env, "pool-config", fmt.Errorf("set TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN to reach the worker manager of %s", o.environment))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	failed := false
	for _, s := range selected {
		if err := poolConfigOne(ctx, env, cfg, o, branch, set, client, s.key, s.pool); err != nil {
			fmt.Fprintf(env.Stderr, "cib pool-config: %v\n", err)
			failed = true
		}
	}
	if failed {
		return ExitFailure
	}
	return ExitOK
}

type selectedPool struct {
	key  *config.Key
	pool config.Pool
}

// selectPools resolves --pool against the configuration; without --pool,
// every pool of the configuration's platforms.
func selectPools(cfg *config.Config, o poolConfigOpts) ([]selectedPool, error) {
	var all []selectedPool
	for _, k := range cfg.Keys {
		for _, p := range k.Pools() {
			all = append(all, selectedPool{k, p})
		}
	}
	if len(o.pools) == 0 {
		var out []selectedPool
		for _, s := range all {
			if s.pool.Platform == "" || s.pool.Platform == o.platform {
				out = append(out, s)
			}
		}
		return out, nil
	}
	var out []selectedPool
	for _, id := range o.pools {
		found := false
		for _, s := range all {
			if s.pool.ID() == id {
				out, found = append(out, s), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("--pool %q is not a pool of the configuration", id)
		}
	}
	return out, nil
}

// poolImage is a target of a pool and the machine image recorded for it
// (the newest: a record names the latest build), or why there is none.
type poolImage struct {
	target *config.Target
	image  string // a resource ID, or a bare name in older records
	err    error
}

// poolImages are the images pool p deploys for key k: one per target of
// the pool on platform, from the records. pool-config and verify read
// them alike, so verify checks exactly what is deployed.
func poolImages(k *config.Key, p config.Pool, set *record.Set, environment, platform, branch string) []poolImage {
	var out []poolImage
	for _, t := range k.PoolTargets(p) {
		if t.Platform != platform {
			continue
		}
		rec, ok := set.Machine(environment, platform, k.Name, t.Group)
		image := rec.Image.Location
		if image == "" {
			image = rec.Image.Name
		}
		pi := poolImage{target: t, image: image}
		if !ok || image == "" {
			pi.err = fmt.Errorf("pool %s: no machine image recorded for key %s, group %s in environment %s on the %s branch (build it with cib build machine-image, or record it with cib record machine-image)",
				p.ID(), k.Name, t.Group, environment, branch)
		}
		out = append(out, pi)
	}
	return out
}

func poolConfigOne(ctx context.Context, env Env, cfg *config.Config, o poolConfigOpts, branch string, set *record.Set, client *pool.Client, k *config.Key, p config.Pool) error {
	images := map[string]string{}
	for _, pi := range poolImages(k, p, set, o.environment, o.platform, branch) {
		if pi.err != nil {
			return pi.err
		}
		images[pi.target.Group] = pi.image
	}
	wp, err := pool.Config(cfg, k, p, images, o.environment)
	if err != nil {
		return err
	}
	if o.output != "" {
		js, err := wp.JSON()
		if err != nil {
			return err
		}
		ym, err := wp.YAML()
		if err != nil {
			return err
		}
		base := filepath.Join(env.path(o.output), p.Domain, p.Variant)
		if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
			return fmt.Errorf("pool %s: %w", p.ID(), err)
		}
		for ext, data := range map[string][]byte{".json": js, ".yaml": ym} {
			if err := os.WriteFile(base+ext, data, 0o644); err != nil {
				return fmt.Errorf("pool %s: %w", p.ID(), err)
			}
		}
		fmt.Fprintf(env.Stdout, "%s: wrote %s.json and %s.yaml\n", p.ID(), base, base)
	}
	switch {
	case o.dryRun:
		deployed, found, err := client.Get(ctx, wp.ID)
		if err != nil {
			return err
		}
		var from *pool.WorkerPool
		if found {
			from = &deployed
		}
		d, err := pool.Diff(from, wp)
		if err != nil {
			return err
		}
		if d == "" {
			fmt.Fprintf(env.Stdout, "%s: deployed in %s as wanted: no change\n", p.ID(), o.environment)
			return nil
		}
		what := "would be updated"
		if !found {
			what = "would be created"
		}
		fmt.Fprintf(env.Stdout, "%s: %s in %s (dry run):\n%s", p.ID(), what, o.environment, d)
	case o.deploy:
		change, err := pool.Deploy(ctx, client, wp)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s: %s in %s\n", p.ID(), change, o.environment)
		if o.record {
			ro := recordOpts{stage: "pool-config", repo: o.repo, remote: "origin", branch: o.branch,
				environment: o.environment, platform: o.platform, pool: p.ID(), fingerprint: o.fingerprint}
			rec, err := ro.build(cfg)
			if err != nil {
				return err
			}
			hash, _, err := commitAt(env.path(o.repo), "HEAD")
			if err != nil {
				return err
			}
			rec.Revision, rec.RunURL = hash, env.runner().RunURL()
			rec.Image = record.Image{Name: p.ID(), Location: client.RootURL}
			commit, br, err := pushRecord(ctx, env, cfg, ro, rec)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "recorded pool-config %s at %s (%s)\n", rec.Path(), commit[:7], br)
		}
	}
	return nil
}
