package diskimage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/unattend"
	"github.com/cib-project/cib/internal/vhd"
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
	Tools     Tools
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
const (
	StepCheckStore  = "check-store"
	StepFetchISO    = "fetch-iso"
	StepExtractWIM  = "extract-wim"
	StepChooseImage = "choose-image"
	StepPayload     = "payload"
	StepUnattend    = "unattend"
	StepLayout      = "layout"
	StepFormatNTFS  = "format-ntfs"
	StepApplyImage  = "apply-image"
	StepRegistry    = "registry"
	StepBoot        = "boot"
	StepSplice      = "splice"
	StepVHD         = "vhd"
	StepStore       = "store"
)

// Build runs the wimlib builder (spec/disk-image.md §3–§5) for in.Key: it
// skips when the store already has the image's name with metadata
// fingerprint == in.Fingerprint (unless in.Overwrite); otherwise it
// extracts the WIM from the ISO, chooses the image, fetches the selected
// packages and drivers (StagePayload), renders unattend.xml and adds it
// (at \unattend.xml and \Windows\Panther\unattend.xml), the packages and
// the drivers to the image (Tools.AddTree), lays out a disk of image.size
// GiB (MBR or GPT from image.partition), formats and applies the Windows
// volume, makes the offline registry edits, writes the boot manager and
// BCD store (UEFI for GPT; for MBR also the BIOS boot code,
// WriteBIOSBootCode), splices the volume into the disk, turns it
// into a fixed VHD and stores it under BlobName with metadata
// {fingerprint, revision, key}.
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
	logf := in.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	built := now().UTC()
	name, err := BlobName(k.Image, in.Platform, in.Revision, built)
	if err != nil {
		return res, fmt.Errorf("building disk image for key %s: %w", k.Name, err)
	}
	res.Name = name
	doing := fmt.Sprintf("building disk image %s for key %s", name, k.Name)
	step := func(stepName string, f func() error) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: step %s: %w", doing, stepName, err)
		}
		start := time.Now()
		err := f()
		d := time.Since(start)
		if err != nil {
			logf("disk image: %s failed after %s", stepName, d.Round(time.Millisecond))
			return fmt.Errorf("%s: step %s: %w", doing, stepName, err)
		}
		res.Steps = append(res.Steps, StepTiming{Name: stepName, Duration: d})
		logf("disk image: %s done in %s", stepName, d.Round(time.Millisecond))
		return nil
	}

	// The skip check comes before anything touches WorkDir, so a skipped
	// run does no work at all.
	skip := false
	if err := step(StepCheckStore, func() error {
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
	}); err != nil {
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
	work, err := os.MkdirTemp(in.WorkDir, "cib-disk-image-")
	if err != nil {
		return res, fmt.Errorf("%s: work directory: %w", doing, err)
	}
	defer func() {
		// Once the image is stored the build has succeeded and must be
		// recorded; scratch files that will not go are worth a warning,
		// not a failure that would make a re-run rebuild a stored image.
		if rerr := os.RemoveAll(work); rerr != nil {
			if err == nil {
				logf("disk image: warning: could not remove the work directory %s: %v", work, rerr)
			} else {
				err = fmt.Errorf("%w (and the work directory %s could not be removed: %v)", err, work, rerr)
			}
		}
	}()

	var (
		wimPath string
		image   WIMImage
		disk    Disk
		doc     *unattend.Document
		payload Payload
	)
	sel := in.Config.Select(k, in.Platform)
	style := strings.ToLower(k.Image.Partition)
	uefi := style == StyleGPT
	volume := filepath.Join(work, "windows.ntfs")
	iso := filepath.Join(work, "install.iso")
	wimindex := 0
	if k.ISO != nil {
		wimindex = k.ISO.WimIndex
	}

	steps := []struct {
		name string
		run  func() error
	}{
		{StepFetchISO, func() error {
			return in.Fetcher.Fetch(ctx, in.ISO, in.ISO.SHA256, iso)
		}},
		{StepExtractWIM, func() (err error) {
			if wimPath, err = in.Tools.ExtractWIM(ctx, iso, work); err != nil {
				return fmt.Errorf("%w (the ISO is %s)", err, DescribeSource(in.ISO))
			}
			// The ISO can be several GiB; free the space before the disk
			// grows.
			return os.Remove(iso)
		}},
		{StepChooseImage, func() error {
			images, err := in.Tools.Images(ctx, wimPath)
			if err != nil {
				return err
			}
			image, err = ChooseImage(images, wimindex, k.Image.Edition)
			if err == nil {
				logf("disk image: applying image %s", image)
			}
			return err
		}},
		{StepPayload, func() (err error) {
			payload, err = StagePayload(ctx, in.Fetcher, sel, in.Platform, filepath.Join(work, "payload"))
			for _, p := range payload.Placed {
				logf("disk image: %s %s → %s (%d files, %d bytes, from %s)", p.Kind, p.Name, p.Path, p.Files, p.Bytes, p.Source)
			}
			res.Placed = payload.Placed
			return err
		}},
		{StepUnattend, func() (err error) {
			doc, err = unattend.Render(in.Config, k, unattend.Options{Platform: in.Platform, Revision: in.Revision, Password: in.Password})
			if err != nil {
				return err
			}
			for _, dst := range []string{"unattend.xml", "Windows/Panther/unattend.xml"} {
				p := filepath.Join(payload.Dir, filepath.FromSlash(dst))
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("a package writes %s, where unattend.xml goes", toWindowsPath(dst))
				}
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				// 0600: the real document carries the Administrator password.
				if err := os.WriteFile(p, doc.XML, 0o600); err != nil {
					return err
				}
			}
			if err := in.Tools.AddTree(ctx, wimPath, image.Index, payload.Dir); err != nil {
				return err
			}
			// The image holds them now; the copies would only take space.
			return os.RemoveAll(filepath.Dir(payload.Dir))
		}},
		{StepLayout, func() (err error) {
			disk, err = Layout(ctx, filepath.Join(work, "disk.raw"), int64(k.Image.Size)<<30, style)
			return err
		}},
		{StepFormatNTFS, func() error { return FormatNTFS(ctx, volume, disk.Windows, "Windows") }},
		{StepApplyImage, func() error {
			if err := in.Tools.ApplyImage(ctx, wimPath, image.Index, volume); err != nil {
				return err
			}
			// The WIM can be several GiB; free the space before the disk
			// grows.
			return os.Remove(wimPath)
		}},
		{StepRegistry, func() error {
			skipped, err := ApplyRegistryEdits(ctx, volume, EditsFor(k, sel))
			if len(skipped) > 0 {
				logf("disk image: services not in the image, not disabled: %s", strings.Join(skipped, ", "))
			}
			return err
		}},
		{StepBoot, func() error {
			if _, err := BuildBCD(ctx, volume, disk, uefi); err != nil {
				return err
			}
			if err := CopyBootManager(ctx, volume, disk.Path, disk, uefi); err != nil {
				return err
			}
			if uefi {
				// UEFI firmware reads the EFI system partition itself.
				return nil
			}
			return WriteBIOSBootCode(ctx, disk.Path, disk)
		}},
		{StepSplice, func() error {
			// Consumes the volume: the disk is built around it where the
			// file system allows, instead of copying it in.
			return MoveVolumeIntoDisk(ctx, volume, disk.Path, disk.Windows)
		}},
		{StepVHD, func() error {
			var id [16]byte
			if _, err := rand.Read(id[:]); err != nil {
				return err
			}
			if err := vhd.WriteFixed(disk.Path, id, built); err != nil {
				return err
			}
			// Read it back: the store step must never publish a disk
			// whose footer does not check out.
			_, size, err := vhd.ReadFixed(disk.Path)
			if err != nil {
				return err
			}
			if size != disk.Size {
				return fmt.Errorf("vhd %s has virtual size %d, want %d", disk.Path, size, disk.Size)
			}
			res.Size = size + vhd.FooterSize
			return nil
		}},
		{StepStore, func() error {
			return in.Store.Put(ctx, disk.Path, name, map[string]string{
				MetadataFingerprint: in.Fingerprint,
				MetadataRevision:    in.Revision,
				MetadataKey:         k.Name,
			})
		}},
	}
	for _, s := range steps {
		if err := step(s.name, s.run); err != nil {
			return res, err
		}
	}

	res.UnattendRedacted = doc.Redacted
	res.Manifest = newManifest(in, name, res.Size, built)
	return res, nil
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
