// Package azure is the only package that talks to Azure: everything else in
// cib stays free of the Azure SDK so that it can be built and tested
// without it. For now it holds the storage part: uploading a fixed VHD as a
// page blob and checking whether a blob already exists.
package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/cib-project/cib/internal/vhd"
)

// Defaults for the zero values of Upload's tuning fields.
const (
	// DefaultParallel is the number of ranges in flight at once: enough to
	// hide the round trip of each write without overloading a build agent.
	DefaultParallel = 4
	// DefaultChunkSize is 4 MiB, the largest single Put Page write Azure
	// accepts, so each non-zero range is one request.
	DefaultChunkSize = 4 << 20
	// DefaultRetries is how many times a failed range is retried.
	DefaultRetries = 5
)

// pageSize is the page blob granularity: every write offset and length,
// and the blob size, must be a multiple of it.
const pageSize = 512

// Upload uploads a fixed VHD as a page blob, sending only its non-zero
// ranges: a 64 GiB image is mostly zeros and unwritten pages read as zeros.
type Upload struct {
	// Container is where the blob goes; the caller builds it (credentials,
	// endpoint, transport) so that this package decides nothing about auth.
	Container *container.Client
	// Name is the final blob name, e.g.
	// vhd/2026-11-27/abc1234-azure-windows10-professional-en-us-x86-64-fixed.vhd.
	Name string
	// Parallel is the number of concurrent range uploads (default 4).
	Parallel int
	// ChunkSize is the scan and write unit, a multiple of 512 of at most
	// 4 MiB (default 4 MiB, the page blob write limit).
	ChunkSize int64
	// Retries is how many times one range (write or read-back) is retried
	// with exponential backoff before the upload fails (default 5; a
	// negative value means no retries, since zero selects the default).
	Retries int
	// Progress, if set, is called at most once a second while ranges are
	// written and once at the end with the final counts.
	Progress func(p Progress)
	// Metadata is set on the final blob, e.g. the build fingerprint that
	// Exists looks for on a re-run.
	Metadata map[string]string

	// backoff is the first retry delay; it doubles per attempt. Zero means
	// one second. Tests shorten it so that failure cases run quickly.
	backoff time.Duration
}

// Progress is a snapshot of an upload in flight.
type Progress struct {
	// Sent is the number of non-zero bytes written so far.
	Sent int64
	// Skipped is the number of all-zero bytes that are not sent at all.
	Skipped int64
	// Total is the size of the VHD file.
	Total int64
	// Elapsed is the time since the writes began.
	Elapsed time.Duration
	// Rate is Sent per second of Elapsed.
	Rate float64
	// ETA estimates the time left to send the remaining non-zero bytes.
	ETA time.Duration
}

// Result describes a finished upload.
type Result struct {
	// Name is the final blob name.
	Name string
	// Size is the blob size, equal to the VHD file size.
	Size int64
	// Sent is the number of non-zero bytes written.
	Sent int64
	// Skipped is Size - Sent: the all-zero bytes never sent.
	Skipped int64
	// Duration is the wall time of the whole Run.
	Duration time.Duration
}

// cleanupTimeout bounds the deletes done after a failure: they must run
// even when ctx is already cancelled, but must not hang the job forever.
const cleanupTimeout = 2 * time.Minute

