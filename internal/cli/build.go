package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/diskimage"
	"github.com/cib-project/cib/internal/unattend"
)

const buildHelp = `
Build what a job of the plan builds. The stage is disk-image: turn the key's
Windows ISO into a fixed VHD with its unattend.xml, packages, drivers,
registry edits and boot files, and store it (spec/disk-image.md); or
machine-image: boot it in Azure and capture a machine image (the flags below
are disk-image's; see cib build machine-image --help).

On a Linux runner the wimlib builder does it without a hypervisor; it needs
wimtools, ntfs-3g, p7zip-full, libhivex-bin, libwin-hivex-perl, mtools,
dosfstools and grub-pc-bin (the build-disk-image action installs them). On a
Windows runner the dism builder runs a generated PowerShell script
(diskpart, DISM, robocopy, bcdboot, reg) as administrator; it needs 7-Zip
for the ISO and lists the WIM's images with dism itself. --builder auto (the default) takes the key's
image.builder when set, else the runner's; a builder the runner cannot run
is refused.

The image is built for the cloud --platform names (azure): it selects the
shared packages, drivers, commands and services that apply, and names the
image. The configuration is read from the commit that is built (--rev), so
that the image's name and contents agree: commit a change before building it.

Where the image goes (--store; default the key's image.target platform):
  azure  a page blob in the container --container (default: image.target's
         bucket) of --storage-account, uploading only the non-zero ranges.
         Credentials: AZURE_STORAGE_CONNECTION_STRING, or the azure/login
         session / AZURE_* variables.
  local  a file under --store-dir (default: image.target's bucket, else
         cib-images); no cloud account needed.

An image already stored under its name with the same fingerprint is not
built again (exit 0, says so) unless --overwrite. After the image is stored,
and never before, the manifest (image-bucket-resource.json) and the
unattend.xml with its password redacted are written to --artifacts/KEY,
and with --record the build is recorded on the records branch.

Exit codes: 0 built or already there; 1 failed (nothing is left under the
image's name, and the work files are removed); 64 the command line is wrong.`

type buildOpts struct {
	config, repo, rev, environment, platform string
	builder, workDir, store, storeDir        string
	artifacts                                string
	iso, isoSHA256, fingerprint              string
	storageAccount, container, blobEndpoint  string
	overwrite, record                        bool
	remote, branch                           string
}

func buildFlags(env Env, o *buildOpts) *flagSet {
	fs := newFlags(env, "build", "disk-image KEY [flags]", buildHelp)
	fs.StringVar(&o.config, "config", "config", "the configuration `folder`")
	fs.StringVar(&o.repo, "repo", ".", "the git `repository` whose commit is built (and where --record records)")
	fs.StringVar(&o.rev, "rev", "HEAD", "the `revision` built; its sha names the image")
	fs.StringVar(&o.environment, "environment", "", "the `environment` built for (needed by --record)")
	fs.StringVar(&o.platform, "platform", "azure", "the `cloud` the image is for: selects the shared entries and names the image")
	fs.StringVar(&o.store, "store", "", "where the image goes: `azure` or local (default: the key's image.target platform)")
	fs.StringVar(&o.builder, "builder", "auto", "`wimlib` (Linux), dism (Windows) or auto: image.builder, else the runner's")
	fs.StringVar(&o.workDir, "work-dir", "", "scratch `folder`, emptied whatever happens (default $RUNNER_TEMP or the system's)")
	fs.StringVar(&o.storeDir, "store-dir", "", "the `folder` images go to with --store local (default: image.target's bucket, else cib-images)")
	fs.StringVar(&o.artifacts, "artifacts", "cib-artifacts", "the `folder` the manifest and redacted unattend.xml go to, under KEY/")
	fs.StringVar(&o.iso, "iso", "", "build from this ISO (`url or path`) instead of the key's iso.source")
	fs.StringVar(&o.isoSHA256, "iso-sha256", "", "the SHA-256 the ISO must have (default: iso.source.sha256)")
	fs.StringVar(&o.fingerprint, "fingerprint", "", "the `fingerprint` the plan computed; refused if the inputs differ")
	fs.StringVar(&o.storageAccount, "storage-account", "", "the Azure storage `account` of the image container and azure sources")
	fs.StringVar(&o.container, "container", "", "the blob `container` images go to (default: image.target.bucket when it is on azure)")
	fs.StringVar(&o.blobEndpoint, "blob-endpoint", "", "the blob service `url`, for clouds other than Azure's public one")
	fs.BoolVar(&o.overwrite, "overwrite", false, "rebuild even when the image is there with the same fingerprint (overwrite-disk-image)")
	fs.BoolVar(&o.record, "record", false, "record the build on the records branch once the image is stored")
	fs.StringVar(&o.remote, "remote", "origin", "with --record: push to this `remote`")
	fs.StringVar(&o.branch, "branch", "", "with --record: the records `branch` (default: records.branch in settings.yaml)")
	return fs
}

