package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/cib-project/cib/internal/vhd"
)

const mib = 1 << 20

// makeSparseVHD writes a sparse fixed VHD of rawSize bytes (plus footer)
// with random data in about fraction of its 4 MiB chunks, always including
// the first and the last, at unaligned offsets inside each chunk.
func makeSparseVHD(t testing.TB, rawSize int64, fraction float64, seed uint64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.vhd")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(rawSize); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	chunks := rawSize / (4 * mib)
	picked := map[int64]bool{0: true, chunks - 1: true}
	for want := max(int(float64(chunks)*fraction), 2); len(picked) < want; {
		picked[rng.Int64N(chunks)] = true
	}
	buf := make([]byte, 4*mib)
	for c := range picked {
		n := 1 + rng.Int64N(4*mib)
		off := rng.Int64N(4*mib - n + 1)
		switch c {
		case 0: // the first MiB, where the partition table lives
			off, n = 0, max(n, mib)
		case chunks - 1: // the last MiB, right before the footer
			off, n = 4*mib-mib, mib
		}
		p := buf[:n]
		for i := range p {
			p[i] = byte(rng.Uint32()) | 1 // never zero, so n bytes really are data
		}
		if _, err := f.WriteAt(p, c*4*mib+off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := vhd.WriteFixed(path, [16]byte{1, 2, 3}, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return path
}

// dataBytes is the independent expectation for Result.Sent.
func dataBytes(t testing.TB, path string) (size, data int64, ranges []vhd.Range) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	ranges, err = vhd.DataRanges(f, fi.Size(), 4*mib, 4*mib)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		data += r.Length
	}
	return fi.Size(), data, ranges
}

func listBlobs(t testing.TB, c *container.Client) []string {
	t.Helper()
	var names []string
	pager := c.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	return names
}

// checkBlobEqualsFile compares the blob with the file page range by page
// range, and checks that the file is all zeros wherever the blob has no
// pages (which read back as zeros), plus one direct zero read-back.
func checkBlobEqualsFile(t *testing.T, b *pageblob.Client, path string) {
	t.Helper()
	ctx := context.Background()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	props, err := b.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *props.ContentLength != fi.Size() {
		t.Fatalf("blob size %d, file size %d", *props.ContentLength, fi.Size())
	}
	var pages []vhd.Range
	pager := b.NewGetPageRangesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range page.PageRange {
			pages = append(pages, vhd.Range{Offset: *pr.Start, Length: *pr.End - *pr.Start + 1})
		}
	}
	pages = mergeRanges(pages)
	local := make([]byte, 4*mib)
	remote := make([]byte, 4*mib)
	zero := make([]byte, 4*mib)
	checkZero := func(from, to int64) {
		for off := from; off < to; off += 4 * mib {
			n := min(4*mib, to-off)
			if _, err := f.ReadAt(local[:n], off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(local[:n], zero[:n]) {
				t.Fatalf("file has data at %d..%d but the blob has no pages there", off, off+n)
			}
		}
	}
	pos := int64(0)
	for _, pr := range pages {
		checkZero(pos, pr.Offset)
		for off := pr.Offset; off < pr.Offset+pr.Length; off += 4 * mib {
			n := min(4*mib, pr.Offset+pr.Length-off)
			if _, err := f.ReadAt(local[:n], off); err != nil {
				t.Fatal(err)
			}
			resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: n}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadFull(resp.Body, remote[:n])
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(local[:n], remote[:n]) {
				t.Fatalf("blob differs from file in %d..%d", off, off+n)
			}
		}
		pos = pr.Offset + pr.Length
	}
	checkZero(pos, fi.Size())
	// Unwritten pages must really read as zeros: read one gap back.
	if len(pages) > 1 && pages[1].Offset > pages[0].Offset+pages[0].Length {
		gap := pages[0].Offset + pages[0].Length
		resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: gap, Count: 4096}})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, zero[:4096]) {
			t.Fatalf("gap at %d does not read back as zeros", gap)
		}
	}
}

