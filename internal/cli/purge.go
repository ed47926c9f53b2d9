package cli

import (
	"context"
	"fmt"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/purge"
	"github.com/cib-project/cib/internal/record"
)

const purgeHelp = `
Delete what builds and workers left behind in the resource groups of the
selected targets (spec/maintenance.md): deallocated VMs, NICs attached to no
VM, public IPs without an address, disks attached to no VM, stale upload
disks, and images and gallery image versions beyond the newest
purge.retention per key. Only resources tagged cib:managed=true whose
cib:expires has passed, or (in the environment's purge.groups, with --extra)
that match those rules and are older than purge.minimumAge, are deleted;
an image a deployed worker pool references (by the pool records on the
records branch) never is. Everything else is kept, and the report says why.

The scope is --groups, else the target groups on --platform of the keys
named with --key, else of every key. Never a whole subscription. --extra
adds the environment's purge.groups (purge-taskcluster-resources).

Deletes run in dependency order (VMs, NICs, public IPs, disks, gallery
image versions, images), each awaited for at most --timeout. --dry-run lists
what would be deleted and deletes nothing.

The report is printed, one resource a line, and written to the step summary.
Exit codes: 0 every planned delete succeeded (or a dry run); 1 a delete
failed, or the inventory could not be read; 75 the inventory failed in a
way a later run may not (throttling); 64 the command line is wrong.`

type purgeOpts struct {
	config, repo, rev, remote, branch, environment, platform, subscription string
	groups                                                                 string
	keys, galleries, endedRuns                                             multiFlag
	extra, dryRun, thisRun                                                 bool
	timeout                                                                time.Duration
	concurrency                                                            int
}

// purgeNow is the time purge decides at (tests move it).
var purgeNow = time.Now