func runBuild(args []string, env Env) int {
	var o buildOpts
	fs := buildFlags(env, &o)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if code, ok := parse(fs, args, env); !ok {
			return code
		}
		fmt.Fprintln(env.Stderr, "cib build: name the stage and the key: cib build disk-image KEY, or cib build machine-image KEY --group GROUP (cib build --help)")
		return ExitUsage
	}
	if args[0] == "machine-image" {
		return runBuildMachine(args[1:], env)
	}
	if args[0] != "disk-image" {
		fmt.Fprintf(env.Stderr, "cib build: unknown stage %q: cib build disk-image KEY builds a disk image, cib build machine-image KEY --group GROUP a machine image (cib build --help)\n", args[0])
		return ExitUsage
	}
	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		fmt.Fprintln(env.Stderr, "cib build disk-image: name the image key: cib build disk-image KEY (cib build --help)")
		return ExitUsage
	}
	name := args[1]
	if code, ok := parse(fs, args[2:], env); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "cib build disk-image: unexpected argument %q (flags go after the key)\n", fs.Arg(0))
		return ExitUsage
	}
	cfg, hash, code := configAtRev(env, "build disk-image", o.repo, o.rev, o.config)
	if cfg == nil {
		return code
	}
	k := cfg.Key(name)
	if k == nil {
		fmt.Fprintf(env.Stderr, "cib build disk-image: %q is not an image key of %s\n", name, o.config)
		return ExitUsage
	}
	if k.Marketplace() || k.Image == nil {
		fmt.Fprintf(env.Stderr, "cib build disk-image: key %s starts from a marketplace image and has no disk image to build\n", name)
		return ExitUsage
	}
	if err := o.check(cfg); err != nil {
		fmt.Fprintf(env.Stderr, "cib build disk-image: %v\n", err)
		return ExitUsage
	}
	builder, err := chooseBuilder(o.builder, k, runtime.GOOS)
	if err != nil {
		fmt.Fprintf(env.Stderr, "cib build disk-image: %v\n", err)
		return ExitUsage
	}
	o.builder = builder
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := buildDiskImage(ctx, env, cfg, k, hash, o); err != nil {
		return fail(env, "build disk-image", err)
	}
	return ExitOK
}

// check refuses option combinations that cannot work, before anything is
// fetched or created.
func (o *buildOpts) check(cfg *config.Config) error {
	if !slices.Contains(config.SupportedPlatforms, o.platform) {
		return fmt.Errorf("--platform %q: the cloud the image is for must be one of %s (a local folder is --store local)", o.platform, strings.Join(config.SupportedPlatforms, ", "))
	}
	switch o.store {
	case "", "azure", "local":
	default:
		return fmt.Errorf("--store %q: use azure or local", o.store)
	}
	switch o.builder {
	case "auto", diskimage.BuilderWimlib, diskimage.BuilderDism:
	default:
		return fmt.Errorf("--builder %q: use wimlib, dism or auto", o.builder)
	}
	if o.record {
		known := false
		for _, e := range cfg.Settings.Environments {
			known = known || e.Name == o.environment
		}
		if !known {
			return fmt.Errorf("--record needs --environment, one of the environments of settings.yaml (got %q)", o.environment)
		}
	}
	return nil
}

