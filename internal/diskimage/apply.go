package diskimage

import (
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
)

// ApplyImage applies image index of the WIM (or ESD) at wimPath onto the
// unmounted NTFS volume file made by FormatNTFS, with
// `wimlib-imagex apply WIM INDEX VOLUME`. Given a volume rather than a
// directory, wimlib writes through libntfs-3g and keeps what a Linux
// directory would lose: security descriptors, DOS short names, reparse
// points, alternate data streams; so the result is what dism /Apply-Image
// would give.
//
// A volume that an apply failed on holds part of an image and must never
// be booted, so on any error (including cancellation and an index not in
// the WIM) ApplyImage removes volumePath.
func (t Tools) ApplyImage(ctx context.Context, wimPath string, index int, volumePath string) (err error) {
	defer func() {
		if err != nil {
			_ = os.Remove(volumePath)
		}
	}()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("applying image %d of %s: %w", index, wimPath, err)
	}
	// Check the index first: wimlib's own message for a bad one ("not a
	// valid image") does not say which images there are.
	images, err := t.Images(ctx, wimPath)
	if err != nil {
		return fmt.Errorf("applying image %d of %s: %w", index, wimPath, err)
	}
	found := false
	for _, im := range images {
		found = found || im.Index == index
	}
	if !found {
		return fmt.Errorf("applying image %d of %s: the WIM has no image %d; it has %s; set wimindex to one of these", index, wimPath, index, listImages(images))
	}
	out, err := run(ctx, t.wimlib(), "apply", wimPath, strconv.Itoa(index), volumePath)
	if err != nil {
		hint := "check that wimtools (built with NTFS-3G support) is installed and the WIM is not damaged (wimlib-imagex verify)"
		if strings.Contains(string(out), "No space left") || strings.Contains(string(out), "not enough space") {
			hint = "the disk is too small for this image: raise image.size in the key's configuration"
		}
		return toolError(ctx, "wimlib-imagex apply", fmt.Sprintf("applying image %d of %s to NTFS volume %s", index, wimPath, volumePath), out, err, hint)
	}
	return nil
}

// PutFile copies the local file srcPath into the unmounted NTFS volume at
// ntfsPath (for example `Windows\Panther\unattend.xml`; backslashes and
// slashes both work, a leading separator is optional), replacing a file
// already there. It uses ntfscp from ntfs-3g, which writes through
// libntfs-3g without mounting.
//
// The parent directory must already exist: no ntfs-3g tool creates a
// directory in an unmounted volume (ntfscp cannot, and a second
// wimlib-imagex apply refuses a volume whose top-level names exist). The
// places cib writes to exist in every Windows image: the volume root,
// Windows\Panther and Windows\Temp. PutFile checks first, because ntfscp
// given a directory as destination would silently copy into it under the
// source's name.
func PutFile(ctx context.Context, volumePath, srcPath, ntfsPath string) error {
	ntfscp, err := lookTool("ntfscp", "ntfs-3g")
	if err != nil {
		return err
	}
	ntfsinfo, err := lookTool("ntfsinfo", "ntfs-3g")
	if err != nil {
		return err
	}
	dest := cleanNTFSPath(ntfsPath)
	doing := fmt.Sprintf("copying %s to %s in NTFS volume %s", srcPath, ntfsPath, volumePath)
	if dest == "/" {
		return fmt.Errorf("%s: the destination must name a file", doing)
	}
	if st, err := os.Stat(srcPath); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: the source is not a regular file", doing)
	}

	parent := path.Dir(dest)
	kind, err := ntfsKind(ctx, ntfsinfo, volumePath, parent)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if kind != "dir" {
		return fmt.Errorf("%s: directory %s does not exist in the volume; PutFile cannot create directories, so choose a path under an existing one (the root, Windows\\Panther, Windows\\Temp)", doing, toWindowsPath(parent))
	}
	kind, err = ntfsKind(ctx, ntfsinfo, volumePath, dest)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if kind == "dir" {
		return fmt.Errorf("%s: %s is a directory in the volume; give the full file path", doing, toWindowsPath(dest))
	}
	if out, err := run(ctx, ntfscp, "--quiet", volumePath, srcPath, dest); err != nil {
		return toolError(ctx, "ntfscp", doing, out, err,
			"check that the volume was formatted by FormatNTFS and has free space")
	}
	return nil
}

// ntfsKind reports whether p is a "dir", a "file" or "" (absent) in the
// volume. It reads ntfsinfo's MFT record flags because ntfsinfo exits 0
// even when the path does not exist, and ntfsls -p prints a file and a
// directory holding one file alike.
func ntfsKind(ctx context.Context, ntfsinfo, volumePath, p string) (string, error) {
	out, err := run(ctx, ntfsinfo, "--file", p, volumePath)
	if err != nil {
		return "", toolError(ctx, "ntfsinfo", "looking up "+toWindowsPath(p), out, err,
			"check that the volume was formatted by FormatNTFS")
	}
	for l := range strings.Lines(string(out)) {
		if flags, ok := strings.CutPrefix(strings.TrimSpace(l), "MFT Record Flags:"); ok {
			if strings.Contains(flags, "DIRECTORY") {
				return "dir", nil
			}
			return "file", nil
		}
	}
	return "", nil
}

// cleanNTFSPath turns a Windows-style path into the absolute slash path the
// ntfs-3g tools take.
func cleanNTFSPath(p string) string {
	return path.Clean("/" + strings.ReplaceAll(p, `\`, "/"))
}

func toWindowsPath(p string) string {
	return strings.ReplaceAll(p, "/", `\`)
}
