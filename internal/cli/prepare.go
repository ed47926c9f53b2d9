package cli

import (
	"context"
	"fmt"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/cib-project/cib/internal/actionsio"
	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/machineimage"
)

const prepareHelp = `
Make the build infrastructure of the selected targets exist as the
configuration describes it (spec/maintenance.md), in one environment:

  - each target's resource group, in the target's region, tagged
    cib:managed=true when created;
  - its storage account (target.storage): StorageV2, Standard_LRS, HTTPS
    only, TLS 1.2, no public blob access; with the disk-image container
    (image.target.bucket) of each ISO key whose image.target is on the
    platform;
  - its network: the NSG and its rules (rules not in the configuration are
    removed), the virtual network (address space, DNS servers) and the
    subnet (prefix, NSG);
  - with --gallery NAME, a Compute Gallery of that name in each target
    group, with one image definition per key (Windows, generalized, the
    target's machine.hyperv, default V1; publisher cib, offer NAME, SKU the
    key).

The targets are those on --platform of the keys named with --key (default:
every key with targets there), restricted to --groups when given (the plan's
prepare matrix gives both). Resources that several targets share are
prepared once.

Every resource is read before anything is written, and only what differs
is written: a second run changes nothing and says so. A resource that
exists in another region, a storage account name taken elsewhere, a
storage account of another kind or SKU, or an image definition that differs
in what Azure cannot change are errors: nothing is moved, converted or
replaced. --dry-run reports what would be created or updated and writes
nothing.

The report is printed, one resource a line ("created|updated|unchanged
KIND NAME (GROUP, REGION)[: what differed]"), and written to the step
summary. Exit codes: 0 done (or a dry run); 1 failed; 75 failed in a way a
re-run may not (throttling, a server error); 64 the command line is wrong.`

type prepareOpts struct {
	config, repo, rev, environment, platform, subscription string
	groups, gallery                                        string
	keys                                                   multiFlag
	dryRun                                                 bool
}

