package cli

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/record"
)

const tagHelp = `
Tag the machine images the build records name again, with the tags a build
gives them (spec/machine-image.md §4): their provenance (commits, commit
times, runs, the fingerprint), what the image key says of the image (os,
edition, language, architecture, ISO, marketplace source), every target tag,
and cib:managed, cib:key, cib:run and cib:expires=never. Tags the image has
besides these are kept. An image whose tags are right is not written to:
running it twice changes nothing the second time.

The images are those of the machine-image records of --environment on the
records branch (fetch it first: git fetch origin
+refs/heads/cib-records:refs/remotes/origin/cib-records), narrowed by --key
and --group. The tags come from each record (revision, run, fingerprint),
from the disk-image record of its key (when its fingerprint is the one the
image was built from; otherwise the disk tags are left as they are) and from
the configuration at the commit the image was built from: the clone needs
those commits (actions/checkout with fetch-depth: 0). The records branch and
the environments are those of settings.yaml at --rev.

The resourceId tag (the build VM's deployment ID) is in no record: it is
left as it is.

Credentials are those of cib build machine-image (OIDC federation, or
azidentity's default chain); each image is read in the subscription of its
resource ID, which must be --subscription (default AZURE_SUBSCRIPTION_ID)
when one is given.

Exit codes: 0 every image is tagged (or was already); 1 an image is missing,
or its record or configuration cannot be read; 75 a failure a re-run may
not meet (throttling, a server error); 64 the command line is wrong.`

type tagOpts struct {
	config, repo, rev, remote, branch string
	environment, platform             string
	subscription                      string
	keys, groups                      multiFlag
	dryRun                            bool
}

// tagChange is one tag that differs from what the image should carry.
type tagChange struct {
	name, old, new string
	added          bool
}

// tagResult is what cib tag did to one image.
type tagResult struct {
	rec       record.Record
	changes   []tagChange
	unchanged int
	notes     []string
	err       error
}

