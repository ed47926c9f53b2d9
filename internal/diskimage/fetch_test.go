package diskimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
)

const isoSize = 10 << 20

func randomISO(seed uint64) []byte {
	data := make([]byte, isoSize)
	r := mrand.New(mrand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return data
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// isoServer serves data with http.ServeContent (Range and If-Range
// support) and can misbehave: drop the connection after dropAfter bytes
// the first drops times, ignore Range, or answer status.
type isoServer struct {
	data      []byte
	noRange   bool
	status    int
	drops     int
	dropAfter int

	mu     sync.Mutex
	ranges []string // the Range header of each request, "" when absent
	codes  []int
}

func (s *isoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	drop := s.drops > 0
	if drop {
		s.drops--
	}
	s.mu.Unlock()
	rec := &cutWriter{ResponseWriter: w, left: -1, s: s}
	if drop {
		rec.left = s.dropAfter
	}
	if s.status != 0 {
		http.Error(rec, "no such file", s.status)
		return
	}
	if s.noRange {
		r.Header.Del("Range")
	}
	http.ServeContent(rec, r, "win.iso", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), bytes.NewReader(s.data))
}

func (s *isoServer) seen() (ranges []string, codes []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...), append([]int(nil), s.codes...)
}

// cutWriter records the status and, when left >= 0, sends only left bytes
// of the body and then aborts the connection.
type cutWriter struct {
	http.ResponseWriter
	left int
	s    *isoServer
}

func (c *cutWriter) WriteHeader(code int) {
	c.s.mu.Lock()
	c.s.codes = append(c.s.codes, code)
	c.s.mu.Unlock()
	c.ResponseWriter.WriteHeader(code)
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.left < 0 || len(p) <= c.left {
		if c.left >= 0 {
			c.left -= len(p)
		}
		return c.ResponseWriter.Write(p)
	}
	_, _ = c.ResponseWriter.Write(p[:c.left])
	c.ResponseWriter.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

func serve(t *testing.T, s *isoServer) string {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL + "/isos/win.iso"
}

func fastFetcher() *Fetcher {
	return &Fetcher{Backoff: time.Millisecond}
}

// assertNothingLeft checks that neither dest nor its .part exists.
func assertNothingLeft(t *testing.T, dest string) {
	t.Helper()
	assert.NoFileExists(t, dest)
	assert.NoFileExists(t, dest+".part")
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "%s: content differs (%d bytes, want %d)", path, len(got), len(want))
}

func TestFetchURLResumesAfterDroppedConnections(t *testing.T) {
	data := randomISO(1)
	s := &isoServer{data: data, drops: 2, dropAfter: 3 << 20}
	u := serve(t, s)
	dest := filepath.Join(t.TempDir(), "win.iso")
	f := fastFetcher()
	var done, total int64
	f.Progress = func(d, t int64) { done, total = d, t }

	require.NoError(t, f.Fetch(context.Background(), config.Location{Platform: "url", URL: u}, sum(data), dest))
	assertFile(t, dest, data)
	assert.NoFileExists(t, dest+".part")
	ranges, codes := s.seen()
	assert.Equal(t, []string{"", fmt.Sprintf("bytes=%d-", 3<<20), fmt.Sprintf("bytes=%d-", 6<<20)}, ranges)
	assert.Equal(t, []int{200, 206, 206}, codes)
	assert.EqualValues(t, isoSize, done)
	assert.EqualValues(t, isoSize, total)
}

func TestFetchURLWithoutRangeSupportStartsOver(t *testing.T) {
	data := randomISO(2)
	s := &isoServer{data: data, noRange: true, drops: 1, dropAfter: 3 << 20}
	u := serve(t, s)
	dest := filepath.Join(t.TempDir(), "win.iso")

	require.NoError(t, fastFetcher().Fetch(context.Background(), config.Location{Platform: "url", URL: u}, sum(data), dest))
	assertFile(t, dest, data)
	ranges, codes := s.seen()
	// The client asked to resume; the server sent everything again.
	assert.Equal(t, []string{"", fmt.Sprintf("bytes=%d-", 3<<20)}, ranges)
	assert.Equal(t, []int{200, 200}, codes)
}

