package diskimage

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLocalStorePutPaths checks both ways Put stores an image: moving the
// file (same file system) and copying it sparse-aware.
func TestLocalStorePutPaths(t *testing.T) {
	for _, copying := range []bool{false, true} {
		name := map[bool]string{false: "move", true: "copy"}[copying]
		t.Run(name, func(t *testing.T) {
			defer func(old bool) { localStoreNoMove = old }(localStoreNoMove)
			localStoreNoMove = copying
			ctx := context.Background()
			s := LocalStore{Dir: t.TempDir()}
			srcDir := t.TempDir()
			src := filepath.Join(srcDir, "disk.vhd")
			const size = 64 << 20
			f, err := os.Create(src)
			require.NoError(t, err)
			require.NoError(t, f.Truncate(size))
			_, err = f.WriteAt([]byte("head"), 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte("middle"), 3*localChunk+17)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte("footer"), size-6)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			want, err := os.ReadFile(src)
			require.NoError(t, err)

			require.NoError(t, s.Put(ctx, src, "vhd/x.vhd", map[string]string{"fingerprint": "f"}))
			dst := filepath.Join(s.Dir, "vhd", "x.vhd")
			got, err := os.ReadFile(dst)
			require.NoError(t, err)
			assert.Equal(t, want, got)
			assert.Less(t, allocated(t, dst), int64(4*localChunk), "stored image should stay sparse")
			ok, md, err := s.Exists(ctx, "vhd/x.vhd")
			require.NoError(t, err)
			assert.True(t, ok)
			assert.Equal(t, map[string]string{"fingerprint": "f"}, md)
			assertEmpty(t, filepath.Join(s.Dir, "vhd"), "x.vhd", "x.vhd.json")
			if copying {
				assertEmpty(t, srcDir, "disk.vhd") // the source is kept
			} else {
				assertEmpty(t, srcDir) // the source was moved
			}
		})
	}
}

// TestLocalStorePutSidecarFails checks that a Put whose metadata cannot
// be written leaves nothing under the name, on the moving path too.
func TestLocalStorePutSidecarFails(t *testing.T) {
	ctx := context.Background()
	s := LocalStore{Dir: t.TempDir()}
	src := filepath.Join(t.TempDir(), "disk.vhd")
	require.NoError(t, os.WriteFile(src, []byte("image"), 0o644))
	// A directory where the sidecar's .part file goes makes writing it fail.
	require.NoError(t, os.MkdirAll(filepath.Join(s.Dir, "vhd", "y.vhd.json.part", "x"), 0o755))
	err := s.Put(ctx, src, "vhd/y.vhd", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "metadata of vhd/y.vhd")
	// Only the blocking directory is left: no image, .part or sidecar.
	assertEmpty(t, filepath.Join(s.Dir, "vhd"), "y.vhd.json.part")
}

// TestLocalStorePutMissing checks that a missing source is an error that
// leaves nothing behind.
func TestLocalStorePutMissing(t *testing.T) {
	s := LocalStore{Dir: t.TempDir()}
	err := s.Put(context.Background(), filepath.Join(t.TempDir(), "missing"), "vhd/z.vhd", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "vhd/z.vhd")
	assertEmpty(t, filepath.Join(s.Dir, "vhd"))
}
