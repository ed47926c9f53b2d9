package diskimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/unattend"
)

// Store is where a finished disk image goes; the CLI binds it to Azure
// (internal/azure) or to a local folder (LocalStore).
type Store interface {
	// Exists reports whether an image is stored under name, and its
	// metadata (nil when it has none).
	Exists(ctx context.Context, name string) (bool, map[string]string, error)
	// Put stores the file at path under name with metadata. It must never
	// leave a partial object under name: a reader that sees name sees a
	// whole image. It may consume (move) the file at path: Build removes
	// it afterwards anyway.
	Put(ctx context.Context, path, name string, metadata map[string]string) error
}

// Metadata keys Build stores with an image. The fingerprint is what a
// re-run compares to skip; revision and key say where the image came from
// without reading the manifest.
const (
	MetadataFingerprint = "fingerprint"
	MetadataRevision    = "revision"
	MetadataKey         = "key"
)

// BuildInputs are what Build needs. Everything Build downloads (the ISO,
// packages, drivers) goes through Fetcher, so a build whose sources are
// local paths runs offline.
type BuildInputs struct {
	Config      *config.Config
	Key         *config.Key
	Platform    string // the cloud built for: selects shared entries and names the image
	Revision    string // the commit sha, at least 7 characters
	Fingerprint string // stored with the image; a re-run with the same one is skipped
	// ISO is where the installation ISO is (usually the key's
	// iso.source); its SHA256, when set, is checked. Build fetches it
	// into the work directory after the store check, so a skipped build
	// downloads nothing; a local path is hard-linked, not copied.
	ISO config.Location
	// WorkDir is scratch space. Build works in a fresh directory under it
	// and removes that directory whatever happens.
	WorkDir   string
	Store     Store
	Overwrite bool // rebuild even when the fingerprint matches
	// Builder is BuilderWimlib (the default when empty) or BuilderDism.
	Builder string
	Tools   Tools
	// Fetcher downloads the ISO and the selected packages and drivers.
	Fetcher  FileFetcher
	Password unattend.PasswordSource
	Now      func() time.Time // nil means time.Now
	// Log receives progress lines, one per step with its duration; nil
	// discards them.
	Log func(format string, args ...any)
}

// StepTiming is how long one step of Build took.
type StepTiming struct {
	Name     string
	Duration time.Duration
}

// BuildResult is what Build did. Manifest and UnattendRedacted are set only
// when the image was built and stored.
type BuildResult struct {
	Skipped          bool
	Name             string // the image's name in the store (BlobName)
	Size             int64  // VHD bytes, footer included
	Manifest         Manifest
	UnattendRedacted []byte
	Placed           []Placed // the packages and drivers put into the image
	Steps            []StepTiming
}

// Names of Build's steps, as errors, logs and BuildResult.Steps give them.
// The first ones and the last are common; the ones between are the
// builder's (wimlibSteps, dismSteps).
const (
	StepCheckStore  = "check-store"
	StepFetchISO    = "fetch-iso"
	StepExtractWIM  = "extract-wim"
	StepChooseImage = "choose-image"
	StepPayload     = "payload"
	StepUnattend    = "unattend"
	StepAddFiles    = "add-files"
	StepLayout      = "layout"
	StepFormatNTFS  = "format-ntfs"
	StepApplyImage  = "apply-image"
	StepRegistry    = "registry"
	StepBoot        = "boot"
	StepSplice      = "splice"
	StepVHD         = "vhd"
	StepStore       = "store"
)

// Builders are the ways Build can turn the chosen image into a fixed VHD
// (spec/disk-image.md §3): BuildInputs.Builder names one.
const (
	BuilderWimlib = "wimlib" // Linux, no hypervisor: wimlib, ntfs-3g, hivex
	BuilderDism   = "dism"   // Windows: diskpart, DISM, bcdboot, reg
)

// buildStep is one named step of a build. The steps alongside run one
// after another while run runs, on other files than it touches (the
// registry and boot files are made while the image is applied); the first
// failure of either cancels the other.
type buildStep struct {
	name      string
	run       func(ctx context.Context) error
	alongside []buildStep
}

