package diskimage

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/unattend"
)

// FileFetcher gets one file described by a configured location; *Fetcher
// is the real one. The payload step takes an interface so that a Build
// with only local sources needs no network client.
type FileFetcher interface {
	Fetch(ctx context.Context, loc config.Location, want, dest string) error
}

// Placed is one package or driver the payload step put into the image.
type Placed struct {
	Kind   string // "package" or "driver"
	Name   string
	Path   string // where on the Windows volume, e.g. Windows\Temp\nxlog-ce.msi
	Source string // where it came from, credentials left out
	Files  int    // files written (more than one when an archive was extracted)
	Bytes  int64
}

// Payload is the tree of files a build adds to the Windows volume besides
// the image itself, laid out as on the volume: Windows\Temp\x is
// Dir/Windows/Temp/x.
type Payload struct {
	Dir    string
	Placed []Placed
}

// StagePayload fetches the packages and drivers selected for a build (the
// target rule already applied: config.Select) into a new tree under dir,
// the way disk-image.md §3 step 5 places them:
//
//   - a package at its savepath, or, when extract is set, the contents of
//     its zip archive under the savepath folder;
//   - a driver in unattend.DriverFolder, extracted when extract is set,
//     so that the DriverPaths unattend.xml names find its .inf.
//
// Each entry's source is the first of: one on the platform built for, a
// url, a local path, a public object of another cloud. A configured
// sha256 is verified. Two entries writing the same file are an error
// rather than a silent overwrite. Downloads go under dir too; the caller
// removes dir.
func StagePayload(ctx context.Context, f FileFetcher, sel config.Selected, platform, dir string) (Payload, error) {
	p := Payload{Dir: filepath.Join(dir, "tree")}
	downloads := filepath.Join(dir, "downloads")
	for _, d := range []string{p.Dir, downloads} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return p, fmt.Errorf("payload: %w", err)
		}
	}
	owners := map[string]string{} // lower-cased volume path → entry that wrote it
	place := func(kind, name string, srcs []config.Location, volPath string, extract bool) error {
		what := fmt.Sprintf("%s %s", kind, name)
		if f == nil {
			return fmt.Errorf("%s: no fetcher to download it with", what)
		}
		loc, err := chooseSource(srcs, platform)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		rel, err := volumeRel(volPath)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		dl := filepath.Join(downloads, strconv.Itoa(len(p.Placed)))
		if err := f.Fetch(ctx, loc, loc.SHA256, dl); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		pl := Placed{Kind: kind, Name: name, Path: volPath, Source: DescribeSource(loc)}
		claim := func(r string) error {
			key := strings.ToLower(r)
			if prev, ok := owners[key]; ok {
				return fmt.Errorf("%s writes %s, which %s already wrote; give one of them another path", what, toWindowsPath(r), prev)
			}
			owners[key] = what
			return nil
		}
		if extract {
			pl.Files, pl.Bytes, err = extractZip(ctx, dl, p.Dir, rel, claim)
			if err != nil {
				return fmt.Errorf("%s: extracting %s into %s: %w", what, pl.Source, volPath, err)
			}
		} else {
			if err := claim(rel); err != nil {
				return err
			}
			dst := filepath.Join(p.Dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if err := os.Rename(dl, dst); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			fi, err := os.Stat(dst)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			pl.Files, pl.Bytes = 1, fi.Size()
		}
		_ = os.Remove(dl)
		p.Placed = append(p.Placed, pl)
		return nil
	}
	for _, pkg := range sel.Packages {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		if err := place("package", pkg.Name, pkg.Sources, pkg.SavePath, pkg.Extract); err != nil {
			return p, err
		}
	}
	for _, drv := range sel.Drivers {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		if err := checkFolderName(drv.Name); err != nil {
			return p, fmt.Errorf("driver %q: %w", drv.Name, err)
		}
		folder := unattend.DriverFolder(drv)
		dst := folder
		if !drv.Extract {
			// The file keeps its own name inside the driver's folder.
			loc, err := chooseSource(drv.Sources, platform)
			if err != nil {
				return p, fmt.Errorf("driver %s: %w", drv.Name, err)
			}
			dst = folder + `\` + sourceBase(loc)
		}
		if err := place("driver", drv.Name, drv.Sources, dst, drv.Extract); err != nil {
			return p, err
		}
	}
	return p, nil
}

// chooseSource picks the source a builder for platform can read best: one
// in the same cloud (credentials the job has), then a url, then a local
// path, then an object of another cloud (read as a public object).
func chooseSource(srcs []config.Location, platform string) (config.Location, error) {
	if len(srcs) == 0 {
		return config.Location{}, errors.New("no sources: add one (azure blob, url or local path) to its sources")
	}
	for _, want := range []string{platform, "url", "local"} {
		for _, s := range srcs {
			if s.Platform == want {
				return s, nil
			}
		}
	}
	for _, s := range srcs {
		if s.Platform == "amazon" || s.Platform == "google" {
			return s, nil
		}
	}
	return config.Location{}, fmt.Errorf("none of its %d sources can be read when building for %s", len(srcs), platform)
}

// DescribeSource names a location for logs and the step summary, without
// a URL's query (which may hold a signature).
func DescribeSource(l config.Location) string {
	switch l.Platform {
	case "url":
		return displayURL(l.URL)
	case "local":
		return l.Path
	default:
		return l.Platform + ":" + l.Bucket + "/" + l.Key
	}
}

// sourceBase is the file name of a location: the last element of its key,
// URL path or local path.
func sourceBase(l config.Location) string {
	switch l.Platform {
	case "url":
		if u := strings.SplitN(l.URL, "?", 2)[0]; u != "" {
			return path.Base(u)
		}
	case "local":
		return filepath.Base(l.Path)
	}
	return path.Base(l.Key)
}

// volumeRel turns a configured Windows path (Windows\Temp\x.msi, or with a
// C:\ prefix) into a slash-separated path relative to the volume root,
// refusing one that leaves the volume.
func volumeRel(p string) (string, error) {
	s := strings.ReplaceAll(p, `\`, "/")
	if len(s) >= 2 && s[1] == ':' {
		if !strings.EqualFold(s[:1], "c") {
			return "", fmt.Errorf("path %q is on drive %s; only the Windows volume (C:) is built", p, s[:2])
		}
		s = s[2:]
	}
	s = strings.TrimLeft(s, "/")
	if s == "" || !filepath.IsLocal(filepath.FromSlash(s)) || strings.Contains(s, ":") {
		return "", fmt.Errorf("path %q is not a path inside the Windows volume", p)
	}
	return path.Clean(s), nil
}

// checkFolderName refuses a name that cannot be one Windows folder.
func checkFolderName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `\/:*?"<>|`) {
		return fmt.Errorf("the name cannot be a folder name on Windows (no \\ / : * ? \" < > |)")
	}
	return nil
}

// extractZip unpacks the zip archive at src under dir/rel. Every member
// must stay inside rel (no "..", no absolute names) and is claimed, so that
// two entries never write one file.
func extractZip(ctx context.Context, src, dir, rel string, claim func(string) error) (files int, bytes int64, err error) {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return 0, 0, fmt.Errorf("not a zip archive (extract is set): %w", err)
	}
	defer zr.Close()
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return files, bytes, err
		}
		name := strings.ReplaceAll(zf.Name, `\`, "/")
		if !filepath.IsLocal(filepath.FromSlash(strings.TrimSuffix(name, "/"))) {
			return files, bytes, fmt.Errorf("member %q would be written outside %s", zf.Name, toWindowsPath(rel))
		}
		target := path.Join(rel, name)
		dst := filepath.Join(dir, filepath.FromSlash(target))
		if zf.FileInfo().IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return files, bytes, err
			}
			continue
		}
		if !zf.Mode().IsRegular() {
			return files, bytes, fmt.Errorf("member %q is not a regular file", zf.Name)
		}
		if err := claim(target); err != nil {
			return files, bytes, err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return files, bytes, err
		}
		n, err := writeMember(zf, dst)
		if err != nil {
			return files, bytes, fmt.Errorf("member %q: %w", zf.Name, err)
		}
		files++
		bytes += n
	}
	return files, bytes, nil
}

func writeMember(zf *zip.File, dst string) (int64, error) {
	r, err := zf.Open()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(w, r)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// AddTree adds the files under tree to image index of the WIM at wimPath,
// merged into the image's folders (`wimlib-imagex update … add TREE /`):
// unattend.xml, packages and drivers go into the image before it is
// applied, so that the volume gets them in the same pass, in folders the
// image may not have (no ntfs-3g tool makes a folder in an unmounted
// volume). Paths are matched without regard to case, as Windows does, so
// that Windows/Temp in the tree lands in the image's Windows\TEMP rather
// than beside it.
func (t Tools) AddTree(ctx context.Context, wimPath string, index int, tree string) error {
	doing := fmt.Sprintf("adding %s to image %d of %s", tree, index, wimPath)
	empty := true
	if err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			empty = false
			return fs.SkipAll
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if empty {
		return nil
	}
	// A WIM copied out of an ISO is read-only.
	if fi, err := os.Stat(wimPath); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	} else if err := os.Chmod(wimPath, fi.Mode()|0o200); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	abs, err := filepath.Abs(wimPath)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	// wimlib splits --command into words itself; running in the tree's
	// parent keeps the source a plain word whatever the work directory is.
	base := filepath.Base(tree)
	if strings.ContainsAny(base, " \t'\"\\") {
		return fmt.Errorf("%s: the folder name %q must be one plain word", doing, base)
	}
	out, err := t.wimlibIgnoringCase(ctx, filepath.Dir(tree), "update", abs, strconv.Itoa(index), "--command=add "+base+" /")
	if err != nil {
		return toolError(ctx, "wimlib-imagex update", doing, out, err, "check that wimtools is installed and there is free space for the WIM to grow")
	}
	return nil
}

// ExtractFiles copies files of image index of the WIM at wimPath into
// dir, each under its base name (which must differ). paths are image
// paths, with \ or /, matched without regard to case as Windows does. A
// path the image lacks is an error that names it.
func (t Tools) ExtractFiles(ctx context.Context, wimPath string, index int, dir string, paths ...string) error {
	doing := fmt.Sprintf("taking %s out of image %d of %s", strings.Join(paths, ", "), index, wimPath)
	args := []string{"extract", wimPath, strconv.Itoa(index)}
	for _, p := range paths {
		args = append(args, "/"+strings.TrimLeft(strings.ReplaceAll(p, `\`, "/"), "/"))
	}
	args = append(args, "--dest-dir="+dir, "--no-acls")
	out, err := t.wimlibIgnoringCase(ctx, "", args...)
	if err != nil {
		return toolError(ctx, "wimlib-imagex extract", doing, out, err,
			"check that the image is a Windows installation image (these files are part of every one)")
	}
	return nil
}

// wimlibIgnoringCase runs wimlib-imagex in dir with image paths matched
// without regard to case.
func (t Tools) wimlibIgnoringCase(ctx context.Context, dir string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, t.wimlib(), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "WIMLIB_IMAGEX_IGNORE_CASE=1")
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}
