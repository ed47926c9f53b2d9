// Package diskimage holds the first steps of the wimlib disk-image builder
// (docs: spec/disk-image.md §3): getting the Windows image out of an
// installation ISO and choosing which of its images to apply.
package diskimage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Tools names the external programs, so that tests and the action can point
// at particular builds. The zero value finds them on PATH: "7z" (p7zip-full)
// or "7zz" (7zip) for SevenZip, "wimlib-imagex" (wimtools) for Wimlib, and
// for PowerShell, which runs the dism builder's script, "powershell.exe" on
// Windows and "pwsh" elsewhere. Dism, when set, lists a WIM's images
// instead of wimlib-imagex; on Windows "dism.exe" does when wimlib-imagex
// is not installed, as on GitHub's Windows runners.
type Tools struct {
	SevenZip, Wimlib string
	PowerShell       string
	Dism             string
}

// sevenZip resolves the 7-Zip binary. Both Debian spellings are tried because
// p7zip-full ships "7z" and the newer 7zip package ships "7zz".
func (t Tools) sevenZip() (string, error) {
	if t.SevenZip != "" {
		return t.SevenZip, nil
	}
	for _, name := range []string{"7z", "7zz"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("7-Zip not found on PATH (looked for 7z and 7zz): install the Debian package p7zip-full or 7zip")
}

// wimlib resolves wimlib-imagex.
func (t Tools) wimlib() string {
	if t.Wimlib != "" {
		return t.Wimlib
	}
	return "wimlib-imagex"
}

// isoImageTypes are the 7-Zip archive types that a Windows installation ISO
// can open as. Anything else (a zip, a random file that happens to parse)
// is rejected so that we never treat a non-ISO as an installation medium.
var isoImageTypes = map[string]bool{"udf": true, "iso": true}

// wimCandidates are the paths looked for, in order of preference: the plain
// WIM first, since it needs no solid-block decompression to read.
var wimCandidates = []string{"sources/install.wim", "sources/install.esd"}

// ExtractWIM copies sources/install.wim (or, failing that, sources/install.esd)
// out of the ISO at isoPath into dir and returns the path of the copy
// (dir/install.wim or dir/install.esd; an existing file of that name is
// replaced). It goes through 7-Zip because Windows ISOs keep files larger
// than 4 GiB only in their UDF file system, and 7-Zip opens UDF in preference
// to ISO9660 when a disc has both.
//
// The file is extracted into a temporary directory inside dir and renamed
// into place only when complete, so on error or cancellation nothing that
// ExtractWIM created is left in dir and no partial file ever carries the
// final name.
func (t Tools) ExtractWIM(ctx context.Context, isoPath, dir string) (string, error) {
	sz, err := t.sevenZip()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(isoPath); err != nil {
		// The *PathError names the ISO.
		return "", fmt.Errorf("reading ISO image: %w", err)
	}

	entry, err := findWIM(ctx, sz, isoPath)
	if err != nil {
		return "", err
	}

	tmp, err := os.MkdirTemp(dir, ".cib-extract-")
	if err != nil {
		return "", fmt.Errorf("extracting %s from %s: %w", entry, isoPath, err)
	}
	defer os.RemoveAll(tmp)

	// -bd: no progress meter in logs; -y: never prompt (stdin is not a
	// terminal in CI); "--" so an ISO path that starts with "-" is not a switch.
	out, err := run(ctx, sz, "x", "-y", "-bd", "-o"+tmp, "--", isoPath, entry)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("extracting %s from %s: %w", entry, isoPath, ctx.Err())
		}
		return "", fmt.Errorf("extracting %s from %s: %s", entry, isoPath, sevenZipReason(out, err, isoPath))
	}
	extracted := filepath.Join(tmp, filepath.FromSlash(entry))
	if _, err := os.Stat(extracted); err != nil {
		// 7-Zip exits 0 with "No files to process" when a name does not match;
		// the listing said it was there, so this is a 7-Zip/ISO inconsistency.
		return "", fmt.Errorf("extracting %s from %s: 7-Zip reported success but wrote no file", entry, isoPath)
	}
	final := filepath.Join(dir, strings.ToLower(filepath.Base(entry)))
	if err := os.Rename(extracted, final); err != nil {
		return "", fmt.Errorf("extracting %s from %s: %w", entry, isoPath, err)
	}
	return final, nil
}

// findWIM lists the ISO and returns the archive path of its install image,
// spelled as 7-Zip spells it (matching is case-insensitive because ISO9660
// and UDF authoring tools do not agree on case).
func findWIM(ctx context.Context, sz, isoPath string) (string, error) {
	out, err := run(ctx, sz, "l", "-slt", "-bd", "--", isoPath)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("reading %s: %w", isoPath, ctx.Err())
		}
		if !isExitError(err) {
			// 7-Zip did not run at all: not the ISO's fault.
			return "", fmt.Errorf("reading %s: running 7-Zip: %w", isoPath, err)
		}
		return "", fmt.Errorf("%s is not a readable ISO image: %s", isoPath, sevenZipReason(out, err, isoPath))
	}
	archiveType, paths := parseListing(out)
	if !isoImageTypes[strings.ToLower(archiveType)] {
		return "", fmt.Errorf("%s is not a readable ISO image: 7-Zip opens it as %q, not as UDF or ISO9660", isoPath, archiveType)
	}
	for _, want := range wimCandidates {
		for _, p := range paths {
			if strings.EqualFold(strings.TrimPrefix(p, "/"), want) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s has no sources/install.wim or sources/install.esd: is it a Windows installation ISO?", isoPath)
}

// parseListing reads `7z l -slt` output: the archive's own properties come
// before a line of ten dashes, then one "Path = " block per entry.
func parseListing(out []byte) (archiveType string, paths []string) {
	inEntries := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "----------":
			inEntries = true
		case !inEntries && archiveType == "" && strings.HasPrefix(line, "Type = "):
			archiveType = strings.TrimPrefix(line, "Type = ")
		case inEntries && strings.HasPrefix(line, "Path = "):
			paths = append(paths, strings.TrimPrefix(line, "Path = "))
		}
	}
	return archiveType, paths
}

// sevenZipReason picks 7-Zip's own error lines out of its output, since its
// exit status alone ("exit status 2") tells the user nothing.
// The archive path 7-Zip puts in front of a reason is dropped: our message
// already names the ISO.
func sevenZipReason(out []byte, err error, isoPath string) string {
	var reasons []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "ERROR:") || strings.HasPrefix(line, "Can not open") ||
			strings.HasPrefix(line, "Cannot open") || strings.Contains(line, "Unexpected end") {
			line = strings.TrimSpace(strings.TrimPrefix(line, "ERROR:"))
			line = strings.TrimPrefix(line, isoPath+" : ")
			reasons = append(reasons, line)
		}
	}
	if len(reasons) == 0 {
		return err.Error()
	}
	return strings.Join(reasons, "; ")
}

// run executes a tool with ctx, returning stdout and stderr together because
// 7-Zip splits its diagnostics between them. The process is killed when ctx
// is cancelled.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, name, args...)
	// Untranslated messages, so that error parsing and logs are stable.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// Should a tool leave a child holding its output pipes after being
	// killed, stop waiting for them rather than hang the build.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return out, err
}

// isExitError tells a tool that ran and failed from one that could not be
// started (missing binary, no permission).
func isExitError(err error) bool {
	var exitErr *exec.ExitError
	return errors.As(err, &exitErr)
}