// build is one run of Build: its inputs, and what each step hands to the
// next.
type build struct {
	in    BuildInputs
	logf  func(format string, args ...any)
	built time.Time
	work  string // the run's own directory, removed at the end
	sel   config.Selected

	iso     string // the fetched ISO, until the WIM is out of it
	wimPath string
	image   WIMImage
	payload Payload // the files the volume gets besides the image
	doc     *unattend.Document

	// vhdPath is the finished fixed VHD and size its length, footer
	// included: what the builder's steps leave for the store step.
	vhdPath string
	size    int64
}

// Build runs a builder (spec/disk-image.md §3–§5) for in.Key: it skips
// when the store already has the image's name with metadata fingerprint
// == in.Fingerprint (unless in.Overwrite), before anything is downloaded;
// otherwise it fetches the ISO, extracts the WIM, chooses the image,
// fetches the selected packages and drivers (StagePayload) and renders
// unattend.xml into that payload (at \unattend.xml and
// \Windows\Panther\unattend.xml). The builder (in.Builder, wimlib by
// default) then makes the fixed VHD, which is stored under BlobName with
// metadata {fingerprint, revision, key}.
//
// Everything Build creates is under a fresh directory in in.WorkDir that
// is removed on success, failure and cancellation; the store is written
// only in the last step, and Store.Put is atomic, so a failed Build leaves
// nothing under the final name. An error names the step that failed.
func Build(ctx context.Context, in BuildInputs) (res BuildResult, err error) {
	if err := checkInputs(in); err != nil {
		return res, err
	}
	k := in.Key
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	b := &build{in: in, logf: in.Log, built: now().UTC()}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	logf := b.logf
	name, err := BlobName(k.Image, in.Platform, in.Revision, b.built)
	if err != nil {
		return res, fmt.Errorf("building disk image for key %s: %w", k.Name, err)
	}
	res.Name = name
	doing := fmt.Sprintf("building disk image %s for key %s", name, k.Name)
	// timed runs one step and says how long it took.
	timed := func(ctx context.Context, s buildStep) (StepTiming, error) {
		if err := ctx.Err(); err != nil {
			return StepTiming{}, fmt.Errorf("%s: step %s: %w", doing, s.name, err)
		}
		start := time.Now()
		err := s.run(ctx)
		d := time.Since(start)
		if err != nil {
			logf("disk image: %s failed after %s", s.name, d.Round(time.Millisecond))
			return StepTiming{}, fmt.Errorf("%s: step %s: %w", doing, s.name, err)
		}
		logf("disk image: %s done in %s", s.name, d.Round(time.Millisecond))
		return StepTiming{Name: s.name, Duration: d}, nil
	}
	step := func(s buildStep) error {
		if len(s.alongside) == 0 {
			st, err := timed(ctx, s)
			if err == nil {
				res.Steps = append(res.Steps, st)
			}
			return err
		}
		lane, cancel := context.WithCancel(ctx)
		defer cancel()
		var (
			once  sync.Once
			first error
			wg    sync.WaitGroup
			side  []StepTiming
		)
		fail := func(err error) { once.Do(func() { first = err; cancel() }) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, a := range s.alongside {
				st, err := timed(lane, a)
				if err != nil {
					fail(err)
					return
				}
				side = append(side, st)
			}
		}()
		st, err := timed(lane, s)
		if err != nil {
			fail(err)
		}
		wg.Wait()
		if first != nil {
			return first
		}
		res.Steps = append(append(res.Steps, st), side...)
		return nil
	}

	// The skip check comes before anything touches WorkDir, so a skipped
	// run does no work at all.
	skip := false
	if err := step(buildStep{name: StepCheckStore, run: func(ctx context.Context) error {
		ok, md, err := in.Store.Exists(ctx, name)
		if err != nil {
			return err
		}
		if ok && md[MetadataFingerprint] == in.Fingerprint {
			if in.Overwrite {
				logf("disk image: %s exists with fingerprint %s; rebuilding it (overwrite-disk-image)", name, in.Fingerprint)
			} else {
				skip = true
			}
		}
		return nil
	}}); err != nil {
		return res, err
	}
	if skip {
		logf("disk image: %s is already stored with fingerprint %s; nothing to build (the overwrite-disk-image instruction, or cib build --overwrite, rebuilds it)", name, in.Fingerprint)
		res.Skipped = true
		return res, nil
	}

	if err := os.MkdirAll(in.WorkDir, 0o755); err != nil {
		return res, fmt.Errorf("%s: work directory: %w", doing, err)
	}
	b.work, err = os.MkdirTemp(in.WorkDir, "cib-disk-image-")
	if err != nil {
		return res, fmt.Errorf("%s: work directory: %w", doing, err)
	}
	defer func() {
		// Once the image is stored the build has succeeded and must be
		// recorded; scratch files that will not go are worth a warning,
		// not a failure that would make a re-run rebuild a stored image.
		if rerr := os.RemoveAll(b.work); rerr != nil {
			if err == nil {
				logf("disk image: warning: could not remove the work directory %s: %v", b.work, rerr)
			} else {
				err = fmt.Errorf("%w (and the work directory %s could not be removed: %v)", err, b.work, rerr)
			}
		}
	}()
	b.sel = in.Config.Select(k, in.Platform)

	steps := b.commonSteps()
	switch in.Builder {
	case "", BuilderWimlib:
		steps = append(steps, b.wimlibSteps()...)
	case BuilderDism:
		steps = append(steps, b.dismSteps()...)
	}
	steps = append(steps, buildStep{name: StepStore, run: func(ctx context.Context) error {
		return in.Store.Put(ctx, b.vhdPath, name, map[string]string{
			MetadataFingerprint: in.Fingerprint,
			MetadataRevision:    in.Revision,
			MetadataKey:         k.Name,
		})
	}})
	for _, s := range steps {
		if err := step(s); err != nil {
			return res, err
		}
		if s.name == StepPayload {
			res.Placed = b.payload.Placed
		}
	}

	res.Size = b.size
	res.UnattendRedacted = b.doc.Redacted
	res.Manifest = newManifest(in, name, res.Size, b.built)
	return res, nil
}