// galleryName is what Azure takes as a Compute Gallery name.
var galleryName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._]{0,78}[A-Za-z0-9])?$`)

// runPrepare is `cib prepare`.
func runPrepare(args []string, env Env) int {
	const cmd = "prepare"
	var o prepareOpts
	fs := newFlags(env, cmd, "--environment ENV [--key KEY]... [--groups G1,G2] [--gallery NAME] [--dry-run]", prepareHelp)
	fs.StringVar(&o.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&o.repo, "repo", ".", "the git `repository` whose configuration is read")
	fs.StringVar(&o.rev, "rev", "HEAD", "the `revision` whose configuration is read")
	fs.StringVar(&o.environment, "environment", "", "the `environment` prepared (required)")
	fs.StringVar(&o.platform, "platform", "azure", "the `cloud` prepared: azure")
	fs.StringVar(&o.subscription, "subscription", "", "the Azure `subscription` ID (default $AZURE_SUBSCRIPTION_ID)")
	fs.Var(&o.keys, "key", "an image `key` whose targets are prepared (repeatable; default: every key with targets on the platform)")
	fs.StringVar(&o.groups, "groups", "", "only the targets in these resource `groups`, comma-separated")
	fs.StringVar(&o.gallery, "gallery", "", "make a Compute Gallery `NAME` in each target group, with an image definition per key")
	fs.BoolVar(&o.dryRun, "dry-run", false, "report what would be created or updated; write nothing")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	usage := func(format string, a ...any) int {
		msg := fmt.Sprintf(format, a...)
		fmt.Fprintf(env.Stderr, "cib %s: %s\n", cmd, msg)
		prepareSummary(env, o, azure.PrepareReport{DryRun: o.dryRun}, "refused: "+msg)
		return ExitUsage
	}
	switch {
	case o.environment == "":
		return usage("--environment is required: the environment prepared")
	case o.platform != "azure":
		return usage("--platform %q: cib prepares azure only", o.platform)
	case o.gallery != "" && !galleryName.MatchString(o.gallery):
		return usage("--gallery %q: a gallery name is letters and digits, with dots and underscores inside, up to 80 characters", o.gallery)
	}
	if o.subscription == "" {
		o.subscription = env.Getenv("AZURE_SUBSCRIPTION_ID")
	}

	cfg, _, code := configAtRev(env, cmd, o.repo, o.rev, o.config)
	if cfg == nil {
		return code
	}
	if !slices.ContainsFunc(cfg.Settings.Environments, func(e config.Environment) bool { return e.Name == o.environment }) {
		return usage("--environment %q is not an environment of settings.yaml", o.environment)
	}
	sites, err := prepareSites(cfg, o)
	if err != nil {
		return usage("%v", err)
	}
	if len(sites) == 0 {
		return usage("nothing to prepare: no target on %s is selected", o.platform)
	}
	if o.subscription == "" {
		return usage("no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
	}

	machines, how, err := env.machines(o.subscription)
	if err != nil {
		return fail(env, cmd, err)
	}
	fmt.Fprintf(env.Stderr, "azure: subscription %s, login: %s\n", o.subscription, how)
	var groups []string
	for _, s := range sites {
		if !slices.Contains(groups, s.Group) {
			groups = append(groups, s.Group)
		}
	}
	fmt.Fprintf(env.Stderr, "prepare: environment %s: %d targets in %s\n", o.environment, len(sites), strings.Join(groups, ", "))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	want := azure.Infrastructure{Sites: sites, Gallery: o.gallery, DryRun: o.dryRun,
		Tags: map[string]string{machineimage.TagManaged: "true"}}
	rep, err := machines.Prepare(ctx, want, func(c azure.Change) {
		fmt.Fprintln(env.Stdout, prepareLine(c, o.dryRun))
	})
	r := env.runner()
	for _, w := range rep.Warnings {
		fmt.Fprintln(env.Stderr, "prepare: warning: "+w)
		if r.InActions() {
			r.Annotate(actionsio.Warning, "", 0, 0, "cib prepare: "+w)
		}
	}
	for name, v := range map[string]string{
		"created": fmt.Sprint(rep.Count(azure.Created)), "updated": fmt.Sprint(rep.Count(azure.Updated)),
		"unchanged": fmt.Sprint(rep.Count(azure.Unchanged)), "changed": fmt.Sprint(rep.Changed()),
	} {
		if err := r.SetOutput(name, v); err != nil {
			fmt.Fprintf(env.Stderr, "cib %s: output %s: %v\n", cmd, name, err)
		}
	}
	if err != nil {
		prepareSummary(env, o, rep, "failed: "+err.Error())
		if machineimage.IsRetryable(err) {
			fmt.Fprintf(env.Stderr, "cib %s: %v (retryable: exit %d)\n", cmd, err, ExitRetryable)
			return ExitRetryable
		}
		return fail(env, cmd, err)
	}
	total := prepareTotal(rep)
	fmt.Fprintln(env.Stdout, "prepare: "+total)
	prepareSummary(env, o, rep, total)
	return ExitOK
}

// prepareSites are the selected targets of the configuration as
// internal/azure takes them.
func prepareSites(cfg *config.Config, o prepareOpts) ([]azure.Site, error) {
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
	var groups []string
	for _, g := range strings.Split(o.groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	inGroups := func(g string) bool {
		return len(groups) == 0 || slices.ContainsFunc(groups, func(x string) bool { return strings.EqualFold(x, g) })
	}
	var sites []azure.Site
	used := map[string]bool{}
	for _, k := range keys {
		var containers []string
		if !k.Marketplace() && k.Image != nil && k.Image.Target != nil && k.Image.Target.Platform == o.platform && k.Image.Target.Bucket != "" {
			containers = []string{k.Image.Target.Bucket}
		}
		for _, t := range k.Targets {
			if t.Platform != o.platform || !inGroups(t.Group) {
				continue
			}
			used[strings.ToLower(t.Group)] = true
			sites = append(sites, azure.Site{
				Key: k.Name, Group: t.Group, Region: t.Region, Storage: t.Storage, Containers: containers,
				HyperVGeneration: t.Machine.HyperV, Network: siteNetwork(&t),
			})
		}
	}
	for _, g := range groups {
		if !used[strings.ToLower(g)] {
			return nil, fmt.Errorf("--groups: %s is the group of no selected target on %s", g, o.platform)
		}
	}
	return sites, nil
}

// siteNetwork is a target's network as internal/azure takes it (as the
// machine-image stage makes it), or nil.
func siteNetwork(t *config.Target) *machineimage.Network {
	n, err := machineimage.TargetNetwork(t)
	if err != nil {
		return nil
	}
	return &n
}

// prepareVerb is how a report shows a status: in a dry run, what would
// happen.
func prepareVerb(s azure.Status, dryRun bool) string {
	if !dryRun {
		return string(s)
	}
	switch s {
	case azure.Created:
		return "would create"
	case azure.Updated:
		return "would update"
	}
	return string(s)
}

// prepareLine is a change as a line of the report.
func prepareLine(c azure.Change, dryRun bool) string {
	return prepareVerb(c.Status, dryRun) + strings.TrimPrefix(c.String(), string(c.Status))
}

// prepareTotal is the report's last line.
func prepareTotal(rep azure.PrepareReport) string {
	if !rep.Changed() {
		return "everything already matches the configuration; nothing changed"
	}
	if rep.DryRun {
		return fmt.Sprintf("dry run: %d to create, %d to update, %d unchanged; nothing written",
			rep.Count(azure.Created), rep.Count(azure.Updated), rep.Count(azure.Unchanged))
	}
	return fmt.Sprintf("%d created, %d updated, %d unchanged", rep.Count(azure.Created), rep.Count(azure.Updated), rep.Count(azure.Unchanged))
}

// prepareSummary writes the report to the step summary: a table of the
// resources and the outcome.
func prepareSummary(env Env, o prepareOpts, rep azure.PrepareReport, outcome string) {
	var b strings.Builder
	title := "cib prepare"
	if o.environment != "" {
		title += ": " + o.environment
	}
	if rep.DryRun {
		title += " (dry run)"
	}
	fmt.Fprintf(&b, "## %s\n\n", title)
	if len(rep.Changes) > 0 {
		b.WriteString("| status | kind | name | group | region | what differed |\n|---|---|---|---|---|---|\n")
		cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
		for _, c := range rep.Changes {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", prepareVerb(c.Status, rep.DryRun), c.Kind, cell(c.Name), cell(c.Group),
				cell(c.Region), cell(strings.Join(c.Diff, "; ")))
		}
		b.WriteString("\n")
	}
	if len(rep.Warnings) > 0 {
		b.WriteString("Warnings:\n\n")
		for _, w := range rep.Warnings {
			fmt.Fprintf(&b, "- %s\n", w)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "**%s**\n", strings.ToUpper(outcome[:1])+outcome[1:])
	if err := env.runner().AddStepSummary(b.String()); err != nil {
		fmt.Fprintf(env.Stderr, "cib prepare: step summary: %v\n", err)
	}
}