func TestUploadSparse2GiB(t *testing.T) {
	tr := &testTransport{}
	c := newContainer(t, tr)
	path := makeSparseVHD(t, 2<<30, 0.05, 1)
	size, data, ranges := dataBytes(t, path)
	if data*10 > size {
		t.Fatalf("test file is not sparse: %d data bytes of %d", data, size)
	}

	var mu sync.Mutex
	var calls []Progress
	name := "vhd/2026-11-27/abc1234-azure-windows10-professional-en-us-x86-64-fixed.vhd"
	u := &Upload{
		Container: c,
		Name:      name,
		Metadata:  map[string]string{"fingerprint": "f00d"},
		Progress: func(p Progress) {
			mu.Lock()
			calls = append(calls, p)
			mu.Unlock()
		},
	}
	res, err := u.Run(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ranges, %d data bytes of %d, result %+v, %d PUT body bytes", len(ranges), data, size, res, tr.putBytes.Load())
	if res.Name != name || res.Size != size {
		t.Errorf("result name/size = %s/%d, want %s/%d", res.Name, res.Size, name, size)
	}
	if res.Sent != data || res.Skipped != size-data {
		t.Errorf("sent/skipped = %d/%d, want %d/%d", res.Sent, res.Skipped, data, size-data)
	}
	if put := tr.putBytes.Load(); put < data || float64(put) > float64(data)*1.01 {
		t.Errorf("%d bytes crossed the wire in PUT bodies, want within 1%% of %d", put, data)
	}
	if got := listBlobs(t, c); len(got) != 1 || got[0] != name {
		t.Errorf("blobs after upload = %q, want only %q (temporary blob must be gone)", got, name)
	}
	ok, md, err := Exists(context.Background(), c, name)
	if err != nil || !ok || md["fingerprint"] != "f00d" {
		t.Errorf("Exists = %v, %v, %v; want true with fingerprint f00d", ok, md, err)
	}
	if len(calls) == 0 {
		t.Fatal("progress never called")
	}
	if last := calls[len(calls)-1]; last.Sent != res.Sent || last.Total != size || last.Skipped != res.Skipped {
		t.Errorf("last progress %+v does not match result %+v", last, res)
	}
	checkBlobEqualsFile(t, c.NewPageBlobClient(name), path)
}

// pagePutAt matches a Put Page request whose range starts at off.
func pagePutAt(req *http.Request, off int64) bool {
	// The SDK stores x-ms-range under that exact, non-canonical key, so
	// Header.Get would miss it; compare names case-insensitively instead.
	var rng string
	for k, v := range req.Header {
		if (strings.EqualFold(k, "x-ms-range") || strings.EqualFold(k, "range")) && len(v) > 0 {
			rng = v[0]
		}
	}
	return req.Method == http.MethodPut && req.URL.Query().Get("comp") == "page" &&
		strings.HasPrefix(rng, fmt.Sprintf("bytes=%d-", off))
}

func TestUploadRetriesFailingRange(t *testing.T) {
	var attempts atomic.Int32
	target := int64(8 * mib)
	tr := &testTransport{fail: func(req *http.Request) bool {
		return pagePutAt(req, target) && attempts.Add(1) <= 2
	}}
	c := newContainer(t, tr)
	path := makeSparseVHD(t, 64*mib, 0.5, 2)
	_, data, ranges := dataBytes(t, path)
	found := false
	for _, r := range ranges {
		found = found || r.Offset == target
	}
	if !found {
		t.Fatalf("test file has no range at %d: %v", target, ranges)
	}
	u := &Upload{Container: c, Name: "retry.vhd", backoff: time.Millisecond}
	res, err := u.Run(context.Background(), path)
	if err != nil {
		t.Fatalf("upload with a range failing twice: %v", err)
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("range at %d was tried %d times, want 3", target, n)
	}
	if res.Sent != data {
		t.Errorf("sent %d, want %d", res.Sent, data)
	}
	checkBlobEqualsFile(t, c.NewPageBlobClient("retry.vhd"), path)
}

func TestUploadPermanentFailureLeavesNothing(t *testing.T) {
	var attempts atomic.Int32
	tr := &testTransport{fail: func(req *http.Request) bool {
		return pagePutAt(req, 0) && attempts.Add(1) > 0
	}}
	c := newContainer(t, tr)
	path := makeSparseVHD(t, 64*mib, 0.5, 3)
	u := &Upload{Container: c, Name: "broken.vhd", Retries: 3, backoff: time.Millisecond}
	_, err := u.Run(context.Background(), path)
	if err == nil {
		t.Fatal("upload succeeded although every write of range 0 failed")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "broken.vhd.uploading-") || !strings.Contains(err.Error(), "injected fault") {
		t.Errorf("error %q does not name the blob and the cause", err)
	}
	if n := attempts.Load(); n != 4 {
		t.Errorf("range 0 tried %d times, want 1 + 3 retries", n)
	}
	if got := listBlobs(t, c); len(got) != 0 {
		t.Errorf("blobs left after failure: %q", got)
	}
}

func TestUploadCancelledLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &testTransport{fail: func(req *http.Request) bool {
		if pagePutAt(req, 4*mib) {
			cancel() // the user pressed ^C while ranges are in flight
		}
		return false
	}}
	c := newContainer(t, tr)
	path := makeSparseVHD(t, 64*mib, 1, 4)
	u := &Upload{Container: c, Name: "cancelled.vhd", Parallel: 1, backoff: time.Millisecond}
	_, err := u.Run(ctx, path)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if got := listBlobs(t, c); len(got) != 0 {
		t.Errorf("blobs left after cancellation: %q", got)
	}
}