// storeOf says where a key's disk image goes: --store, else the platform
// of the key's image.target (azure or local), and the container or folder:
// --container / --store-dir, else image.target's bucket when it is of that
// kind, else (local only) cib-images.
func storeOf(k *config.Key, o buildOpts) (kind, bucket string, err error) {
	t := k.Image.Target
	kind = o.store
	if kind == "" {
		switch {
		case o.container != "":
			kind = "azure"
		case o.storeDir != "":
			kind = "local"
		case t != nil && (t.Platform == "azure" || t.Platform == "local"):
			kind = t.Platform
		default:
			where := "has no image.target"
			if t != nil {
				where = fmt.Sprintf("has image.target %s bucket %q", t.Platform, t.Bucket)
			}
			return "", "", fmt.Errorf("key %s %s, and cib stores disk images in azure or a local folder: pass --store azure --container NAME or --store local --store-dir DIR, or set image.target to {platform: azure, bucket: <container>}", k.Name, where)
		}
	}
	bucket = o.container
	if kind == "local" {
		bucket = o.storeDir
	}
	if bucket == "" && t != nil && t.Platform == kind {
		bucket = t.Bucket
	}
	switch {
	case bucket == "" && kind == "local":
		bucket = "cib-images"
	case bucket == "":
		return "", "", fmt.Errorf("key %s: no azure container for the image: pass --container NAME or set image.target to {platform: azure, bucket: <container>}", k.Name)
	}
	return kind, bucket, nil
}

// chooseBuilder resolves the disk-image builder for a runner of the given
// GOOS: an explicit --builder wins, then the key's image.builder, then the
// runner's own (wimlib on Linux, dism on Windows). A builder that cannot
// run on this runner is refused.
func chooseBuilder(flag string, k *config.Key, goos string) (string, error) {
	builder, from := flag, "--builder "+flag
	if builder == "auto" || builder == "" {
		builder, from = diskimage.BuilderWimlib, "the runner's builder "
		if goos == "windows" {
			builder = diskimage.BuilderDism
		}
		from += builder
		if k.Image != nil && k.Image.Builder != "" {
			builder = k.Image.Builder
			from = fmt.Sprintf("key %s's image.builder: %s", k.Name, builder)
		}
	}
	switch {
	case builder == diskimage.BuilderDism && goos != "windows":
		return "", fmt.Errorf("%s: the dism builder needs a Windows runner (it runs diskpart, DISM, bcdboot and reg through PowerShell) and this one is %s: use runs-on: windows-*, or the wimlib builder on Linux", from, goos)
	case builder == diskimage.BuilderWimlib && goos == "windows":
		return "", fmt.Errorf("%s: the wimlib builder needs a Linux runner (wimtools, ntfs-3g, hivex) and this one is windows: use runs-on: ubuntu-*, or the dism builder on Windows", from)
	case builder != diskimage.BuilderWimlib && builder != diskimage.BuilderDism:
		return "", fmt.Errorf("%s: unknown builder: use wimlib or dism", from)
	}
	return builder, nil
}