// Run uploads the fixed VHD at path to u.Name. It writes under a temporary
// name (u.Name + ".uploading-<random>"), verifies its size, its page
// ranges and the data read back against the file (see verify), then copies
// server-side to the final name and deletes the temporary blob. On any failure, including cancellation of
// ctx, the temporary blob is deleted and nothing is left under the final
// name, so a re-run never mistakes a partial upload for a finished one.
//
// Run never replaces a blob already under u.Name (a failed copy would lose
// it): to replace an image, the caller deletes it first (see Exists).
func (u *Upload) Run(ctx context.Context, path string) (res Result, err error) {
	start := time.Now()
	if u.Container == nil || u.Name == "" {
		return Result{}, errors.New("azure: upload needs a container and a blob name")
	}
	parallel, chunk, retries := u.Parallel, u.ChunkSize, u.Retries
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	if retries < 0 {
		retries = 0
	} else if retries == 0 {
		retries = DefaultRetries
	}
	if chunk%pageSize != 0 || chunk > DefaultChunkSize {
		return Result{}, fmt.Errorf("azure: blob %s: chunk size %d is not a multiple of 512 of at most 4 MiB", u.Name, chunk)
	}

	// ReadFixed is the gate: only a valid fixed VHD, whose size is a whole
	// number of MiB plus the 512-byte footer and so a whole number of pages,
	// may become a page blob that Azure will accept as a disk.
	if _, _, err := vhd.ReadFixed(path); err != nil {
		return Result{}, fmt.Errorf("azure: blob %s: %w", u.Name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("azure: blob %s: %w", u.Name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Result{}, fmt.Errorf("azure: blob %s: %w", u.Name, err)
	}
	size := fi.Size()
	ranges, err := vhd.DataRanges(f, size, chunk, chunk)
	if err != nil {
		return Result{}, fmt.Errorf("azure: blob %s: scan %s: %w", u.Name, path, err)
	}
	var data int64
	for _, r := range ranges {
		data += r.Length
	}

	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return Result{}, fmt.Errorf("azure: blob %s: random suffix: %w", u.Name, err)
	}
	tmpName := u.Name + ".uploading-" + hex.EncodeToString(suffix[:])
	tmp := u.Container.NewPageBlobClient(tmpName)
	final := u.Container.NewPageBlobClient(u.Name)

	if _, err := tmp.Create(ctx, size, nil); err != nil {
		// Create may have succeeded on the server with the response lost.
		u.deleteQuietly(ctx, tmp.BlobClient())
		return Result{}, fmt.Errorf("azure: create temporary blob %s: %w", tmpName, err)
	}
	// From here on the temporary blob exists and must go whatever happens.
	defer u.deleteQuietly(ctx, tmp.BlobClient())

	sent, err := u.writeRanges(ctx, f, tmp, ranges, size, data, chunk, parallel, retries)
	if err != nil {
		return Result{}, fmt.Errorf("azure: upload to temporary blob %s: %w", tmpName, err)
	}
	if err := u.verify(ctx, f, tmp, ranges, size, parallel, retries); err != nil {
		return Result{}, fmt.Errorf("azure: verify temporary blob %s: %w", tmpName, err)
	}
	if err := u.commit(ctx, tmp, final); err != nil {
		return Result{}, fmt.Errorf("azure: copy %s to %s: %w", tmpName, u.Name, err)
	}
	return Result{Name: u.Name, Size: size, Sent: sent, Skipped: size - sent, Duration: time.Since(start)}, nil
}

// writeRanges writes every range to b with parallel workers and returns the
// number of bytes written.
func (u *Upload) writeRanges(ctx context.Context, f *os.File, b *pageblob.Client, ranges []vhd.Range,
	size, data, chunk int64, parallel, retries int) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var sent atomic.Int64
	start := time.Now()
	report := func() {
		if u.Progress == nil {
			return
		}
		s := sent.Load()
		el := time.Since(start)
		p := Progress{Sent: s, Skipped: size - data, Total: size, Elapsed: el}
		if el > 0 {
			p.Rate = float64(s) / el.Seconds()
		}
		if p.Rate > 0 {
			p.ETA = time.Duration(float64(data-s) / p.Rate * float64(time.Second))
		}
		u.Progress(p)
	}
	// Progress is reported from one goroutine so the callback never runs
	// concurrently with itself, and at most once a second so that a log
	// is not flooded on a fast link.
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				report()
			}
		}
	}()

	eachRange(ctx, cancel, ranges, parallel, chunk, func(r vhd.Range, buf []byte) error {
		p := buf[:r.Length]
		if _, err := f.ReadAt(p, r.Offset); err != nil {
			return fmt.Errorf("read %s at offset %d: %w", f.Name(), r.Offset, err)
		}
		err := u.retry(ctx, retries, func() error {
			_, err := b.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(p)),
				blob.HTTPRange{Offset: r.Offset, Count: r.Length}, nil)
			return err
		})
		if err != nil {
			return fmt.Errorf("write range %d+%d: %w", r.Offset, r.Length, err)
		}
		sent.Add(r.Length)
		return nil
	})
	close(stopProgress)
	<-progressDone
	if err := context.Cause(ctx); err != nil {
		return sent.Load(), err
	}
	report()
	return sent.Load(), nil
}