// runPurge is `cib purge`.
func runPurge(args []string, env Env) int {
	const cmd = "purge"
	var o purgeOpts
	fs := newFlags(env, cmd, "--environment ENV [--groups G1,G2] [--key KEY]... [--extra] [--dry-run]", purgeHelp)
	fs.StringVar(&o.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&o.repo, "repo", ".", "the git `repository` whose configuration and records branch are read")
	fs.StringVar(&o.rev, "rev", "HEAD", "the `revision` whose configuration is read")
	fs.StringVar(&o.remote, "remote", "origin", "the `remote` whose records branch is read")
	fs.StringVar(&o.branch, "branch", "", "the records `branch` (default: records.branch in settings.yaml)")
	fs.StringVar(&o.environment, "environment", "", "the `environment` purged (required)")
	fs.StringVar(&o.platform, "platform", "azure", "the `cloud` purged: azure")
	fs.StringVar(&o.subscription, "subscription", "", "the Azure `subscription` ID (default $AZURE_SUBSCRIPTION_ID)")
	fs.StringVar(&o.groups, "groups", "", "the resource `groups` purged, comma-separated (default: the target groups of the keys)")
	fs.Var(&o.keys, "key", "an image `key` whose target groups are purged (repeatable; default: every key)")
	fs.Var(&o.galleries, "gallery", "a Compute Gallery image definition, `GALLERY/DEFINITION`, whose versions are purged in each group besides those of the galleries found in the groups (repeatable)")
	fs.Var(&o.endedRuns, "ended-run", "a run `URL` (cib:run tag) that is over: what it left is deleted before its cib:expires (repeatable)")
	fs.BoolVar(&o.thisRun, "this-run", false, "treat the current GitHub Actions run as over (a pipeline's closing purge, after its build jobs): what it left is deleted before its cib:expires")
	fs.BoolVar(&o.extra, "extra", false, "purge the environment's purge.groups too (purge-taskcluster-resources)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "list what would be deleted; delete nothing")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "the longest wait for one delete")
	fs.IntVar(&o.concurrency, "concurrency", 4, "how many deletes of one kind run at once")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	usage := usageError(env, cmd)
	if fs.NArg() > 0 {
		return usage("unexpected argument %q (cib purge --help)", fs.Arg(0))
	}
	switch {
	case o.environment == "":
		return usage("--environment is required: the environment purged")
	case o.platform != "azure":
		return usage("--platform %q: cib purges azure only", o.platform)
	case o.timeout <= 0:
		return usage("--timeout must be positive")
	case o.groups != "" && len(o.keys) > 0:
		return usage("--groups and --key exclude each other")
	}
	var galleries [][2]string
	for _, g := range o.galleries {
		gallery, def, ok := strings.Cut(g, "/")
		if !ok || gallery == "" || def == "" || strings.Contains(def, "/") {
			return usage("--gallery %q: want GALLERY/DEFINITION", g)
		}
		galleries = append(galleries, [2]string{gallery, def})
	}
	if o.subscription == "" {
		o.subscription = env.Getenv("AZURE_SUBSCRIPTION_ID")
	}

	cfg, _, code := configAtRev(env, cmd, o.repo, o.rev, o.config)
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
		return usage("--environment %q is not an environment of settings.yaml", o.environment)
	}
	groups, err := purgeGroups(cfg, o)
	if err != nil {
		return usage("%v", err)
	}
	var extra []string
	if o.extra && environment.Purge != nil {
		extra = environment.Purge.Groups
	}
	if len(groups) == 0 && len(extra) == 0 {
		return usage("nothing to purge: no resource group selected")
	}
	if o.subscription == "" {
		return usage("no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
	}
	policy := purge.Policy{Groups: groups, ExtraGroups: extra, Retention: cfg.Settings.Purge.Retention, EndedRuns: o.endedRuns}
	if o.thisRun {
		run := env.runner().RunURL()
		if run == "" {
			return usage("--this-run needs GitHub Actions' GITHUB_SERVER_URL, GITHUB_REPOSITORY and GITHUB_RUN_ID")
		}
		policy.EndedRuns = append(policy.EndedRuns, run)
	}
	if s := cfg.Settings.Purge.MinimumAge; s != "" {
		if policy.MinimumAge, err = time.ParseDuration(s); err != nil {
			return fail(env, cmd, fmt.Errorf("settings.yaml purge.minimumAge %q: %w", s, err))
		}
	}

	branch := o.branch
	if branch == "" {
		branch = cfg.Settings.RecordsBranch()
	}
	set, _, err := record.Read(env.path(o.repo), o.remote, branch)
	if err != nil {
		return fail(env, cmd, fmt.Errorf("read build records: %w", err))
	}
	var notes []string
	policy.Referenced, notes = referencedImages(cfg, set, o.environment, o.platform)

	scope := append(slices.Clone(groups), extra...)
	definitions := galleryDefinitions(set, o.environment, o.platform, scope, galleries)

	machines, how, err := env.machines(o.subscription)
	if err != nil {
		return fail(env, cmd, err)
	}
	fmt.Fprintf(env.Stderr, "azure: subscription %s, login: %s\n", o.subscription, how)
	fmt.Fprintf(env.Stderr, "purge: groups %s", strings.Join(groups, ", "))
	if len(extra) > 0 {
		fmt.Fprintf(env.Stderr, "; extra groups %s", strings.Join(extra, ", "))
	}
	fmt.Fprintf(env.Stderr, "; minimum age %s, retention %d\n", policyAge(policy), policy.Retention)
	for _, n := range notes {
		fmt.Fprintln(env.Stderr, "purge: "+n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	inv, err := machines.Inventory(ctx, scope, definitions...)
	if err != nil {
		if machineimage.IsRetryable(err) {
			fmt.Fprintf(env.Stderr, "cib %s: %v (retryable: exit %d)\n", cmd, err, ExitRetryable)
			return ExitRetryable
		}
		return fail(env, cmd, err)
	}
	plan := purge.Candidates(inv, policy, purgeNow())
	var rep purge.Report
	if o.dryRun {
		rep = purge.Preview(plan)
	} else {
		rep = purge.Run(ctx, machines, plan, o.timeout, o.concurrency)
	}
	for _, l := range rep.Lines() {
		fmt.Fprintln(env.Stdout, l)
	}
	r := env.runner()
	summary := rep.Markdown()
	if len(notes) > 0 {
		summary += "\n" + strings.Join(notes, "\n\n") + "\n"
	}
	if err := r.AddStepSummary(summary); err != nil {
		fmt.Fprintf(env.Stderr, "cib %s: step summary: %v\n", cmd, err)
	}
	for name, n := range map[string]int{"deleted": len(rep.Deleted), "failed": len(rep.Failures), "kept": len(rep.Kept), "planned": len(rep.Planned)} {
		if err := r.SetOutput(name, fmt.Sprint(n)); err != nil {
			fmt.Fprintf(env.Stderr, "cib %s: output %s: %v\n", cmd, name, err)
		}
	}
	switch {
	case rep.Failed():
		fmt.Fprintf(env.Stderr, "cib %s: %d of %d deletes failed\n", cmd, len(rep.Failures), len(rep.Failures)+len(rep.Deleted))
		return ExitFailure
	case o.dryRun:
		fmt.Fprintf(env.Stderr, "purge: dry run: %d to delete, %d kept; nothing deleted\n", len(rep.Planned), len(rep.Kept))
	default:
		fmt.Fprintf(env.Stderr, "purge: %d deleted, %d kept\n", len(rep.Deleted), len(rep.Kept))
	}
	return ExitOK
}

func policyAge(p purge.Policy) time.Duration {
	if p.MinimumAge <= 0 {
		return purge.DefaultMinimumAge
	}
	return p.MinimumAge
}

// purgeGroups is the scope: --groups, else the target groups on the
// platform of the --key keys (of every key without --key), in
// configuration order without duplicates.
func purgeGroups(cfg *config.Config, o purgeOpts) ([]string, error) {
	var out []string
	add := func(g string) {
		if g != "" && !slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(x, g) }) {
			out = append(out, g)
		}
	}
	if o.groups != "" {
		for _, g := range strings.Split(o.groups, ",") {
			add(strings.TrimSpace(g))
		}
		return out, nil
	}
	keys := cfg.Keys
	if len(o.keys) > 0 {
		keys = nil
		for _, name := range o.keys {
			k := cfg.Key(name)
			if k == nil {
				return nil, fmt.Errorf("--key %q is not an image key of the configuration", name)
			}
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		for _, t := range k.Targets {
			if t.Platform == o.platform {
				add(t.Group)
			}
		}
	}
	return out, nil
}

// referencedImages are the image IDs the deployed worker pools of the
// environment reference: for each pool record, the machine image
// recorded for each of the pool's target groups. The notes say what the
// records cannot tell.
func referencedImages(cfg *config.Config, set *record.Set, environment, platform string) (ids, notes []string) {
	pools := 0
	for _, rec := range set.All() {
		if rec.Kind != record.Pool || rec.Environment != environment || rec.Platform != platform {
			continue
		}
		pools++
		var key *config.Key
		var pool config.Pool
		for _, k := range cfg.Keys {
			for _, p := range k.Pools() {
				if p.ID() == rec.Pool {
					key, pool = k, p
				}
			}
		}
		if key == nil {
			notes = append(notes, fmt.Sprintf("pool %s is recorded as deployed but is no longer in the configuration: the images it references are not known (retention still keeps the newest of each key)", rec.Pool))
			continue
		}
		for _, t := range key.PoolTargets(pool) {
			if t.Platform != platform {
				continue
			}
			m, ok := set.Machine(environment, platform, key.Name, t.Group)
			image := m.Image.Location
			if image == "" {
				image = m.Image.Name
			}
			if !ok || image == "" {
				continue
			}
			ids = append(ids, image)
			if m.Time.After(rec.Time) {
				notes = append(notes, fmt.Sprintf("pool %s was deployed (%s) before the machine image of %s/%s was recorded (%s): the image it still references is not known from the records (retention still keeps the newest of each key)",
					rec.Pool, rec.Time.UTC().Format(time.RFC3339), key.Name, t.Group, m.Time.UTC().Format(time.RFC3339)))
			}
		}
	}
	if pools == 0 {
		notes = append(notes, fmt.Sprintf("no pool records for environment %s on %s: no image is protected as referenced by a deployed worker pool (retention still keeps the newest of each key)", environment, platform))
	}
	slices.Sort(ids)
	return slices.Compact(ids), notes
}

// galleryDefinitions are the gallery image definitions whose versions
// are listed: each --gallery in each group of the scope, and those of the
// machine records' gallery image versions in the scope.
func galleryDefinitions(set *record.Set, environment, platform string, scope []string, flags [][2]string) []azure.GalleryImage {
	var out []azure.GalleryImage
	add := func(d azure.GalleryImage) {
		if !slices.ContainsFunc(out, func(x azure.GalleryImage) bool { return strings.EqualFold(x.String(), d.String()) }) {
			out = append(out, d)
		}
	}
	for _, g := range scope {
		for _, f := range flags {
			add(azure.GalleryImage{Group: g, Gallery: f[0], Definition: f[1]})
		}
	}
	for _, rec := range set.All() {
		if rec.Kind != record.Machine || rec.Environment != environment || rec.Platform != platform {
			continue
		}
		d, ok := galleryOf(rec.Image.Location)
		if ok && slices.ContainsFunc(scope, func(g string) bool { return strings.EqualFold(g, d.Group) }) {
			add(d)
		}
	}
	return out
}

// galleryOf is the definition of a gallery image version ID
// (/subscriptions/…/resourceGroups/G/providers/Microsoft.Compute/galleries/GAL/images/DEF/versions/V).
func galleryOf(id string) (azure.GalleryImage, bool) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	if len(parts) != 12 || !strings.EqualFold(parts[2], "resourceGroups") || !strings.EqualFold(parts[5], "Microsoft.Compute") ||
		!strings.EqualFold(parts[6], "galleries") || !strings.EqualFold(parts[8], "images") || !strings.EqualFold(parts[10], "versions") {
		return azure.GalleryImage{}, false
	}
	return azure.GalleryImage{Group: parts[3], Gallery: parts[7], Definition: parts[9]}, true
}