// buildDiskImage fetches the ISO, runs diskimage.Build into the store the
// platform names, then writes the artifacts and the record.
func buildDiskImage(ctx context.Context, env Env, cfg *config.Config, k *config.Key, hash string, o buildOpts) error {
	r := env.runner()
	logf := func(format string, a ...any) { fmt.Fprintf(env.Stderr, format+"\n", a...) }
	inputs := cfg.DiskInputs(k, o.platform)
	fp := inputs.Fingerprint()
	if o.fingerprint != "" && o.fingerprint != fp {
		return fmt.Errorf("the inputs' fingerprint is %s, not %s as planned: the configuration differs from the commit the plan was made for", fp, o.fingerprint)
	}
	workDir := o.workDir
	if workDir == "" {
		workDir = env.Getenv("RUNNER_TEMP")
	}
	if workDir == "" {
		workDir = os.TempDir()
	}
	workDir = env.path(workDir)

	openContainer := func(name string) (*azure.ContainerClient, error) {
		co := azure.ContainerOptions{Account: o.storageAccount, Container: name, Endpoint: o.blobEndpoint, Getenv: env.Getenv}
		if r := env.runner(); r.CanRequestIDToken() {
			co.IDToken = r.IDToken
		}
		return azure.NewContainerClient(co)
	}
	var (
		store    diskimage.Store
		uploaded *azure.Result
	)
	kind, bucket, err := storeOf(k, o)
	if err != nil {
		return err
	}
	switch kind {
	case "local":
		store = diskimage.LocalStore{Dir: env.path(bucket)}
	case "azure":
		c, err := openContainer(bucket)
		if err != nil {
			return err
		}
		store = azure.Store{
			Client: c,
			Upload: azure.Upload{Progress: func(p azure.Progress) {
				logf("upload: %s sent, %s of zeros skipped, %.1f MB/s, about %s left",
					size(p.Sent), size(p.Skipped), p.Rate/1e6, p.ETA.Round(time.Second))
			}},
			Uploaded: func(res azure.Result) { uploaded = &res },
			Log:      logf,
		}
	}

	fetcher := &diskimage.Fetcher{
		HTTP:  &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: time.Minute, TLSHandshakeTimeout: 30 * time.Second}},
		Blobs: azure.Blobs{Open: openContainer},
		Progress: throttled(func(done, total int64) {
			if total > 0 {
				logf("fetch: %s of %s (%d%%)", size(done), size(total), done*100/total)
			} else {
				logf("fetch: %s", size(done))
			}
		}),
	}
	src := k.ISO.Source
	if o.iso != "" {
		src = config.Location{Platform: "local", Path: env.path(o.iso)}
		if strings.HasPrefix(o.iso, "https://") || strings.HasPrefix(o.iso, "http://") {
			src = config.Location{Platform: "url", URL: o.iso}
		}
	}
	want := o.isoSHA256
	if want == "" {
		want = src.SHA256
	}

	src.SHA256 = want
	password := &maskedPassword{mask: r.Mask}
	res, err := diskimage.Build(ctx, diskimage.BuildInputs{
		Config: cfg, Key: k, Platform: o.platform, Revision: hash, Fingerprint: fp, ISO: src,
		WorkDir: workDir, Store: store, Overwrite: o.overwrite, Builder: o.builder, Fetcher: fetcher,
		Password: password, Log: logf,
	})
	if err != nil {
		return err
	}
	return finishDiskImage(ctx, env, cfg, k, o, hash, fp, res, store, uploaded)
}