// readSpan is the most one read-back GET asks for. Ranges are read back in
// spans of at most this size (a long run of adjacent data chunks is split
// evenly), so that the workers' buffers stay bounded.
const readSpan = 8 << 20

// md5Limit is the largest ranged GET for which the service may compute an
// MD5 of the range: Azure only when asked (x-ms-range-get-content-md5),
// but Azurite always, reading the range twice to do so. That doubles the
// emulator's work, so verify makes each GET at least one page longer.
const md5Limit = 4 << 20

// readSpans returns the spans in which verify reads the blob back: the
// merged data ranges split into pieces of at most readSpan bytes, each of
// at most md5Limit bytes then grown by one page (into the page after it,
// or before it at the end of the blob) so that no GET is of a size for
// which Azurite hashes the range. The extra page is compared with the
// local file like the rest, so it checks a little more, never less. The
// spans cover every data byte; they may overlap by that one page.
func readSpans(merged []vhd.Range, size int64) []vhd.Range {
	var out []vhd.Range
	for _, r := range merged {
		n := (r.Length + readSpan - 1) / readSpan
		// Even pieces, rounded up to whole pages: a 9 MiB run becomes two
		// reads of 4.5 MiB rather than 8 MiB and a short 1 MiB tail.
		piece := ((r.Length/n + pageSize - 1) / pageSize) * pageSize
		for off := r.Offset; off < r.Offset+r.Length; off += piece {
			s := vhd.Range{Offset: off, Length: min(piece, r.Offset+r.Length-off)}
			if s.Length <= md5Limit {
				switch {
				case s.Offset+s.Length+pageSize <= size:
					s.Length += pageSize
				case s.Offset >= pageSize:
					s.Offset -= pageSize
					s.Length += pageSize
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// verify checks that the blob holds exactly the local file before it is
// published: its size must be the file's, its page ranges must be the data
// ranges (nothing missing, and no extra page that could read as non-zero),
// and every data byte read back must equal the local file, byte for byte.
// Together these prove the blob reads back as the file: pages outside the
// ranges read as zeros, and the scan found the file all zeros there.
// This catches a write that the service acknowledged but did not store as
// sent. A content check on each write (Content-MD5) would not replace it:
// Azurite ignores a wrong Content-MD5 on Put Page, so tests could not tell
// whether it was checked, and it says nothing about what was stored.
func (u *Upload) verify(ctx context.Context, f *os.File, b *pageblob.Client, ranges []vhd.Range, size int64, parallel, retries int) error {
	var props blob.GetPropertiesResponse
	err := u.retry(ctx, retries, func() error {
		var err error
		props, err = b.GetProperties(ctx, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("get properties: %w", err)
	}
	if props.ContentLength == nil || *props.ContentLength != size {
		got := "unknown"
		if props.ContentLength != nil {
			got = fmt.Sprint(*props.ContentLength)
		}
		return fmt.Errorf("blob size is %s bytes, want %d", got, size)
	}
	var remote []vhd.Range
	pager := b.NewGetPageRangesPager(nil)
	for pager.More() {
		var page pageblob.GetPageRangesResponse
		err := u.retry(ctx, retries, func() error {
			var err error
			page, err = pager.NextPage(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("get page ranges: %w", err)
		}
		for _, pr := range page.PageRange {
			if pr.Start == nil || pr.End == nil {
				continue
			}
			remote = append(remote, vhd.Range{Offset: *pr.Start, Length: *pr.End - *pr.Start + 1})
		}
	}
	// The service may split or merge adjacent ranges as it likes, so both
	// sides are compared in their merged form.
	want, got := mergeRanges(ranges), mergeRanges(remote)
	if len(want) != len(got) {
		return fmt.Errorf("blob has %d page ranges %v, want %d %v", len(got), abbrev(got), len(want), abbrev(want))
	}
	for i := range want {
		if want[i] != got[i] {
			return fmt.Errorf("page range %d is %d+%d, want %d+%d", i, got[i].Offset, got[i].Length, want[i].Offset, want[i].Length)
		}
	}

	// The read-back compares with the file itself rather than with hashes
	// taken while writing: the file is in the page cache by now, and
	// bytes.Equal is far cheaper than hashing both sides.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	eachRange(ctx, cancel, readSpans(want, size), parallel, 2*(readSpan+pageSize), func(s vhd.Range, buf []byte) error {
		remote, local := buf[:s.Length], buf[readSpan+pageSize:][:s.Length]
		return u.checkSpan(ctx, f, b, s, remote, local, retries)
	})
	return context.Cause(ctx)
}

// checkSpan reads span s of the blob into remote and of the file into
// local and fails unless they are equal.
func (u *Upload) checkSpan(ctx context.Context, f *os.File, b *pageblob.Client, s vhd.Range, remote, local []byte, retries int) error {
	err := u.retry(ctx, retries, func() error {
		resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: s.Offset, Count: s.Length}})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadFull(resp.Body, remote)
		return err
	})
	if err != nil {
		return fmt.Errorf("read back %d+%d: %w", s.Offset, s.Length, err)
	}
	if _, err := f.ReadAt(local, s.Offset); err != nil {
		return fmt.Errorf("read %s at offset %d: %w", f.Name(), s.Offset, err)
	}
	if !bytes.Equal(remote, local) {
		i := 0
		for remote[i] == local[i] {
			i++
		}
		return fmt.Errorf("blob differs from the local file at byte %d (read back %d+%d)", s.Offset+int64(i), s.Offset, s.Length)
	}
	return nil
}

// eachRange runs fn over the ranges with parallel workers, each with its
// own buffer of bufSize bytes that fn may use as scratch space. The first
// error cancels ctx with that error as the cause, which stops the other
// workers and the feeding of new ranges; callers read the outcome from
// context.Cause.
func eachRange(ctx context.Context, cancel context.CancelCauseFunc, ranges []vhd.Range, parallel int, bufSize int64, fn func(r vhd.Range, buf []byte) error) {
	next := make(chan vhd.Range)
	var wg sync.WaitGroup
	for range min(parallel, max(len(ranges), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bufSize)
			for r := range next {
				if err := fn(r, buf); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
feed:
	for _, r := range ranges {
		select {
		case next <- r:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
}

// commit copies the verified temporary blob to the final name and waits
// for the copy to finish. A server-side copy publishes the blob in one
// step, so readers of the final name never see a half-written disk. If the
// copy fails or ctx is cancelled, whatever the copy left under the final
// name is removed.
func (u *Upload) commit(ctx context.Context, tmp, final *pageblob.Client) (err error) {
	md := make(map[string]*string, len(u.Metadata))
	for k, v := range u.Metadata {
		md[k] = &v
	}
	// Only onto an empty name: a copy replaces its destination and cannot
	// be undone, so a failed copy over an existing image would lose it.
	// Whoever wants to replace an image deletes it first.
	anyETag := azcore.ETagAny
	resp, err := final.StartCopyFromURL(ctx, tmp.URL(), &blob.StartCopyFromURLOptions{
		Metadata:         md,
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &anyETag}},
	})
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
			return fmt.Errorf("%s already exists; delete it first to replace it (overwrite-disk-image does)", u.Name)
		}
		// The copy may have started even though the response was lost.
		u.deleteQuietly(ctx, final.BlobClient())
		return fmt.Errorf("start copy: %w", err)
	}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if resp.CopyID != nil {
				_, _ = final.AbortCopyFromURL(cctx, *resp.CopyID, nil)
			}
			u.deleteQuietly(cctx, final.BlobClient())
		}
	}()
	status := blob.CopyStatusTypePending
	if resp.CopyStatus != nil {
		status = *resp.CopyStatus
	}
	wait := 100 * time.Millisecond
	for status == blob.CopyStatusTypePending {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
		props, err := final.GetProperties(ctx, nil)
		if err != nil {
			return fmt.Errorf("copy status: %w", err)
		}
		if props.CopyStatus == nil {
			return errors.New("copy status missing from blob properties")
		}
		status = *props.CopyStatus
		if status != blob.CopyStatusTypePending && status != blob.CopyStatusTypeSuccess {
			desc := ""
			if props.CopyStatusDescription != nil {
				desc = ": " + *props.CopyStatusDescription
			}
			return fmt.Errorf("copy %s%s", status, desc)
		}
	}
	if status != blob.CopyStatusTypeSuccess {
		return fmt.Errorf("copy %s", status)
	}
	return nil
}

// deleteQuietly deletes b on a context that survives cancellation of ctx,
// because cleanup after a cancelled upload is exactly when it matters. A
// blob that is already gone is fine; other errors are ignored because the
// caller is already returning the error that caused the cleanup.
func (u *Upload) deleteQuietly(ctx context.Context, b *blob.Client) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = b.Delete(cctx, &blob.DeleteOptions{DeleteSnapshots: ptr(blob.DeleteSnapshotsOptionTypeInclude)})
}

// retry runs op up to retries+1 times, doubling the delay between tries,
// for as long as the error looks transient.
func (u *Upload) retry(ctx context.Context, retries int, op func() error) error {
	delay := u.backoff
	if delay <= 0 {
		delay = time.Second
	}
	var err error
	for attempt := 0; ; attempt++ {
		if err = op(); err == nil {
			return nil
		}
		if attempt >= retries || !retryable(ctx, err) {
			if attempt > 0 {
				return fmt.Errorf("after %d attempts: %w", attempt+1, err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// retryable reports whether err may go away on its own: network errors,
// timeouts, throttling and server errors. Client errors (bad request,
// authorisation, missing container) will fail the same way again, and a
// cancelled context means the caller wants to stop.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return false
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusRequestTimeout || re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500
	}
	return true
}

// mergeRanges joins touching ranges of rs (sorted by offset, as both the
// scan and the service return them) so that two descriptions of the same
// bytes compare equal.
func mergeRanges(rs []vhd.Range) []vhd.Range {
	var out []vhd.Range
	for _, r := range rs {
		if r.Length <= 0 {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k].Offset+out[k].Length == r.Offset {
			out[k].Length += r.Length
			continue
		}
		out = append(out, r)
	}
	return out
}

// abbrev formats at most a few ranges so that an error message stays
// readable for a disk with thousands of them.
func abbrev(rs []vhd.Range) string {
	const n = 4
	var sb strings.Builder
	sb.WriteString("[")
	for i, r := range rs {
		if i == n {
			fmt.Fprintf(&sb, " …%d more", len(rs)-n)
			break
		}
		if i > 0 {
			sb.WriteString(" ")
		}
		fmt.Fprintf(&sb, "%d+%d", r.Offset, r.Length)
	}
	sb.WriteString("]")
	return sb.String()
}

// Exists reports whether the blob name exists in c and returns its
// metadata, so that a re-run can skip a VHD whose fingerprint is already
// there. Metadata keys are lower-cased: Azure treats them
// case-insensitively and the SDK returns them in HTTP header case.
func Exists(ctx context.Context, c *container.Client, name string) (bool, map[string]string, error) {
	props, err := c.NewBlobClient(name).GetProperties(ctx, nil)
	// A HEAD response has no body, so besides the error code header the
	// status is checked too.
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		// Said before anything is built, not after an hour of building.
		return false, nil, fmt.Errorf("azure: container %s does not exist: create it (or name another container)", Label(c))
	}
	var re *azcore.ResponseError
	if bloberror.HasCode(err, bloberror.BlobNotFound) ||
		(errors.As(err, &re) && re.StatusCode == http.StatusNotFound) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("azure: blob %s: get properties: %w", name, err)
	}
	md := make(map[string]string, len(props.Metadata))
	for k, v := range props.Metadata {
		if v != nil {
			md[strings.ToLower(k)] = *v
		}
	}
	return true, md, nil
}

func ptr[T any](v T) *T { return &v }