func TestUploadRejectsNonVHD(t *testing.T) {
	c := newContainer(t, &testTransport{})
	path := filepath.Join(t.TempDir(), "raw.img")
	if err := os.WriteFile(path, make([]byte, mib), 0o644); err != nil {
		t.Fatal(err)
	}
	u := &Upload{Container: c, Name: "raw.vhd"}
	if _, err := u.Run(context.Background(), path); err == nil || !strings.Contains(err.Error(), "raw.vhd") {
		t.Fatalf("error = %v, want a refusal naming the blob", err)
	}
	if got := listBlobs(t, c); len(got) != 0 {
		t.Errorf("blobs left: %q", got)
	}
}

func TestExists(t *testing.T) {
	c := newContainer(t, &testTransport{})
	ctx := context.Background()
	ok, md, err := Exists(ctx, c, "nope.vhd")
	if err != nil || ok || md != nil {
		t.Fatalf("Exists(missing) = %v, %v, %v; want false, nil, nil", ok, md, err)
	}
	path := makeSparseVHD(t, 8*mib, 0.5, 5)
	u := &Upload{Container: c, Name: "there.vhd", Metadata: map[string]string{"fingerprint": "abc", "revision": "1234567"}}
	if _, err := u.Run(ctx, path); err != nil {
		t.Fatal(err)
	}
	ok, md, err = Exists(ctx, c, "there.vhd")
	if err != nil || !ok || md["fingerprint"] != "abc" || md["revision"] != "1234567" || len(md) != 2 {
		t.Fatalf("Exists(there.vhd) = %v, %v, %v; want true with its metadata", ok, md, err)
	}
}

// benchPath is the 8 GiB, 5 % data VHD shared by both benchmarks and by
// the repeated calls the testing package makes with growing b.N, because
// building it takes longer than uploading it. TestMain removes it.
var benchPath string