// finishDiskImage writes what follows a stored (or already stored) image:
// artifacts, outputs, step summary and record.
func finishDiskImage(ctx context.Context, env Env, cfg *config.Config, k *config.Key, o buildOpts, hash, fp string,
	res diskimage.BuildResult, store diskimage.Store, uploaded *azure.Result) error {
	r := env.runner()
	location := res.Name
	switch s := store.(type) {
	case azure.Store:
		// The blob URL, which the machine-image stage imports from.
		location = blobURL(s.Client.URL(), res.Name)
	case interface{ Container() string }:
		location = s.Container() + "/" + res.Name
	}
	dir := filepath.Join(env.path(o.artifacts), k.Name)
	if !res.Skipped {
		js, err := res.Manifest.JSON()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for file, data := range map[string][]byte{"image-bucket-resource.json": js, "unattend.xml": res.UnattendRedacted} {
			if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
				return fmt.Errorf("the image is stored as %s, but writing its %s failed: %w", location, file, err)
			}
		}
		fmt.Fprintf(env.Stdout, "built disk image %s (%s)\n", location, size(res.Size))
	} else {
		fmt.Fprintf(env.Stdout, "disk image %s is already built\n", location)
	}
	outputs := map[string]string{
		"image-name": res.Name, "image-location": location, "fingerprint": fp,
		"skipped": fmt.Sprint(res.Skipped), "artifacts": dir,
	}
	for name, v := range outputs {
		if err := r.SetOutput(name, v); err != nil {
			return err
		}
	}
	if err := r.AddStepSummary(diskImageSummary(k.Name, location, res, uploaded)); err != nil {
		return err
	}
	if !o.record {
		return nil
	}
	ro := recordOpts{stage: "disk-image", config: o.config, repo: o.repo, remote: o.remote, branch: o.branch,
		environment: o.environment, platform: o.platform, key: k.Name, imageName: res.Name, imageLocation: location, fingerprint: fp}
	rec, err := ro.build(cfg)
	if err != nil {
		return err
	}
	rec.Revision, rec.RunURL = hash, r.RunURL()
	if err := rec.Validate(); err != nil {
		return err
	}
	commit, branch, err := pushRecord(ctx, env, cfg, ro, rec)
	if err != nil {
		return fmt.Errorf("the image is stored as %s, but recording it failed (run cib record disk-image --key %s --environment %s to retry): %w", location, k.Name, o.environment, err)
	}
	fmt.Fprintf(env.Stdout, "recorded %s at %s (%s)\n", rec.Path(), commit[:7], branch)
	return nil
}

// blobURL is the URL of blob name in the container at containerURL,
// without the container client's query (a SAS from a connection string is
// a secret, and the record is public).
func blobURL(containerURL, name string) string {
	if u, err := url.Parse(containerURL); err == nil {
		u.RawQuery, u.Fragment = "", ""
		containerURL = u.String()
	}
	return strings.TrimSuffix(containerURL, "/") + "/" + name
}

// diskImageSummary is the step summary of a disk-image job.
func diskImageSummary(key, location string, res diskimage.BuildResult, up *azure.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Disk image %s\n\n", key)
	if res.Skipped {
		fmt.Fprintf(&b, "`%s` is already stored with this fingerprint; nothing was built.\n", location)
		return b.String()
	}
	fmt.Fprintf(&b, "| | |\n|---|---|\n| image | `%s` |\n| size | %s |\n", location, size(res.Size))
	if up != nil {
		fmt.Fprintf(&b, "| uploaded | %s |\n| skipped (zeros) | %s |\n| upload time | %s |\n",
			size(up.Sent), size(up.Skipped), up.Duration.Round(time.Second))
	}
	b.WriteString("\n| step | duration |\n|---|---|\n")
	for _, s := range res.Steps {
		fmt.Fprintf(&b, "| %s | %s |\n", s.Name, s.Duration.Round(time.Millisecond))
	}
	if len(res.Placed) > 0 {
		b.WriteString("\n| placed | path | files | bytes |\n|---|---|---|---|\n")
		for _, p := range res.Placed {
			fmt.Fprintf(&b, "| %s %s | `%s` | %d | %d |\n", p.Kind, p.Name, p.Path, p.Files, p.Bytes)
		}
	}
	return b.String()
}

// maskedPassword draws the Administrator password and masks it in the
// Actions log before anything could print it.
type maskedPassword struct{ mask func(string) }

func (m *maskedPassword) Password() (string, error) {
	pw, err := unattend.RandomPassword{}.Password()
	if err == nil {
		m.mask(pw)
	}
	return pw, err
}

// size formats a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// throttled calls f at most every 10 seconds, and always for the last
// call (done == total), so that a long download logs a line now and then.
func throttled(f func(done, total int64)) func(done, total int64) {
	var last time.Time
	return func(done, total int64) {
		if time.Since(last) < 10*time.Second && done != total {
			return
		}
		last = time.Now()
		f(done, total)
	}
}
