package azure

import (
	"bytes"
	"context"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuritetest"
)

// The store the disk-image stage uses, reached the way the CLI reaches it:
// a client from the connection string in the environment.
func TestStorePutExistsAndBlobs(t *testing.T) {
	ctx := context.Background()
	made := newContainer(t, &testTransport{})
	name := path.Base(made.URL())
	env := map[string]string{ConnectionStringVar: azuritetest.ConnectionString(azuriteURL)}
	c, err := NewContainerClient(ContainerOptions{Container: name, Getenv: func(k string) string { return env[k] }})
	require.NoError(t, err)

	var results []Result
	s := Store{Client: c, Uploaded: func(r Result) { results = append(results, r) }, Log: t.Logf}
	assert.Equal(t, devAccount+"/"+name, s.Container())
	vhdPath := makeSparseVHD(t, 64*mib, 0.1, 7)
	blobName := "vhd/2026-11-27/0123456-azure-windows10-professional-en-us-x86-64-fixed.vhd"

	ok, _, err := s.Exists(ctx, blobName)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, s.Put(ctx, vhdPath, blobName, map[string]string{"fingerprint": "fp-1"}))
	ok, md, err := s.Exists(ctx, blobName)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "fp-1", md["fingerprint"])
	require.Len(t, results, 1)
	size, data, _ := dataBytes(t, vhdPath)
	assert.Equal(t, size, results[0].Size)
	assert.Equal(t, data, results[0].Sent)

	// Putting over it (overwrite-disk-image) replaces it.
	require.NoError(t, s.Put(ctx, vhdPath, blobName, map[string]string{"fingerprint": "fp-2"}))
	_, md, err = s.Exists(ctx, blobName)
	require.NoError(t, err)
	assert.Equal(t, "fp-2", md["fingerprint"])
	assert.Equal(t, []string{blobName}, listBlobs(t, c))

	// Read back through Blobs, as the fetcher of an azure source does.
	blobs := Blobs{Open: func(container string) (*container.Client, error) {
		return NewContainerClient(ContainerOptions{Container: container, Getenv: func(k string) string { return env[k] }})
	}}
	n, err := blobs.Size(ctx, name, blobName)
	require.NoError(t, err)
	assert.Equal(t, size, n)
	var buf bytes.Buffer
	_, err = blobs.Download(ctx, name, blobName, size-512, &buf)
	require.NoError(t, err)
	want, err := os.ReadFile(vhdPath)
	require.NoError(t, err)
	assert.Equal(t, want[size-512:], buf.Bytes(), "the footer")
}

func TestNewContainerClientErrors(t *testing.T) {
	_, err := NewContainerClient(ContainerOptions{Container: "images"})
	assert.ErrorContains(t, err, "no storage account for container images: pass the account (--storage-account) or set AZURE_STORAGE_CONNECTION_STRING")
	_, err = NewContainerClient(ContainerOptions{})
	assert.ErrorContains(t, err, "no storage container")
	secret := "AccountKey=c2VjcmV0LWtleQ=="
	_, err = NewContainerClient(ContainerOptions{Container: "images", Getenv: func(k string) string {
		if k == ConnectionStringVar {
			return "nonsense;" + secret
		}
		return ""
	}})
	require.Error(t, err)
	assert.False(t, strings.Contains(err.Error(), "c2VjcmV0"), "the key leaked into %q", err)
}

func TestLabel(t *testing.T) {
	for u, want := range map[string]string{
		"https://sacentralusgeckot.blob.core.windows.net/images": "sacentralusgeckot/images",
		"http://127.0.0.1:10000/devstoreaccount1/images":         "devstoreaccount1/images",
	} {
		c, err := container.NewClientWithNoCredential(u, nil)
		require.NoError(t, err)
		assert.Equal(t, want, Label(c), u)
	}
}

// A container that is not there is an error at the first look, not "no
// image yet": otherwise a whole build would run before the upload fails.
func TestExistsInAMissingContainer(t *testing.T) {
	needAzurite(t)
	c, err := NewContainerClient(ContainerOptions{Container: "no-such-container", Getenv: func(k string) string {
		return map[string]string{ConnectionStringVar: azuritetest.ConnectionString(azuriteURL)}[k]
	}})
	require.NoError(t, err)
	_, _, err = Exists(context.Background(), c, "vhd/x.vhd")
	assert.ErrorContains(t, err, "azure: container "+devAccount+"/no-such-container does not exist")
}