func benchVHD(b *testing.B) string {
	b.Helper()
	if benchPath == "" {
		b.StopTimer()
		dir, err := os.MkdirTemp("", "cib-azure-bench-")
		if err != nil {
			b.Fatal(err)
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		path := makeSparseVHD(b, 8<<30, 0.05, 6)
		final := filepath.Join(dir, "disk.vhd")
		if err := os.Rename(path, final); err != nil {
			b.Fatal(err)
		}
		benchPath = final
		b.StartTimer()
	}
	return benchPath
}

func BenchmarkUploadSparse8GiB5Percent(b *testing.B) {
	c := newContainer(b, &testTransport{})
	path := benchVHD(b)
	_, data, _ := dataBytes(b, path)
	b.SetBytes(data) // so MB/s is the rate of non-zero data
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := &Upload{Container: c, Name: fmt.Sprintf("bench-%d.vhd", i)}
		if _, err := u.Run(context.Background(), path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequentialCopyBaseline sends the same non-zero bytes as one
// sequential stream of page writes, without scanning, parallelism,
// verification or the final copy: the floor the real upload is compared to.
func BenchmarkSequentialCopyBaseline(b *testing.B) {
	c := newContainer(b, &testTransport{})
	path := benchVHD(b)
	size, data, ranges := dataBytes(b, path)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4*mib)
	ctx := context.Background()
	b.SetBytes(data)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pb := c.NewPageBlobClient(fmt.Sprintf("baseline-%d.vhd", i))
		if _, err := pb.Create(ctx, size, nil); err != nil {
			b.Fatal(err)
		}
		for _, r := range ranges {
			p := buf[:r.Length]
			if _, err := f.ReadAt(p, r.Offset); err != nil {
				b.Fatal(err)
			}
			if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(p)), blob.HTTPRange{Offset: r.Offset, Count: r.Length}, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestUploadNeverReplacesAnExistingImage(t *testing.T) {
	c := newContainer(t, &testTransport{})
	ctx := context.Background()
	first := &Upload{Container: c, Name: "vhd/same.vhd", Metadata: map[string]string{"fingerprint": "first"}}
	if _, err := first.Run(ctx, makeSparseVHD(t, 8*mib, 0.5, 6)); err != nil {
		t.Fatal(err)
	}
	second := &Upload{Container: c, Name: "vhd/same.vhd", Metadata: map[string]string{"fingerprint": "second"}}
	_, err := second.Run(ctx, makeSparseVHD(t, 8*mib, 0.5, 7))
	if err == nil || !strings.Contains(err.Error(), "vhd/same.vhd already exists; delete it first") {
		t.Fatalf("error = %v, want a refusal to replace the existing image", err)
	}
	ok, md, err := Exists(ctx, c, "vhd/same.vhd")
	if err != nil || !ok || md["fingerprint"] != "first" {
		t.Fatalf("Exists = %v, %v, %v; want the first image untouched", ok, md, err)
	}
	if got := listBlobs(t, c); len(got) != 1 || got[0] != "vhd/same.vhd" {
		t.Errorf("blobs = %q; want only the first image (the second's temporary blob removed)", got)
	}
}

// TestUploadCatchesCorruptedBlob changes the temporary blob after all its
// writes succeeded and right before the final check begins (on the check's
// first request), as a service that acknowledged a write but stored
// something else would. The upload must fail, name the difference, and
// leave nothing behind: no final blob, no temporary blob.
func TestUploadCatchesCorruptedBlob(t *testing.T) {
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, pageSize) }
	cases := []struct {
		name string
		// corrupt changes blob b, whose data ranges are ranges, and
		// returns a part of the error the check must report.
		corrupt func(t *testing.T, b *pageblob.Client, path string, ranges []vhd.Range) string
	}{
		{"one bit flipped inside a range", func(t *testing.T, b *pageblob.Client, path string, ranges []vhd.Range) string {
			// The page ranges stay the same: only the content check sees it.
			off := ranges[1].Offset + 3*pageSize
			p := make([]byte, pageSize)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.ReadAt(p, off); err != nil {
				t.Fatal(err)
			}
			p[100] ^= 0x10
			putPage(t, b, off, p)
			return fmt.Sprintf("differs from the local file at byte %d", off+100)
		}},
		{"last page of the disk changed", func(t *testing.T, b *pageblob.Client, path string, ranges []vhd.Range) string {
			last := ranges[len(ranges)-1]
			putPage(t, b, last.Offset+last.Length-pageSize, page(0xee))
			return "differs from the local file at byte"
		}},
		{"extra page in a gap", func(t *testing.T, b *pageblob.Client, path string, ranges []vhd.Range) string {
			for i := range len(ranges) - 1 {
				if gap := ranges[i].Offset + ranges[i].Length + 4*pageSize; gap+pageSize <= ranges[i+1].Offset {
					putPage(t, b, gap, page(0x55))
					return "page ranges"
				}
			}
			t.Fatalf("test file has no gap between its ranges: %v", ranges)
			return ""
		}},
		{"page cleared", func(t *testing.T, b *pageblob.Client, path string, ranges []vhd.Range) string {
			if _, err := b.ClearPages(context.Background(), blob.HTTPRange{Offset: ranges[1].Offset, Count: pageSize}, nil); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("page range 1 is %d+%d, want %d+%d",
				ranges[1].Offset+pageSize, ranges[1].Length-pageSize, ranges[1].Offset, ranges[1].Length)
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := makeSparseVHD(t, 64*mib, 0.3, uint64(100+i))
			_, _, ranges := dataBytes(t, path)
			if len(ranges) < 3 {
				t.Fatalf("test file has too few ranges: %v", ranges)
			}
			var (
				c       *container.Client
				done    atomic.Bool
				corrupt = make(chan string, 1)
			)
			tr := &testTransport{fail: func(req *http.Request) bool {
				// The check begins by asking for the blob's properties.
				if req.Method == http.MethodHead && strings.Contains(req.URL.Path, ".uploading-") && done.CompareAndSwap(false, true) {
					b := c.NewPageBlobClient(req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:])
					corrupt <- tc.corrupt(t, b, path, ranges)
				}
				return false
			}}
			c = newContainer(t, tr)
			u := &Upload{Container: c, Name: "corrupt.vhd", backoff: time.Millisecond}
			_, err := u.Run(context.Background(), path)
			if !done.Load() {
				t.Fatal("the check never asked for the temporary blob's properties, so nothing was corrupted")
			}
			want := <-corrupt
			if err == nil {
				t.Fatal("upload of a corrupted blob succeeded")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), "verify temporary blob corrupt.vhd.uploading-") || !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not report the check failing with %q", err, want)
			}
			if got := listBlobs(t, c); len(got) != 0 {
				t.Errorf("blobs left after a failed check: %q", got)
			}
		})
	}
}

