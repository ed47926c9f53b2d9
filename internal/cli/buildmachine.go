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
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/record"
)

const buildMachineHelp = `
Build one machine image of the plan: boot the key's disk image (or its
marketplace image) in the target resource group --group of --platform azure,
let the guest's bootstrap run, wait for it to generalize and shut down,
capture the image, replicate it to the target's other regions, tag it, and
delete everything the run created (spec/machine-image.md).

The configuration is read from the commit that is built (--rev). For a key
built from an ISO, the VHD is the one the disk-image record of (--environment,
--platform, KEY) on the records branch names (fetch the branch first: git
fetch origin +refs/heads/cib-records:refs/remotes/origin/cib-records); it is
imported from the storage account --storage-account-id.

Credentials, in this order:
  OIDC federation: with permissions: id-token: write, and AZURE_CLIENT_ID and
    AZURE_TENANT_ID naming an app registration (or managed identity) with a
    federated credential for the repository, the workflow's ID token is
    exchanged for an Azure token; no secret is stored anywhere;
  otherwise azidentity's default chain: AZURE_CLIENT_ID, AZURE_TENANT_ID and
    AZURE_CLIENT_SECRET (or a certificate), a managed identity, or the Azure
    CLI session of azure/login.
The subscription is --subscription, else AZURE_SUBSCRIPTION_ID.

Bootstrap command tokens get their values from --token NAME=VALUE (repeat it);
values are masked in the Actions log and never printed. Boot diagnostics
(screenshots and serial logs) are saved to --artifacts at each change of the
VM's state and on failure.

SIGINT or SIGTERM (what GitHub sends a cancelled job) starts deleting what
the run created, without waiting for long deletes; cib exits within 8 s, and
what is left carries cib:expires for purge.

Exit codes: 0 built, or skipped because the image exists (unless
--overwrite); 1 failed for good (bad configuration, size not offered, missing
disk record); 75 failed in a way a later run may not (quota, throttling, a
guest that did not reach a state in time): re-run the job; 64 the command line
is wrong.`

type machineOpts struct {
	config, repo, rev, environment, platform, group string
	subscription, fingerprint                       string
	storageAccountID, gallery, definition           string
	artifacts, remote, branch                       string
	overwrite, disableCleanup, record               bool
	tokens                                          tokenFlags
}

// tokenFlags are repeated --token NAME=VALUE flags. Its String shows the
// names only: flag prints it, and the values are secrets.
type tokenFlags map[string]string