func TestFetchURLChecksumMismatchLeavesNothing(t *testing.T) {
	data := randomISO(3)
	u := serve(t, &isoServer{data: data})
	dest := filepath.Join(t.TempDir(), "win.iso")
	wrong := sum([]byte("another iso"))

	err := fastFetcher().Fetch(context.Background(), config.Location{Platform: "url", URL: u}, wrong, dest)
	require.Error(t, err)
	assert.Equal(t, fmt.Sprintf("checksum mismatch for %s: got %s, want %s; the file was removed", u, sum(data), wrong), err.Error())
	assertNothingLeft(t, dest)
}

func TestFetchURLNotFoundNamesTheURL(t *testing.T) {
	s := &isoServer{status: http.StatusNotFound}
	u := serve(t, s)
	dest := filepath.Join(t.TempDir(), "win.iso")

	err := fastFetcher().Fetch(context.Background(), config.Location{Platform: "url", URL: u + "?sig=secret"}, "", dest)
	require.Error(t, err)
	assert.Contains(t, err.Error(), u)
	assert.Contains(t, err.Error(), "404")
	assert.NotContains(t, err.Error(), "secret", "a pre-signed url's query must not reach the log")
	assertNothingLeft(t, dest)
	ranges, _ := s.seen()
	assert.Len(t, ranges, 1, "a 404 is not retried")
}

func TestFetchURLResumesExistingPart(t *testing.T) {
	data := randomISO(4)
	s := &isoServer{data: data}
	u := serve(t, s)
	dest := filepath.Join(t.TempDir(), "win.iso")
	require.NoError(t, os.WriteFile(dest+".part", data[:4<<20], 0o644))

	require.NoError(t, fastFetcher().Fetch(context.Background(), config.Location{Platform: "url", URL: u}, sum(data), dest))
	assertFile(t, dest, data)
	ranges, codes := s.seen()
	assert.Equal(t, []string{fmt.Sprintf("bytes=%d-", 4<<20)}, ranges, "only the rest is requested")
	assert.Equal(t, []int{206}, codes)
}

func TestFetchURLCompletePartIsJustVerified(t *testing.T) {
	data := randomISO(5)
	s := &isoServer{data: data}
	u := serve(t, s)
	dest := filepath.Join(t.TempDir(), "win.iso")
	require.NoError(t, os.WriteFile(dest+".part", data, 0o644))

	require.NoError(t, fastFetcher().Fetch(context.Background(), config.Location{Platform: "url", URL: u}, sum(data), dest))
	assertFile(t, dest, data)
	_, codes := s.seen()
	assert.Equal(t, []int{416}, codes)
}

func TestFetchURLKeepsPartAfterRetriesThenResumes(t *testing.T) {
	data := randomISO(6)
	s := &isoServer{data: data, drops: 100, dropAfter: 1 << 20}
	u := serve(t, s)
	dest := filepath.Join(t.TempDir(), "win.iso")
	f := fastFetcher()
	f.Retries = 2

	err := f.Fetch(context.Background(), config.Location{Platform: "url", URL: u}, sum(data), dest)
	require.Error(t, err)
	assert.Contains(t, err.Error(), u)
	assert.Contains(t, err.Error(), "after 3 attempts")
	assert.NoFileExists(t, dest)
	fi, err := os.Stat(dest + ".part")
	require.NoError(t, err, "a network failure keeps the .part for the re-run")
	assert.EqualValues(t, 3<<20, fi.Size())

	s.mu.Lock()
	s.drops, s.ranges, s.codes = 0, nil, nil
	s.mu.Unlock()
	require.NoError(t, f.Fetch(context.Background(), config.Location{Platform: "url", URL: u}, sum(data), dest))
	assertFile(t, dest, data)
	ranges, _ := s.seen()
	assert.Equal(t, []string{fmt.Sprintf("bytes=%d-", 3<<20)}, ranges)
}