func putPage(t *testing.T, b *pageblob.Client, off int64, p []byte) {
	t.Helper()
	if _, err := b.UploadPages(context.Background(), streaming.NopCloser(bytes.NewReader(p)),
		blob.HTTPRange{Offset: off, Count: int64(len(p))}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestReadSpans(t *testing.T) {
	const size = 64*mib + pageSize
	cases := [][]vhd.Range{
		{{Offset: 0, Length: 4 * mib}},
		{{Offset: 0, Length: 4 * mib}, {Offset: 12 * mib, Length: 4 * mib}},
		{{Offset: 4 * mib, Length: 9 * mib}},
		{{Offset: 0, Length: 8*mib + pageSize}},
		{{Offset: 0, Length: 40 * mib}},
		{{Offset: 60 * mib, Length: 4*mib + pageSize}},                        // up to the end
		{{Offset: 16 * mib, Length: pageSize}},                                // one page
		{{Offset: 0, Length: size}},                                           // everything
		{{Offset: 8 * mib, Length: mib}, {Offset: 20 * mib, Length: 3 * mib}}, // short ranges
	}
	for _, rs := range cases {
		spans := readSpans(rs, size)
		covered := make(map[int64]bool) // by page
		for _, s := range spans {
			if s.Offset < 0 || s.Offset+s.Length > size || s.Offset%pageSize != 0 || s.Length%pageSize != 0 {
				t.Errorf("%v: span %+v is not whole pages inside the blob", rs, s)
			}
			if s.Length > readSpan+pageSize {
				t.Errorf("%v: span %+v is longer than %d", rs, s, readSpan+pageSize)
			}
			if s.Length == md5Limit {
				// A whole 4 MiB chunk read as such: the size for which
				// Azurite reads the range twice to hash it.
				t.Errorf("%v: span %+v was not grown past %d bytes", rs, s, md5Limit)
			}
			for off := s.Offset; off < s.Offset+s.Length; off += pageSize {
				covered[off] = true
			}
		}
		for _, r := range rs {
			for off := r.Offset; off < r.Offset+r.Length; off += pageSize {
				if !covered[off] {
					t.Fatalf("%v: spans %v miss page %d", rs, spans, off)
				}
			}
		}
	}
}