// runTag is `cib tag`.
func runTag(args []string, env Env) int {
	const cmd = "tag"
	var o tagOpts
	fs := newFlags(env, cmd, "--environment ENV [--key KEY]... [--group GROUP]... [--dry-run]", tagHelp)
	fs.StringVar(&o.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&o.repo, "repo", ".", "the git `repository` holding the records branch and the commits built")
	fs.StringVar(&o.rev, "rev", "HEAD", "the `revision` whose settings.yaml names the records branch and environments")
	fs.StringVar(&o.remote, "remote", "origin", "the `remote` whose records branch is read")
	fs.StringVar(&o.branch, "branch", "", "the records `branch` (default: records.branch in settings.yaml)")
	fs.StringVar(&o.environment, "environment", "", "the `environment` whose images are tagged (required)")
	fs.StringVar(&o.platform, "platform", "azure", "the `cloud` of the images: azure")
	fs.StringVar(&o.subscription, "subscription", "", "the Azure `subscription` ID (default $AZURE_SUBSCRIPTION_ID)")
	fs.Var(&o.keys, "key", "an image `key` (repeatable; default every key with a machine-image record)")
	fs.Var(&o.groups, "group", "a target resource `group` (repeatable; default every group)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "report what would change; write nothing")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	usage := usageError(env, cmd)
	switch {
	case o.platform != "azure":
		return usage("--platform %q: machine images are tagged on azure only", o.platform)
	case o.environment == "":
		return usage("--environment is required: the environment whose images are tagged")
	}
	if o.subscription == "" {
		o.subscription = env.Getenv("AZURE_SUBSCRIPTION_ID")
	}

	hash, _, err := commitAt(env.path(o.repo), o.rev)
	if err != nil {
		return fail(env, cmd, err)
	}
	configs := &configsAt{env: env, dir: o.config, repo: env.path(o.repo), byHash: map[string]*config.Config{}}
	cfg, code := configs.load(hash)
	if cfg == nil {
		return code
	}
	if !slices.ContainsFunc(cfg.Settings.Environments, func(e config.Environment) bool { return e.Name == o.environment }) {
		return usage("--environment %q is not an environment of settings.yaml", o.environment)
	}
	branch := o.branch
	if branch == "" {
		branch = cfg.Settings.RecordsBranch()
	}
	set, src, err := record.Read(env.path(o.repo), o.remote, branch)
	if err != nil {
		return fail(env, cmd, fmt.Errorf("read build records: %w", err))
	}
	where := "there is no records branch " + branch + " (fetch it: git fetch " + o.remote + " +refs/heads/" + branch + ":refs/remotes/" + o.remote + "/" + branch + ")"
	if src.Ref != "" {
		where = src.Ref + " at " + src.Commit[:7]
	}
	recs, missing := selectMachineRecords(set, o)
	if len(recs) == 0 && len(missing) == 0 {
		fmt.Fprintf(env.Stdout, "no machine-image records of %s on %s to tag (%s)\n", o.environment, o.platform, where)
		if err := env.runner().AddStepSummary(tagSummary(o, where, nil)); err != nil {
			fmt.Fprintf(env.Stderr, "cib %s: %v\n", cmd, err)
		}
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "build records: %s\n", where)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	clouds := map[string]*azure.Machines{}
	connect := func(subscription string) (*azure.Machines, error) {
		if m, ok := clouds[subscription]; ok {
			return m, nil
		}
		m, how, err := env.machines(subscription)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(env.Stderr, "azure: subscription %s, login: %s\n", subscription, how)
		clouds[subscription] = m
		return m, nil
	}

	var results []tagResult
	for _, key := range missing {
		results = append(results, tagResult{
			rec: record.Record{Kind: record.Machine, Environment: o.environment, Platform: o.platform, Key: key},
			err: fmt.Errorf("key %s has no machine-image record of %s on %s (%s)", key, o.environment, o.platform, where),
		})
	}
	for _, rec := range recs {
		if ctx.Err() != nil {
			results = append(results, tagResult{rec: rec, err: fmt.Errorf("cancelled: %w", ctx.Err())})
			continue
		}
		res := tagImage(ctx, env, configs, set, o, rec, connect)
		results = append(results, res)
		printTagResult(env, o, res)
	}
	for _, res := range results[:len(missing)] {
		fmt.Fprintf(env.Stderr, "cib %s: %v\n", cmd, res.err)
	}

	r := env.runner()
	changed, unchanged, failed, retryable := 0, 0, 0, 0
	for _, res := range results {
		switch {
		case res.err != nil && machineimage.IsRetryable(res.err):
			failed++
			retryable++
		case res.err != nil:
			failed++
		case len(res.changes) > 0:
			changed++
		default:
			unchanged++
		}
	}
	var errs []error
	for name, v := range map[string]string{"changed": fmt.Sprint(changed), "unchanged": fmt.Sprint(unchanged), "failed": fmt.Sprint(failed)} {
		errs = append(errs, r.SetOutput(name, v))
	}
	errs = append(errs, r.AddStepSummary(tagSummary(o, where, results)))
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(env.Stderr, "cib %s: %v\n", cmd, err)
	}
	verb := "tagged"
	if o.dryRun {
		verb = "would tag"
	}
	fmt.Fprintf(env.Stdout, "%s %d image(s); %d unchanged; %d failed\n", verb, changed, unchanged, failed)
	switch {
	case failed == 0:
		return ExitOK
	case failed == retryable:
		fmt.Fprintf(env.Stderr, "cib %s: %d image(s) failed in a way a re-run may not (exit %d)\n", cmd, failed, ExitRetryable)
		return ExitRetryable
	}
	return ExitFailure
}

