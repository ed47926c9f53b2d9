package cli

import (
	"context"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/record"
	"github.com/cib-project/cib/internal/verify"
)

const verifyHelp = `
Prove that the new images of a worker pool boot healthy (spec/maintenance.md,
"verify"): for each image the pool's configuration deploys (the newest
machine-image record of each of the pool's target groups in the environment,
exactly as cib pool-config chooses them), start one VM from it in its
target's group, network and region, wait until the VM runs and Run Command
answers a trivial PowerShell script, record the result, and delete the VM,
its OS disk and its network interface, whatever happened (on a fresh
context, so that a cancelled job still cleans up). What a killed job leaves
is tagged cib:managed=true, cib:purpose=verify and cib:expires two hours on,
for purge. No public IP is made; the administrator password is random and
never printed.

--timeout bounds each image, from its network to Run Command's answer; on a
failure the end of the VM's serial log is kept. --dry-run lists the images
that would be verified and creates nothing (nor logs in to Azure).

Each image gets one line, "healthy|unhealthy IMAGE (REGION): REASON", and a
row in the step summary's table. Exit codes: 0 every image is healthy (or a
dry run); 1 an image is unhealthy, or its record is missing; 75 an image
could not be verified for a reason a later run may not meet (throttling,
quota); 64 the command line is wrong.`

type verifyOpts struct {
	config, repo, rev, remote, branch, environment, pool, key, subscription, size string
	timeout                                                                       time.Duration
	concurrency                                                                   int
	dryRun                                                                        bool
}

// verifyTune, when set, adjusts a run's options before it starts: tests
// shorten its polls and see its passwords.
var verifyTune func(*verify.Options)