func TestFetchURLCancelled(t *testing.T) {
	data := randomISO(7)
	u := serve(t, &isoServer{data: data})

	t.Run("before", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "win.iso")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := fastFetcher().Fetch(ctx, config.Location{Platform: "url", URL: u}, "", dest)
		require.ErrorIs(t, err, context.Canceled)
		assertNothingLeft(t, dest)
	})
	t.Run("during", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "win.iso")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := fastFetcher()
		f.Progress = func(done, total int64) {
			if done > 0 && done < total {
				cancel()
			}
		}
		err := f.Fetch(ctx, config.Location{Platform: "url", URL: u}, "", dest)
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), u)
		assertNothingLeft(t, dest)
	})
}

func TestFetchLocal(t *testing.T) {
	data := randomISO(8)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.iso")
	require.NoError(t, os.WriteFile(src, data, 0o644))
	link := filepath.Join(dir, "link.iso")
	require.NoError(t, os.Symlink("src.iso", link))

	linkFails := func(t *testing.T) {
		old := fetchLink
		fetchLink = func(string, string) error { return errors.New("cross-device link") }
		t.Cleanup(func() { fetchLink = old })
	}
	for _, tc := range []struct {
		name string
		copy bool
		path string
	}{{"hard link", false, src}, {"copy", true, src}, {"through a symlink", false, link}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.copy {
				linkFails(t)
			}
			dest := filepath.Join(t.TempDir(), "win.iso")
			require.NoError(t, (&Fetcher{}).Fetch(context.Background(), config.Location{Platform: "local", Path: tc.path}, sum(data), dest))
			assertFile(t, dest, data)
			fi, err := os.Lstat(dest)
			require.NoError(t, err)
			assert.True(t, fi.Mode().IsRegular(), "dest is a regular file, not a symlink")
			assert.NoFileExists(t, dest+".part")

			dest2 := filepath.Join(t.TempDir(), "win.iso")
			wrong := sum(nil)
			err = (&Fetcher{}).Fetch(context.Background(), config.Location{Platform: "local", Path: tc.path}, wrong, dest2)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "checksum mismatch for "+tc.path+": got "+sum(data)+", want "+wrong)
			assertNothingLeft(t, dest2)
		})
	}

	t.Run("missing", func(t *testing.T) {
		missing := filepath.Join(dir, "nope.iso")
		dest := filepath.Join(t.TempDir(), "win.iso")
		err := (&Fetcher{}).Fetch(context.Background(), config.Location{Platform: "local", Path: missing}, "", dest)
		require.Error(t, err)
		assert.Contains(t, err.Error(), missing)
		assertNothingLeft(t, dest)
	})
	t.Run("cancelled", func(t *testing.T) {
		linkFails(t)
		dest := filepath.Join(t.TempDir(), "win.iso")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := (&Fetcher{}).Fetch(ctx, config.Location{Platform: "local", Path: src}, "", dest)
		require.ErrorIs(t, err, context.Canceled)
		assertNothingLeft(t, dest)
	})
}

// memBlobs is an in-memory BlobSource whose Download fails once, after
// failAfter bytes, the first time it is called.
type memBlobs struct {
	blobs     map[string][]byte
	failAfter int64
	failed    bool
	offsets   []int64
}

func (m *memBlobs) Size(_ context.Context, _, name string) (int64, error) {
	b, ok := m.blobs[name]
	if !ok {
		return 0, fmt.Errorf("azure: blob %s: not found", name)
	}
	return int64(len(b)), nil
}

func (m *memBlobs) Download(ctx context.Context, _, name string, offset int64, w io.Writer) (int64, error) {
	m.offsets = append(m.offsets, offset)
	b := m.blobs[name][offset:]
	if !m.failed && m.failAfter > 0 {
		m.failed = true
		n, err := w.Write(b[:m.failAfter])
		if err != nil {
			return int64(n), err
		}
		return int64(n), fmt.Errorf("azure: download blob %s: connection reset", name)
	}
	n, err := w.Write(b)
	return int64(n), err
}

