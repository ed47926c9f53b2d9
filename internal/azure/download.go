package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// downloadBackoff is the first delay between download attempts; it doubles
// per attempt. A variable so that tests of the failure paths run quickly.
var downloadBackoff = time.Second

// BlobSize returns the size of blob name in c, so that a caller can tell
// how much of a resumed download is left and report progress.
func BlobSize(ctx context.Context, c *container.Client, name string) (int64, error) {
	size, err := blobSizeOf(ctx, c.NewBlobClient(name))
	if err != nil {
		return 0, fmt.Errorf("azure: blob %s: get properties: %w", name, err)
	}
	return size, nil
}

// Download copies blob name of c to w from byte offset on, so that a
// caller holding the first offset bytes from an earlier attempt can resume.
// A read that fails mid-stream is retried with exponential backoff from
// where it stopped (DefaultRetries times), pinned to the ETag of the first
// response so that a blob replaced in between is never spliced into the
// bytes already written. It returns the number of bytes written to w.
// A failure of w itself is not retried: the local disk will not heal.
func Download(ctx context.Context, c *container.Client, name string, offset int64, w io.Writer) (int64, error) {
	if offset < 0 {
		return 0, fmt.Errorf("azure: blob %s: negative offset %d", name, offset)
	}
	b := c.NewBlobClient(name)
	var (
		written int64
		etag    *azcore.ETag
		delay   = downloadBackoff
		tries   = 0
	)
	for {
		n, tag, err := downloadOnce(ctx, b, offset+written, etag, w)
		written += n
		if etag == nil {
			etag = tag
		}
		if err == nil {
			return written, nil
		}
		var we *writeError
		if errors.As(err, &we) {
			return written, fmt.Errorf("azure: blob %s: write at offset %d: %w", name, offset+written, we.err)
		}
		if n > 0 {
			// Progress resets the budget: a long download over a flaky
			// link may fail many times, each after real progress.
			tries, delay = 0, downloadBackoff
		}
		if tries >= DefaultRetries || !retryable(ctx, err) {
			if tries > 0 {
				return written, fmt.Errorf("azure: download blob %s at offset %d: after %d attempts: %w", name, offset+written, tries+1, err)
			}
			return written, fmt.Errorf("azure: download blob %s at offset %d: %w", name, offset+written, err)
		}
		tries++
		select {
		case <-ctx.Done():
			return written, fmt.Errorf("azure: download blob %s at offset %d: %w", name, offset+written, context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// writeError marks a failure of the destination writer, which retrying the
// download cannot fix.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// errWriter wraps w so that its errors can be told apart from read errors
// after io.Copy, which returns both the same way.
type errWriter struct{ w io.Writer }

func (e errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}

// downloadOnce makes one GET from offset to the end and copies the body to
// w. It returns the bytes copied, the ETag of the response, and the error
// that stopped it. A request at exactly the end of the blob answers 416;
// that is success with nothing to copy, which a re-run of a finished
// download relies on.
func downloadOnce(ctx context.Context, b *blob.Client, offset int64, etag *azcore.ETag, w io.Writer) (int64, *azcore.ETag, error) {
	opts := &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: offset}}
	if etag != nil {
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: etag}}
	}
	resp, err := b.DownloadStream(ctx, opts)
	if err != nil {
		var re *azcore.ResponseError
		if offset > 0 && (bloberror.HasCode(err, bloberror.InvalidRange) ||
			(errors.As(err, &re) && re.StatusCode == http.StatusRequestedRangeNotSatisfiable)) {
			size, serr := blobSizeOf(ctx, b)
			if serr == nil && size == offset {
				return 0, etag, nil
			}
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(errWriter{w}, resp.Body)
	if err == nil && resp.ContentLength != nil && n != *resp.ContentLength {
		err = fmt.Errorf("short body: %d of %d bytes", n, *resp.ContentLength)
	}
	return n, resp.ETag, err
}

// blobSizeOf is BlobSize for a blob client already at hand.
func blobSizeOf(ctx context.Context, b *blob.Client) (int64, error) {
	props, err := b.GetProperties(ctx, nil)
	if err != nil {
		return 0, err
	}
	if props.ContentLength == nil {
		return 0, errors.New("no content length in the response")
	}
	return *props.ContentLength, nil
}