// runVerify is `cib verify`.
func runVerify(args []string, env Env) int {
	const cmd, platform = "verify", "azure"
	var o verifyOpts
	fs := newFlags(env, cmd, "--environment ENV --pool DOMAIN/VARIANT [--key KEY] [--size SIZE] [--timeout 20m] [--dry-run]", verifyHelp)
	fs.StringVar(&o.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&o.repo, "repo", ".", "the git `repository` whose configuration and records branch are read")
	fs.StringVar(&o.rev, "rev", "HEAD", "the `revision` whose configuration is read")
	fs.StringVar(&o.remote, "remote", "origin", "the `remote` whose records branch is read")
	fs.StringVar(&o.branch, "branch", "", "the records `branch` (default: records.branch in settings.yaml)")
	fs.StringVar(&o.environment, "environment", "", "the `environment` whose images are verified (required)")
	fs.StringVar(&o.pool, "pool", "", "the worker `pool`, domain/variant, whose images are verified (required)")
	fs.StringVar(&o.key, "key", "", "the image `key` of the pool (default: the key cib pool-config takes it from)")
	fs.StringVar(&o.subscription, "subscription", "", "the Azure `subscription` ID (default $AZURE_SUBSCRIPTION_ID)")
	fs.StringVar(&o.size, "size", "", "the VM `size` (default: each target's machine size)")
	fs.DurationVar(&o.timeout, "timeout", verify.DefaultTimeout, "the longest wait for one image to prove healthy")
	fs.IntVar(&o.concurrency, "concurrency", verify.DefaultConcurrency, "how many images are verified at once")
	fs.BoolVar(&o.dryRun, "dry-run", false, "list the images that would be verified; create nothing")
	if code, ok := parse(fs, args, env); !ok {
		return code
	}
	usage := usageError(env, cmd)
	switch {
	case o.environment == "":
		return usage("--environment is required: the environment whose images are verified (matrix.environment)")
	case o.pool == "":
		return usage("--pool is required: the worker pool, domain/variant, whose images are verified (matrix.pool)")
	case o.timeout <= 0:
		return usage("--timeout must be positive")
	case o.concurrency <= 0:
		return usage("--concurrency must be positive")
	}
	if o.subscription == "" {
		o.subscription = env.Getenv("AZURE_SUBSCRIPTION_ID")
	}

	cfg, _, code := configAtRev(env, cmd, o.repo, o.rev, o.config)
	if cfg == nil {
		return code
	}
	found := false
	for _, e := range cfg.Settings.Environments {
		found = found || e.Name == o.environment
	}
	if !found {
		return usage("--environment %q is not an environment of settings.yaml", o.environment)
	}
	k, p, err := verifyPool(cfg, o)
	if err != nil {
		return usage("%v", err)
	}
	if !o.dryRun && o.subscription == "" {
		return usage("no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
	}

	branch := o.branch
	if branch == "" {
		branch = cfg.Settings.RecordsBranch()
	}
	set, _, err := record.Read(env.path(o.repo), o.remote, branch)
	if err != nil {
		return fail(env, cmd, fmt.Errorf("read build records: %w", err))
	}
	images, err := verifyImages(k, p, set, o, platform, branch)
	if err != nil {
		return fail(env, cmd, err)
	}
	r := env.runner()
	if o.dryRun {
		var b strings.Builder
		fmt.Fprintf(&b, "### Verify %s in %s (dry run)\n\nNothing was created. These images would be verified:\n\n| image | key | group | region | size |\n|---|---|---|---|---|\n", p.ID(), o.environment)
		for _, img := range images {
			fmt.Fprintf(env.Stdout, "would verify %s (%s): %s in %s\n", img.ID, img.Region, img.Size, img.Group)
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", img.ID, img.Key, img.Group, img.Region, img.Size)
		}
		verifyOutputs(env, cmd, len(images), 0, 0)
		if err := r.AddStepSummary(b.String()); err != nil {
			fmt.Fprintf(env.Stderr, "cib %s: step summary: %v\n", cmd, err)
		}
		fmt.Fprintf(env.Stderr, "verify: dry run: %d image(s) of %s; nothing created\n", len(images), p.ID())
		return ExitOK
	}

	machines, how, err := env.machines(o.subscription)
	if err != nil {
		return fail(env, cmd, err)
	}
	fmt.Fprintf(env.Stderr, "azure: subscription %s, login: %s\n", o.subscription, how)
	opts := verify.Options{
		Timeout: o.timeout, Concurrency: o.concurrency, RunURL: r.RunURL(),
		Log: func(format string, a ...any) { fmt.Fprintf(env.Stderr, format+"\n", a...) },
		// Never printed; masked all the same, should anything echo it.
		Password: func() (string, error) {
			pw, err := verify.Password()
			if err == nil {
				r.Mask(pw)
			}
			return pw, err
		},
	}
	if verifyTune != nil {
		verifyTune(&opts)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The signals stay caught until cib exits, so that a second one
	// cannot cut the cleanup short.
	results := verify.Run(ctx, machines, images, opts)

	healthy, unhealthy, retryable := 0, 0, 0
	for _, res := range results {
		word := "healthy"
		switch {
		case res.Healthy:
			healthy++
		case res.Retryable:
			retryable++
			word = "unhealthy"
		default:
			unhealthy++
			word = "unhealthy"
		}
		fmt.Fprintf(env.Stdout, "%s %s (%s): %s\n", word, res.Image.ID, res.Image.Region, oneLine(res.Reason))
		for _, id := range res.Left {
			fmt.Fprintf(env.Stderr, "verify: %s was not deleted (tagged cib:expires for purge)\n", id)
		}
	}
	verifyOutputs(env, cmd, len(results), healthy, unhealthy+retryable)
	if err := r.AddStepSummary(verifySummary(p.ID(), o.environment, results)); err != nil {
		fmt.Fprintf(env.Stderr, "cib %s: step summary: %v\n", cmd, err)
	}
	switch {
	case unhealthy > 0 || (retryable > 0 && ctx.Err() != nil):
		fmt.Fprintf(env.Stderr, "cib %s: %d of %d image(s) of %s unhealthy\n", cmd, unhealthy+retryable, len(results), p.ID())
		return ExitFailure
	case retryable > 0:
		fmt.Fprintf(env.Stderr, "cib %s: %d of %d image(s) of %s could not be verified (retryable: exit %d)\n", cmd, retryable, len(results), p.ID(), ExitRetryable)
		return ExitRetryable
	}
	fmt.Fprintf(env.Stderr, "verify: %d image(s) of %s healthy\n", healthy, p.ID())
	return ExitOK
}

// verifyPool is the key and pool --pool names: with --key, that key's
// pool; else the first key that has it, as cib pool-config takes it.
func verifyPool(cfg *config.Config, o verifyOpts) (*config.Key, config.Pool, error) {
	if o.key == "" {
		sel, err := selectPools(cfg, poolConfigOpts{pools: multiFlag{o.pool}})
		if err != nil {
			return nil, config.Pool{}, err
		}
		return sel[0].key, sel[0].pool, nil
	}
	k := cfg.Key(o.key)
	if k == nil {
		return nil, config.Pool{}, fmt.Errorf("--key %q is not an image key of the configuration", o.key)
	}
	for _, p := range k.Pools() {
		if p.ID() == o.pool {
			return k, p, nil
		}
	}
	return nil, config.Pool{}, fmt.Errorf("--pool %q is not a pool of key %s", o.pool, k.Name)
}

// verifyImages are the images the pool's configuration deploys, as cib
// pool-config chooses them: for each of the pool's target groups on the
// platform, the newest machine-image record of the key in the
// environment.
func verifyImages(k *config.Key, p config.Pool, set *record.Set, o verifyOpts, platform, branch string) ([]verify.Image, error) {
	var out []verify.Image
	for _, pi := range poolImages(k, p, set, o.environment, platform, branch) {
		if pi.err != nil {
			return nil, pi.err
		}
		t, id := pi.target, pi.image
		if !strings.HasPrefix(id, "/") && o.subscription != "" {
			id = managedImageID(o.subscription, t.Group, id) // a record that names the image only
		}
		net, err := machineimage.TargetNetwork(t)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.ID(), err)
		}
		img := verify.Image{ID: id, Key: k.Name, Group: t.Group, Region: t.RegionName(), Network: net, Size: o.size}
		if img.Size == "" {
			img.Size = t.Machine.VMSize()
		}
		if len(t.Disk) > 0 {
			img.OSDiskSKU = "Standard_LRS"
			if strings.EqualFold(t.Disk[0].Variant, "ssd") {
				img.OSDiskSKU = "StandardSSD_LRS"
			}
		}
		out = append(out, img)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pool %s: key %s has no %s target in the pool", p.ID(), k.Name, platform)
	}
	return out, nil
}