func TestFetchBlobResumesFromOffset(t *testing.T) {
	data := randomISO(9)
	blobs := &memBlobs{blobs: map[string][]byte{"iso/win.iso": data}, failAfter: 5<<20 + 3}
	f := fastFetcher()
	f.Blobs = blobs
	dest := filepath.Join(t.TempDir(), "win.iso")
	loc := config.Location{Platform: "azure", Bucket: "isos", Key: "iso/win.iso"}

	require.NoError(t, f.Fetch(context.Background(), loc, sum(data), dest))
	assertFile(t, dest, data)
	assert.Equal(t, []int64{0, 5<<20 + 3}, blobs.offsets)
	assert.NoFileExists(t, dest+".part")

	t.Run("missing blob", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "win.iso")
		err := f.Fetch(context.Background(), config.Location{Platform: "azure", Bucket: "isos", Key: "nope.iso"}, "", dest)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "azure blob isos/nope.iso")
		assertNothingLeft(t, dest)
	})
	t.Run("checksum mismatch", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "win.iso")
		err := f.Fetch(context.Background(), loc, sum(nil), dest)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "checksum mismatch for azure blob isos/iso/win.iso")
		assertNothingLeft(t, dest)
	})
}

func TestFetchUnsupportedSources(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "win.iso")
	for _, tc := range []struct {
		loc  config.Location
		want string
	}{
		{config.Location{Platform: "azure", Bucket: "isos", Key: "win.iso"}, "azure credentials are needed"},
		{config.Location{Platform: "amazon", Bucket: "isos"}, "a bucket and a key are needed"},
		{config.Location{Platform: "url", URL: "ftp://example.com/win.iso"}, "not an http or https url"},
	} {
		err := (&Fetcher{}).Fetch(context.Background(), tc.loc, "", dest)
		require.Error(t, err, tc.loc.Platform)
		assert.Contains(t, err.Error(), tc.want)
		assertNothingLeft(t, dest)
	}
	err := (&Fetcher{}).Fetch(context.Background(), config.Location{Platform: "local", Path: "/x"}, "abc", dest)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a hex SHA-256")
}

// cloudTransport sends every request to one test server and keeps the
// URLs asked for, standing in for S3 and Cloud Storage.
type cloudTransport struct {
	target string
	mu     sync.Mutex
	asked  []string
}

func (c *cloudTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.asked = append(c.asked, req.URL.String())
	c.mu.Unlock()
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host = "http", strings.TrimPrefix(c.target, "http://")
	return http.DefaultTransport.RoundTrip(r)
}

func TestFetchPublicCloudObjects(t *testing.T) {
	data := []byte("a package from another cloud")
	sum := sha256.Sum256(data)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "private") {
			http.Error(w, "AccessDenied", http.StatusForbidden)
			return
		}
		_, _ = w.Write(data)
	}))
	t.Cleanup(ts.Close)
	tr := &cloudTransport{target: ts.URL}
	f := &Fetcher{HTTP: &http.Client{Transport: tr}, Retries: -1}
	dir := t.TempDir()

	for i, loc := range []config.Location{
		{Platform: "amazon", Bucket: "windows-ami-builder", Key: "package/nxlog ce.msi"},
		{Platform: "google", Bucket: "windows-ami-builder", Key: "package/nxlog.msi"},
	} {
		dest := filepath.Join(dir, fmt.Sprint(i))
		require.NoError(t, f.Fetch(context.Background(), loc, hex.EncodeToString(sum[:]), dest))
		got, err := os.ReadFile(dest)
		require.NoError(t, err)
		assert.Equal(t, data, got)
	}
	assert.Equal(t, []string{
		"https://windows-ami-builder.s3.amazonaws.com/package/nxlog%20ce.msi",
		"https://storage.googleapis.com/windows-ami-builder/package/nxlog.msi",
	}, tr.asked)

	dest := filepath.Join(dir, "private")
	err := f.Fetch(context.Background(), config.Location{Platform: "amazon", Bucket: "b", Key: "private.msi"}, "", dest)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403 Forbidden")
	assert.Contains(t, err.Error(), "if the object is private, give the entry an azure or url source")
	assertNothingLeft(t, dest)
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 100-199/1000", 100, 1000, true},
		{"bytes 0-9/*", 0, -1, true},
		{"bytes */1000", -1, 1000, true},
		{"items 0-9/10", 0, 0, false},
		{"bytes 0-9", 0, 0, false},
	} {
		start, total, ok := parseContentRange(tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
		if ok {
			assert.Equal(t, tc.start, start, tc.in)
			assert.Equal(t, tc.total, total, tc.in)
		}
	}
}