// commonSteps are the steps every builder starts with: from the ISO's
// source to the chosen WIM image and the payload tree with unattend.xml.
func (b *build) commonSteps() []buildStep {
	in, k := b.in, b.in.Key
	b.iso = filepath.Join(b.work, "install.iso")
	wimindex := 0
	if k.ISO != nil {
		wimindex = k.ISO.WimIndex
	}
	return []buildStep{
		{name: StepFetchISO, run: func(ctx context.Context) error {
			return in.Fetcher.Fetch(ctx, in.ISO, in.ISO.SHA256, b.iso)
		}},
		{name: StepExtractWIM, run: func(ctx context.Context) (err error) {
			if b.wimPath, err = in.Tools.ExtractWIM(ctx, b.iso, b.work); err != nil {
				return fmt.Errorf("%w (the ISO is %s)", err, DescribeSource(in.ISO))
			}
			// The ISO can be several GiB; free the space before the disk
			// grows.
			return os.Remove(b.iso)
		}},
		{name: StepChooseImage, run: func(ctx context.Context) error {
			images, err := in.Tools.Images(ctx, b.wimPath)
			if err != nil {
				return err
			}
			b.image, err = ChooseImage(images, wimindex, k.Image.Edition)
			if err == nil {
				b.logf("disk image: applying image %s", b.image)
			}
			return err
		}},
		{name: StepPayload, run: func(ctx context.Context) (err error) {
			b.payload, err = StagePayload(ctx, in.Fetcher, b.sel, in.Platform, filepath.Join(b.work, "payload"))
			for _, p := range b.payload.Placed {
				b.logf("disk image: %s %s → %s (%d files, %d bytes, from %s)", p.Kind, p.Name, p.Path, p.Files, p.Bytes, p.Source)
			}
			return err
		}},
		{name: StepUnattend, run: func(ctx context.Context) (err error) {
			b.doc, err = unattend.Render(in.Config, k, unattend.Options{Platform: in.Platform, Revision: in.Revision, Password: in.Password})
			if err != nil {
				return err
			}
			for _, dst := range []string{"unattend.xml", "Windows/Panther/unattend.xml"} {
				p := filepath.Join(b.payload.Dir, filepath.FromSlash(dst))
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("a package writes %s, where unattend.xml goes", toWindowsPath(dst))
				}
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				// 0600: the real document carries the Administrator password.
				if err := os.WriteFile(p, b.doc.XML, 0o600); err != nil {
					return err
				}
			}
			return nil
		}},
	}
}

