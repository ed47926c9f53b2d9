package diskimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cib-project/cib/internal/vhd"
)

// LocalStore is the Store of the `local` platform: images are files under
// Dir, at their names, each with a sidecar name + ".json" holding its
// metadata. The zero-cloud default must behave like a blob store, so Put
// writes (or moves the image to) name + ".part", fsyncs it and renames it,
// which is atomic on one file system.
type LocalStore struct{ Dir string }

// localChunk is the unit LocalStore copies and checks for zeros in.
const localChunk = 4 << 20

// localStoreNoMove makes Put copy even within one file system, so that
// tests exercise the copying path.
var localStoreNoMove = false

// path maps a store name to a file. Names come from BlobName, but a
// name that would escape Dir is refused rather than trusted.
func (s LocalStore) path(name string) (string, error) {
	if s.Dir == "" {
		return "", errors.New("local store: no directory")
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return "", fmt.Errorf("local store: name %q is not a relative path inside the store", name)
	}
	return filepath.Join(s.Dir, filepath.FromSlash(name)), nil
}

// Container is the directory, recorded as the manifest's container.
func (s LocalStore) Container() string { return s.Dir }

// Exists reports whether name and its metadata sidecar are both there. An
// image without a sidecar counts as present with no metadata, so its
// fingerprint never matches and a re-run replaces it.
func (s LocalStore) Exists(ctx context.Context, name string) (bool, map[string]string, error) {
	p, err := s.path(name)
	if err != nil {
		return false, nil, err
	}
	if err := ctx.Err(); err != nil {
		return false, nil, fmt.Errorf("local store: checking %s: %w", name, err)
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return false, nil, nil
	} else if err != nil {
		return false, nil, fmt.Errorf("local store: checking %s: %w", name, err)
	}
	b, err := os.ReadFile(p + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil, nil
	} else if err != nil {
		return false, nil, fmt.Errorf("local store: reading metadata of %s: %w", name, err)
	}
	var md map[string]string
	if err := json.Unmarshal(b, &md); err != nil {
		return false, nil, fmt.Errorf("local store: metadata %s.json: %w", p, err)
	}
	return true, md, nil
}

// Put stores the file at path under name and then writes the metadata
// sidecar. It consumes the file at path when it can: when path is on the
// same file system as Dir it is renamed to name + ".part" (no data is
// copied; Build removes its scratch disk afterwards anyway), otherwise it
// is copied there, keeping all-zero chunks as holes since a fixed VHD is
// mostly zeros, with the kernel's copy_file_range for the data. Either
// way the .part file is fsynced before it is renamed to name, so that name
// never holds a partial image, even after a crash. If the sidecar cannot
// be written the image is removed again, so that a failed Put leaves
// nothing under name; the file at path may be gone by then.
func (s LocalStore) Put(ctx context.Context, path, name string, metadata map[string]string) (err error) {
	dst, err := s.path(name)
	if err != nil {
		return err
	}
	md, err := json.MarshalIndent(metadata, "", "  ")
	if err != nil {
		return fmt.Errorf("local store: encoding metadata of %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local store: putting %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("local store: %w", err)
	}
	part := dst + ".part"
	// A failed rename (EXDEV across file systems, or anything else) falls
	// back to copying, which reports a real problem with path itself.
	if !localStoreNoMove && os.Rename(path, part) == nil {
		if err := syncFile(part); err != nil {
			_ = os.Remove(part)
			return fmt.Errorf("local store: syncing %s: %w", name, err)
		}
	} else if err := copyFileSparse(ctx, path, part); err != nil {
		return fmt.Errorf("local store: copying %s to %s: %w", path, name, err)
	}
	if err := os.Rename(part, dst); err != nil {
		_ = os.Remove(part)
		return fmt.Errorf("local store: %w", err)
	}
	if err := writeFileAtomic(dst+".json", md); err != nil {
		_ = os.Remove(dst)
		return fmt.Errorf("local store: metadata of %s: %w", name, err)
	}
	return nil
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	serr := f.Sync()
	if cerr := f.Close(); serr == nil {
		serr = cerr
	}
	return serr
}

// copyFileSparse copies src to dst (created or truncated) and fsyncs it,
// seeking over all-zero chunks instead of writing them. The data chunks
// go through io.CopyN between the two *os.File values, which the os
// package turns into copy_file_range, so they are copied in the kernel.
// dst is removed on error.
func copyFileSparse(ctx context.Context, src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	ranges, err := vhd.DataRanges(in, fi.Size(), localChunk, 16*localChunk)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := in.Seek(r.Offset, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(r.Offset, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, r.Length); err != nil {
			return err
		}
	}
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	return out.Sync()
}

// writeFileAtomic writes b to path through path + ".part" and a rename.
func writeFileAtomic(path string, b []byte) error {
	if err := os.WriteFile(path+".part", b, 0o644); err != nil {
		_ = os.Remove(path + ".part")
		return err
	}
	if err := os.Rename(path+".part", path); err != nil {
		_ = os.Remove(path + ".part")
		return err
	}
	return nil
}