func (t *tokenFlags) String() string {
	if t == nil || *t == nil {
		return ""
	}
	var names []string
	for n := range *t {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func (t *tokenFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" {
		// Never quote s: it may hold the value.
		return errors.New("want NAME=VALUE")
	}
	if *t == nil {
		*t = tokenFlags{}
	}
	(*t)[strings.TrimSpace(name)] = value
	return nil
}

func machineFlags(env Env, o *machineOpts) *flagSet {
	fs := newFlags(env, "build", "machine-image KEY --group GROUP --environment ENV [flags]", buildMachineHelp)
	fs.StringVar(&o.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&o.repo, "repo", ".", "the git `repository` whose commit is built (its records branch gives the disk image; --record records there)")
	fs.StringVar(&o.rev, "rev", "HEAD", "the `revision` built")
	fs.StringVar(&o.environment, "environment", "", "the `environment` built for (required)")
	fs.StringVar(&o.platform, "platform", "azure", "the `cloud` built on: azure")
	fs.StringVar(&o.group, "group", "", "the target's resource `group` (required)")
	fs.StringVar(&o.subscription, "subscription", "", "the Azure `subscription` ID (default $AZURE_SUBSCRIPTION_ID)")
	fs.StringVar(&o.fingerprint, "fingerprint", "", "the `fingerprint` the plan computed; refused if the inputs differ")
	fs.StringVar(&o.storageAccountID, "storage-account-id", "", "the resource `ID` of the storage account holding the disk image's VHD (ISO keys)")
	fs.StringVar(&o.gallery, "gallery", "", "the Compute `Gallery` replicated versions go to (needed when the target has other regions)")
	fs.StringVar(&o.definition, "definition", "", "the gallery image `definition` replicated versions go to")
	fs.StringVar(&o.artifacts, "artifacts", "cib-artifacts", "the `folder` screenshots and serial logs go to")
	fs.BoolVar(&o.overwrite, "overwrite", false, "build even when the image exists (overwrite-machine-image)")
	fs.BoolVar(&o.disableCleanup, "disable-cleanup", false, "keep the build VM and its resources (still tagged to expire)")
	fs.BoolVar(&o.record, "record", false, "record the build on the records branch once the image is captured")
	fs.StringVar(&o.remote, "remote", "origin", "the `remote` whose records branch is read, and pushed to with --record")
	fs.StringVar(&o.branch, "branch", "", "the records `branch` (default: records.branch in settings.yaml)")
	fs.Var(&o.tokens, "token", "a bootstrap command token's value, `NAME=VALUE` (repeatable; masked, never printed)")
	return fs
}

// runBuildMachine is `cib build machine-image`; args follow the stage.
func runBuildMachine(args []string, env Env) int {
	const cmd = "build machine-image"
	var o machineOpts
	fs := machineFlags(env, &o)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if code, ok := parse(fs, args, env); !ok {
			return code
		}
		fmt.Fprintln(env.Stderr, "cib build machine-image: name the image key: cib build machine-image KEY --group GROUP (cib build machine-image --help)")
		return ExitUsage
	}
	name := args[0]
	if code, ok := parse(fs, args[1:], env); !ok {
		return code
	}
	r := env.runner()
	for _, v := range o.tokens {
		r.Mask(v)
	}
	usage := usageError(env, cmd)
	switch {
	case o.platform != "azure":
		return usage("--platform %q: machine images are built on azure only", o.platform)
	case o.group == "":
		return usage("--group is required: the target resource group of the matrix entry (matrix.group)")
	case o.environment == "":
		return usage("--environment is required: the environment built for (matrix.environment)")
	}
	if o.subscription == "" {
		o.subscription = env.Getenv("AZURE_SUBSCRIPTION_ID")
	}

	cfg, hash, code := configAtRev(env, cmd, o.repo, o.rev, o.config)
	if cfg == nil {
		return code
	}
	if !slices.ContainsFunc(cfg.Settings.Environments, func(e config.Environment) bool { return e.Name == o.environment }) {
		return usage("--environment %q is not an environment of settings.yaml", o.environment)
	}
	k := cfg.Key(name)
	if k == nil {
		return usage("%q is not an image key of %s", name, o.config)
	}
	var t *config.Target
	var groups []string
	for i := range k.Targets {
		if k.Targets[i].Platform != o.platform {
			continue
		}
		groups = append(groups, k.Targets[i].Group)
		if k.Targets[i].Group == o.group {
			t = &k.Targets[i]
		}
	}
	if t == nil {
		list := "none"
		if len(groups) > 0 {
			list = strings.Join(groups, ", ")
		}
		return usage("key %s has no %s target in group %q; its %s groups: %s", k.Name, o.platform, o.group, o.platform, list)
	}
	if o.subscription == "" {
		return usage("no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
	}
	if !k.Marketplace() && o.storageAccountID == "" {
		return usage("key %s boots its disk image, which is imported from a storage account: pass --storage-account-id /subscriptions/…/providers/Microsoft.Storage/storageAccounts/NAME", k.Name)
	}

	in := machineimage.BuildInputs{
		Key: k, Target: t, Environment: o.environment, Timeouts: cfg.Settings.Timeouts,
		Revision: hash, RunURL: r.RunURL(), Tokens: o.tokens,
		Gallery: o.gallery, Definition: o.definition,
		Overwrite: o.overwrite, DisableCleanup: o.disableCleanup,
		StorageAccountID: o.storageAccountID,
		ArtifactsDir:     env.path(o.artifacts),
		Log:              func(format string, a ...any) { fmt.Fprintf(env.Stderr, format+"\n", a...) },
		Mask:             r.Mask,
	}
	in.CommitTime, _ = commitTime(env.path(o.repo), hash)
	diskFP := ""
	if !k.Marketplace() {
		diskFP = cfg.DiskInputs(k, o.platform).Fingerprint()
		if err := diskFromRecord(env, cfg, o, k, diskFP, &in); err != nil {
			return fail(env, cmd, err)
		}
	}
	in.Fingerprint = cfg.MachineInputs(k, t, diskFP).Fingerprint()
	if o.fingerprint != "" && o.fingerprint != in.Fingerprint {
		return fail(env, cmd, fmt.Errorf("the inputs' fingerprint is %s, not %s as planned: the configuration differs from the commit the plan was made for", in.Fingerprint, o.fingerprint))
	}

	machines, how, err := env.machines(o.subscription)
	if err != nil {
		return fail(env, cmd, err)
	}
	fmt.Fprintf(env.Stderr, "azure: subscription %s, login: %s\n", o.subscription, how)
	in.Cloud = machines
	if env.TuneMachineImage != nil {
		env.TuneMachineImage(&in)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The signals stay caught until cib exits: a second one (the runner's
	// SIGTERM after its SIGINT) must not cut the summary short.
	res, err := machineimage.Build(ctx, in)
	cancelled := ctx.Err() != nil
	if res.ImageID == "" && res.Skipped {
		res.ImageID = managedImageID(o.subscription, t.Group, res.ImageName)
	}
	if ferr := finishMachineImage(ctx, env, cfg, k, t, o, hash, in.Fingerprint, res, err); ferr != nil {
		if err == nil {
			return fail(env, cmd, ferr)
		}
		fmt.Fprintf(env.Stderr, "cib %s: %v\n", cmd, ferr)
	}
	switch {
	case err == nil:
		return ExitOK
	case cancelled:
		fmt.Fprintf(env.Stderr, "cib %s: cancelled: %v\n", cmd, err)
		return ExitFailure
	case machineimage.IsRetryable(err):
		fmt.Fprintf(env.Stderr, "cib %s: %v (retryable: exit %d)\n", cmd, err, ExitRetryable)
		return ExitRetryable
	}
	return fail(env, cmd, err)
}

// machines makes the Azure clients of subscription: Env.Azure's, or
// logged in to Azure (OIDC through the runner's ID token when the job
// may request one, else the default chain).
func (e Env) machines(subscription string) (*azure.Machines, string, error) {
	if e.Azure != nil {
		m, err := e.Azure(subscription)
		return m, "stand-in", err
	}
	r := e.runner()
	co := azure.CredentialOptions{Getenv: e.Getenv}
	if r.CanRequestIDToken() {
		co.IDToken = r.IDToken
	}
	return azure.Connect(subscription, co)
}

// diskFromRecord fills in the disk image of an ISO key from its
// disk-image record on the records branch.
func diskFromRecord(env Env, cfg *config.Config, o machineOpts, k *config.Key, diskFP string, in *machineimage.BuildInputs) error {
	branch := o.branch
	if branch == "" {
		branch = cfg.Settings.RecordsBranch()
	}
	set, src, err := record.Read(env.path(o.repo), o.remote, branch)
	if err != nil {
		return fmt.Errorf("read build records: %w", err)
	}
	rec, ok := set.Disk(o.environment, o.platform, k.Name)
	if !ok {
		where := "there is no records branch " + branch
		if src.Ref != "" {
			where = fmt.Sprintf("none on %s at %s", src.Ref, src.Commit[:7])
		}
		return fmt.Errorf("key %s has no disk-image record for environment %s on %s (%s): build the disk image first (cib build disk-image %s --record), or fetch the records branch (git fetch origin +refs/heads/%s:refs/remotes/%s/%s)",
			k.Name, o.environment, o.platform, where, k.Name, branch, o.remote, branch)
	}
	loc := rec.Image.Location
	if !strings.HasPrefix(loc, "https://") && !strings.HasPrefix(loc, "http://") {
		return fmt.Errorf("the disk-image record of %s (%s) locates the image at %q, not at a blob URL: rebuild the disk image into an azure container (cib build disk-image %s --store azure --record)", k.Name, rec.Path(), loc, k.Name)
	}
	if rec.Fingerprint != diskFP {
		return fmt.Errorf("the disk-image record of %s (%s) is of fingerprint %s, but this commit's disk inputs make %s: build the disk image first", k.Name, rec.Path(), rec.Fingerprint, diskFP)
	}
	in.DiskBlobURL, in.DiskRevision, in.DiskTask = loc, rec.Revision, rec.RunURL
	in.DiskCommitTime, _ = commitTime(env.path(o.repo), rec.Revision) // a shallow clone may lack it: the tag is left out
	return nil
}

// commitTime is the committer time of commit hash.
func commitTime(dir, hash string) (time.Time, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return time.Time{}, err
	}
	c, err := repo.CommitObject(plumbing.NewHash(hash))
	if err != nil {
		return time.Time{}, err
	}
	return c.Committer.When, nil
}

// managedImageID is the resource ID of managed image name in group.
func managedImageID(subscription, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/images/%s", subscription, group, name)
}

// finishMachineImage writes the outputs and the step summary of a build,
// whatever its outcome, and records a successful one.
func finishMachineImage(ctx context.Context, env Env, cfg *config.Config, k *config.Key, t *config.Target, o machineOpts,
	hash, fp string, res machineimage.BuildResult, buildErr error) error {
	r := env.runner()
	switch {
	case buildErr != nil:
	case res.Skipped:
		fmt.Fprintf(env.Stdout, "machine image %s exists: skipped (%s)\n", res.ImageName, res.ImageID)
	default:
		fmt.Fprintf(env.Stdout, "built machine image %s (%s) in %s\n", res.ImageName, res.ImageID, strings.Join(res.Regions, ", "))
	}
	outputs := map[string]string{
		"image-name": res.ImageName, "image-id": res.ImageID, "version-id": res.VersionID,
		"regions": strings.Join(res.Regions, ","), "skipped": fmt.Sprint(res.Skipped),
		"fingerprint": fp, "artifacts": env.path(o.artifacts), "failed-phase": res.Failed,
	}
	var errs []error
	for name, v := range outputs {
		if err := r.SetOutput(name, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.AddStepSummary(machineImageSummary(k.Name, t.Group, res, buildErr)); err != nil {
		errs = append(errs, err)
	}
	if buildErr != nil || !o.record {
		return errors.Join(errs...)
	}
	ro := recordOpts{stage: "machine-image", config: o.config, repo: o.repo, remote: o.remote, branch: o.branch,
		environment: o.environment, platform: o.platform, key: k.Name, group: t.Group,
		imageName: res.ImageName, imageLocation: res.ImageID, fingerprint: fp}
	rec, err := ro.build(cfg)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	rec.Revision, rec.RunURL = hash, r.RunURL()
	if err := rec.Validate(); err != nil {
		return errors.Join(append(errs, err)...)
	}
	commit, branch, err := pushRecord(context.WithoutCancel(ctx), env, cfg, ro, rec)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("the image is %s, but recording it failed (run cib record machine-image --key %s --group %s --environment %s --image-name %s --image-location %s to retry): %w",
			res.ImageID, k.Name, t.Group, o.environment, res.ImageName, res.ImageID, err))...)
	}
	fmt.Fprintf(env.Stdout, "recorded %s at %s (%s)\n", rec.Path(), commit[:7], branch)
	return errors.Join(errs...)
}

// serialTailLines bounds the serial log lines the step summary shows.
const serialTailLines = 30

// machineImageSummary is the step summary of a machine-image job.
func machineImageSummary(key, group string, res machineimage.BuildResult, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Machine image %s in %s\n\n", key, group)
	switch {
	case res.Skipped:
		fmt.Fprintf(&b, "`%s` exists; nothing was built (overwrite-machine-image builds it again).\n\n| | |\n|---|---|\n| image id | `%s` |\n", res.ImageName, res.ImageID)
		return b.String()
	case err != nil:
		phase := res.Failed
		if phase == "" {
			phase = "?"
		}
		fmt.Fprintf(&b, "**Failed in phase %s**: %s\n\n", phase, oneLine(err.Error()))
		if machineimage.IsRetryable(err) {
			fmt.Fprintf(&b, "The failure may not recur: re-run the job (exit %d).\n\n", ExitRetryable)
		}
	}
	b.WriteString("| | |\n|---|---|\n")
	if res.ImageName != "" {
		fmt.Fprintf(&b, "| image | `%s` |\n", res.ImageName)
	}
	if res.ImageID != "" {
		fmt.Fprintf(&b, "| image id | `%s` |\n", res.ImageID)
	}
	if res.VersionID != "" {
		fmt.Fprintf(&b, "| gallery version | `%s` |\n", res.VersionID)
	}
	if len(res.Regions) > 0 {
		fmt.Fprintf(&b, "| regions replicated | %s |\n", strings.Join(res.Regions, ", "))
	}
	if len(res.Phases) > 0 {
		b.WriteString("\n| phase | duration |\n|---|---|\n")
		var total time.Duration
		for _, p := range res.Phases {
			mark := ""
			if p.Name == res.Failed && err != nil {
				mark = " (failed)"
			}
			fmt.Fprintf(&b, "| %s%s | %s |\n", p.Name, mark, p.Duration.Round(time.Second))
			total += p.Duration
		}
		fmt.Fprintf(&b, "| total | %s |\n", total.Round(time.Second))
	}
	if len(res.Artifacts) > 0 {
		fmt.Fprintf(&b, "\n%d boot diagnostics files (screenshots, serial logs) are in the job's artifacts.\n", len(res.Artifacts))
	}
	if len(res.Kept) > 0 {
		fmt.Fprintf(&b, "\nKept (disable-cleanup; they expire): %s\n", codeList(res.Kept))
	}
	if len(res.Left) > 0 {
		fmt.Fprintf(&b, "\nNot deleted (tagged cib:expires for purge): %s\n", codeList(res.Left))
	}
	if err != nil && len(res.SerialTail) > 0 {
		tail := res.SerialTail
		if len(tail) > serialTailLines {
			tail = tail[len(tail)-serialTailLines:]
		}
		fmt.Fprintf(&b, "\nLast lines of the serial log:\n\n```text\n%s\n```\n", strings.Join(tail, "\n"))
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func codeList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "`" + id + "`"
	}
	return strings.Join(q, ", ")
}