// selectMachineRecords returns the machine-image records of o.environment
// and o.platform narrowed by --key and --group, sorted by path, and the
// --key values that have none.
func selectMachineRecords(set *record.Set, o tagOpts) (recs []record.Record, missing []string) {
	found := map[string]bool{}
	for _, rec := range set.All() {
		if rec.Kind != record.Machine || rec.Environment != o.environment || rec.Platform != o.platform {
			continue
		}
		if len(o.keys) > 0 && !slices.Contains(o.keys, rec.Key) {
			continue
		}
		if len(o.groups) > 0 && !slices.Contains(o.groups, rec.Group) {
			continue
		}
		found[rec.Key] = true
		recs = append(recs, rec)
	}
	for _, k := range o.keys {
		if !found[k] && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	return recs, missing
}

// configsAt loads the configuration at commits, once each.
type configsAt struct {
	env       Env
	dir, repo string
	byHash    map[string]*config.Config
}

// load returns the configuration at commit hash, or nil and an exit code
// (its problems reported).
func (c *configsAt) load(hash string) (*config.Config, int) {
	if cfg, ok := c.byHash[hash]; ok {
		return cfg, ExitOK
	}
	fsys, err := configAt(c.repo, hash, c.dir)
	if err != nil {
		return nil, fail(c.env, "tag", err)
	}
	cfg, code := loadConfigFS(c.env, "tag", fsys, fmt.Sprintf("%s (at %s)", c.dir, hash[:7]))
	if cfg != nil {
		c.byHash[hash] = cfg
	}
	return cfg, code
}

// wantTags are the tags the image of machine-image record rec should
// carry, with notes on the tags left as they are.
func wantTags(env Env, configs *configsAt, set *record.Set, o tagOpts, rec record.Record) (map[string]string, []string, error) {
	repo := env.path(o.repo)
	hash, _, err := commitAt(repo, rec.Revision)
	if err != nil {
		return nil, nil, fmt.Errorf("the commit it was built from: %w (check out with fetch-depth: 0)", err)
	}
	cfg, _ := configs.load(hash)
	if cfg == nil {
		return nil, nil, fmt.Errorf("the configuration at %s, the commit it was built from, does not load", hash[:7])
	}
	k := cfg.Key(rec.Key)
	if k == nil {
		return nil, nil, fmt.Errorf("%s at %s has no image key %s", o.config, hash[:7], rec.Key)
	}
	var t *config.Target
	for i := range k.Targets {
		if k.Targets[i].Platform == o.platform && k.Targets[i].Group == rec.Group {
			t = &k.Targets[i]
		}
	}
	if t == nil {
		return nil, nil, fmt.Errorf("key %s at %s has no %s target in group %s", k.Name, hash[:7], o.platform, rec.Group)
	}
	in := machineimage.ImageTagInputs{Key: k, Target: t, Revision: hash, RunURL: rec.RunURL, Fingerprint: rec.Fingerprint}
	in.CommitTime, _ = commitTime(repo, hash)
	var notes []string
	if !k.Marketplace() {
		diskFP := cfg.DiskInputs(k, o.platform).Fingerprint()
		d, ok := set.Disk(o.environment, o.platform, k.Name)
		switch {
		case !ok:
			notes = append(notes, "no disk-image record: the disk tags are left as they are")
		case d.Fingerprint != diskFP:
			notes = append(notes, "the disk-image record is of another disk (rebuilt since): the disk tags are left as they are")
		default:
			in.DiskRevision, in.DiskTask = d.Revision, d.RunURL
			in.DiskCommitTime, _ = commitTime(repo, d.Revision) // a shallow clone may lack it: the tag is left as it is
		}
	}
	want := machineimage.ImageTags(in)
	want[machineimage.TagManaged] = "true"
	want[machineimage.TagKey] = k.Name
	want[machineimage.TagExpires] = machineimage.NoExpiry
	if rec.RunURL != "" {
		want[machineimage.TagRun] = rec.RunURL
	}
	return want, notes, nil
}

// tagImage tags the image of rec (o.dryRun: only compares).
func tagImage(ctx context.Context, env Env, configs *configsAt, set *record.Set, o tagOpts, rec record.Record,
	connect func(subscription string) (*azure.Machines, error)) tagResult {
	res := tagResult{rec: rec}
	failed := func(format string, a ...any) tagResult {
		res.err = fmt.Errorf("%s (image %s): %w", rec.Path(), rec.Image.Location, fmt.Errorf(format, a...))
		return res
	}
	id := rec.Image.Location
	subscription, ok := managedImageSubscription(id)
	if !ok {
		return failed("the record's image location is not the resource ID of a managed image")
	}
	if o.subscription != "" && !strings.EqualFold(subscription, o.subscription) {
		return failed("the image is in subscription %s, not in --subscription %s", subscription, o.subscription)
	}
	want, notes, err := wantTags(env, configs, set, o, rec)
	res.notes = notes
	if err != nil {
		return failed("%w", err)
	}
	m, err := connect(subscription)
	if err != nil {
		return failed("%w", err)
	}
	current, err := m.Tags(ctx, id)
	if errors.Is(err, azure.ErrResourceNotFound) {
		return failed("the image is missing (deleted, or the record names the wrong image): rebuild it, or record the image that replaced it")
	}
	if err != nil {
		return failed("%w", err)
	}
	diff := map[string]string{}
	for name, v := range want {
		old, ok := current[name]
		switch {
		case !ok:
			res.changes = append(res.changes, tagChange{name: name, new: v, added: true})
		case old != v:
			res.changes = append(res.changes, tagChange{name: name, old: old, new: v})
		default:
			res.unchanged++
			continue
		}
		diff[name] = v
	}
	sort.Slice(res.changes, func(i, j int) bool { return res.changes[i].name < res.changes[j].name })
	if len(diff) == 0 || o.dryRun {
		return res
	}
	if err := m.Tag(ctx, id, diff); err != nil {
		return failed("%w", err)
	}
	return res
}

// managedImageSubscription returns the subscription of id when it is the
// resource ID of a managed image:
// /subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/images/N.
func managedImageSubscription(id string) (string, bool) {
	p := strings.Split(id, "/")
	if len(p) != 9 || p[0] != "" || !strings.EqualFold(p[1], "subscriptions") || !strings.EqualFold(p[3], "resourceGroups") ||
		!strings.EqualFold(p[5], "providers") || !strings.EqualFold(p[6], "Microsoft.Compute") || !strings.EqualFold(p[7], "images") {
		return "", false
	}
	for _, s := range []string{p[2], p[4], p[8]} {
		if s == "" {
			return "", false
		}
	}
	return p[2], true
}

// printTagResult reports one image on stdout (a failure on stderr).
func printTagResult(env Env, o tagOpts, res tagResult) {
	name := res.rec.Key + " " + res.rec.Group
	if res.err != nil {
		fmt.Fprintf(env.Stderr, "cib tag: %s: %v\n", name, res.err)
		return
	}
	img := res.rec.Image.Name
	if img == "" {
		img = res.rec.Image.Location
	}
	switch {
	case len(res.changes) == 0:
		fmt.Fprintf(env.Stdout, "%s: %s: unchanged (%d tags)\n", name, img, res.unchanged)
	case o.dryRun:
		fmt.Fprintf(env.Stdout, "%s: %s: would change %d tag(s), %d unchanged (dry run)\n", name, img, len(res.changes), res.unchanged)
	default:
		fmt.Fprintf(env.Stdout, "%s: %s: changed %d tag(s), %d unchanged\n", name, img, len(res.changes), res.unchanged)
	}
	for _, c := range res.changes {
		if c.added {
			fmt.Fprintf(env.Stdout, "  + %s: %q\n", c.name, c.new)
		} else {
			fmt.Fprintf(env.Stdout, "  ~ %s: %q → %q\n", c.name, c.old, c.new)
		}
	}
	for _, n := range res.notes {
		fmt.Fprintf(env.Stdout, "  note: %s\n", n)
	}
}

// tagSummary is the step summary of cib tag.
func tagSummary(o tagOpts, where string, results []tagResult) string {
	var b strings.Builder
	title := "Tags of the machine images of " + o.environment
	if o.dryRun {
		title += " (dry run: nothing was written)"
	}
	fmt.Fprintf(&b, "### %s\n\nBuild records: %s\n\n", title, mdCell(where))
	if len(results) == 0 {
		b.WriteString("No machine-image records to tag.\n")
		return b.String()
	}
	b.WriteString("| key | group | image | result | changes |\n|---|---|---|---|---|\n")
	for _, res := range results {
		img := res.rec.Image.Name
		if img == "" {
			img = res.rec.Image.Location
		}
		if img != "" {
			img = "`" + img + "`"
		}
		var result string
		var lines []string
		switch {
		case res.err != nil:
			result = "**failed**"
			lines = append(lines, mdCell(oneLine(res.err.Error())))
		case len(res.changes) == 0:
			result = fmt.Sprintf("unchanged (%d tags)", res.unchanged)
		default:
			result = fmt.Sprintf("changed %d, unchanged %d", len(res.changes), res.unchanged)
			if o.dryRun {
				result = fmt.Sprintf("would change %d, unchanged %d", len(res.changes), res.unchanged)
			}
			for _, c := range res.changes {
				if c.added {
					lines = append(lines, fmt.Sprintf("+ `%s`: %s", c.name, mdCode(c.new)))
				} else {
					lines = append(lines, fmt.Sprintf("`%s`: %s → %s", c.name, mdCode(c.old), mdCode(c.new)))
				}
			}
		}
		for _, n := range res.notes {
			lines = append(lines, "_"+mdCell(n)+"_")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", res.rec.Key, res.rec.Group, img, result, strings.Join(lines, "<br>"))
	}
	return b.String()
}

// mdCell makes s safe in a Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

// mdCode is s as inline code in a table cell ("" shows as an empty code
// span's stand-in).
func mdCode(s string) string {
	if s == "" {
		return "_(empty)_"
	}
	return "`" + strings.ReplaceAll(mdCell(s), "`", "'") + "`"
}