// keyFile names the file a key was read from, for messages that say what
// to change.
func keyFile(k *config.Key) string {
	if k.File != "" {
		return k.File
	}
	return "config/" + k.Name + ".yaml"
}

// checkInputs rejects inputs Build cannot work with before anything is
// done, so that a misconfigured run fails fast and says why.
func checkInputs(in BuildInputs) error {
	switch {
	case in.Key == nil:
		return errors.New("building disk image: no key")
	case in.Key.Image == nil:
		return fmt.Errorf("building disk image for key %s: the key starts from a marketplace image and has no disk image", in.Key.Name)
	case in.Config == nil:
		return fmt.Errorf("building disk image for key %s: no configuration", in.Key.Name)
	case in.Store == nil:
		return fmt.Errorf("building disk image for key %s: no store", in.Key.Name)
	case in.WorkDir == "":
		return fmt.Errorf("building disk image for key %s: no work directory", in.Key.Name)
	case in.ISO == (config.Location{}):
		return fmt.Errorf("building disk image for key %s: no ISO source", in.Key.Name)
	case in.Fetcher == nil:
		return fmt.Errorf("building disk image for key %s: no fetcher", in.Key.Name)
	case in.Fingerprint == "":
		// An empty fingerprint would match an image stored without one and
		// skip a build that was never checked.
		return fmt.Errorf("building disk image for key %s: no fingerprint", in.Key.Name)
	case in.Key.Image.Size < 1:
		return fmt.Errorf("building disk image for key %s: image.size %d GiB: must be at least 1", in.Key.Name, in.Key.Image.Size)
	}
	switch in.Builder {
	case "", BuilderWimlib, BuilderDism:
	default:
		return fmt.Errorf("building disk image for key %s: unknown builder %q (use %s or %s)", in.Key.Name, in.Builder, BuilderWimlib, BuilderDism)
	}
	if s := strings.ToLower(in.Key.Image.Partition); s != StyleMBR && s != StyleGPT {
		return fmt.Errorf("building disk image for key %s: image.partition %q: must be MBR or GPT", in.Key.Name, in.Key.Image.Partition)
	}
	return nil
}

// newManifest describes the image just stored.
func newManifest(in BuildInputs, name string, size int64, built time.Time) Manifest {
	m := Manifest{
		Build: ManifestBuild{
			Date:     built.Format("2006-01-02"),
			Time:     built.Format("15:04:05"),
			Revision: in.Revision,
		},
		Image: ManifestImage{
			Platform:    in.Platform,
			Key:         name,
			Size:        size,
			Fingerprint: in.Fingerprint,
		},
	}
	// The store knows where it is (a directory for LocalStore); otherwise
	// the key's configured target names the container.
	if c, ok := in.Store.(interface{ Container() string }); ok {
		m.Image.Container = c.Container()
	} else if t := in.Key.Image.Target; t != nil {
		m.Image.Container = t.Bucket
	}
	src := in.ISO
	m.Source = ManifestSource{Platform: src.Platform, Bucket: src.Bucket, Key: src.Key}
	if m.Source.Key == "" && src.URL != "" {
		// Without the query: a pre-signed URL carries its credentials
		// there, and the manifest is published.
		m.Source.Key = displayURL(src.URL)
	}
	if m.Source.Key == "" {
		m.Source.Key = src.Path
	}
	return m
}