func verifyOutputs(env Env, cmd string, images, healthy, unhealthy int) {
	for name, n := range map[string]int{"images": images, "healthy": healthy, "unhealthy": unhealthy} {
		if err := env.runner().SetOutput(name, fmt.Sprint(n)); err != nil {
			fmt.Fprintf(env.Stderr, "cib %s: output %s: %v\n", cmd, name, err)
		}
	}
}

// verifySummary is the step summary: a row per image, then the serial
// log's tail of each unhealthy one.
func verifySummary(pool, environment string, results []verify.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Verify %s in %s\n\n| image | region | result | running after | answered after | reason |\n|---|---|---|---|---|---|\n", pool, environment)
	cell := func(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }
	dur := func(d time.Duration) string {
		if d <= 0 {
			return "–"
		}
		return d.Round(time.Second).String()
	}
	for _, res := range results {
		word := "✅ healthy"
		if !res.Healthy {
			word = "❌ unhealthy"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", res.Image.ID, res.Image.Region, word, dur(res.Running), dur(res.Answered), cell(res.Reason))
	}
	for _, res := range results {
		if len(res.Left) > 0 {
			fmt.Fprintf(&b, "\nNot deleted (tagged cib:expires for purge): %s\n", codeList(res.Left))
		}
		if !res.Healthy && len(res.SerialTail) > 0 {
			fmt.Fprintf(&b, "\n<details><summary>Serial log of %s (VM %s), last lines</summary>\n\n```text\n%s\n```\n\n</details>\n",
				res.Image.ID, res.VM, strings.Join(res.SerialTail, "\n"))
		}
	}
	return b.String()
}
