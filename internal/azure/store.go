package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// ConnectionStringVar is the environment variable that, when set, gives
// the storage account and its key (or a SAS) instead of an Azure AD login:
// the way to reach Azurite, or an account without role assignments.
const ConnectionStringVar = "AZURE_STORAGE_CONNECTION_STRING"

// ContainerClient is the SDK's container client, named here so that the
// CLI can hold one without importing the SDK.
type ContainerClient = container.Client

// ContainerOptions say how to reach one blob container.
type ContainerOptions struct {
	// Account is the storage account; not needed with a connection string.
	Account string
	// Container is the container name.
	Container string
	// Endpoint replaces https://<account>.blob.core.windows.net (sovereign
	// clouds, a private endpoint).
	Endpoint string
	// Getenv reads the environment (ConnectionStringVar, and the AZURE_*
	// variables of Credential).
	Getenv func(string) string
	// IDToken, when set, fetches the workflow's OIDC ID token, so that the
	// job logs in by federation as the machine-image stage does (see
	// CredentialOptions.IDToken).
	IDToken func(ctx context.Context, audience string) (string, error)
}

// NewContainerClient builds a client for a container: from the connection
// string in ConnectionStringVar when it is set, otherwise for
// https://<account>.blob.core.windows.net with Credential's login (OIDC
// federation in a job that may request an ID token, else the default
// chain: an AZURE_* service principal, a workload identity, or the Azure
// CLI that azure/login signed in). Nothing secret is ever part of an error.
func NewContainerClient(o ContainerOptions) (*container.Client, error) {
	if o.Container == "" {
		return nil, errors.New("azure: no storage container named")
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if cs := getenv(ConnectionStringVar); cs != "" {
		c, err := container.NewClientFromConnectionString(cs, o.Container, nil)
		if err != nil {
			// The SDK's message may quote the string, key included.
			return nil, fmt.Errorf("azure: %s is not a valid storage connection string", ConnectionStringVar)
		}
		return c, nil
	}
	if o.Account == "" && o.Endpoint == "" {
		return nil, fmt.Errorf("azure: no storage account for container %s: pass the account (--storage-account) or set %s", o.Container, ConnectionStringVar)
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = "https://" + o.Account + ".blob.core.windows.net"
	}
	u, err := url.JoinPath(endpoint, o.Container)
	if err != nil {
		return nil, fmt.Errorf("azure: storage endpoint %q: %w", endpoint, err)
	}
	cred, _, err := Credential(CredentialOptions{Getenv: getenv, IDToken: o.IDToken})
	if err != nil {
		return nil, fmt.Errorf("storage container %s: %w", o.Container, err)
	}
	return container.NewClient(u, cred, nil)
}

// Label names a container for manifests and logs: account/container.
func Label(c *container.Client) string {
	u, err := url.Parse(c.URL())
	if err != nil {
		return c.URL()
	}
	// https://<account>.blob.core.windows.net/<container>, or path style
	// http://host:port/<account>/<container> (Azurite, an IP endpoint).
	if u.Port() != "" || net.ParseIP(u.Hostname()) != nil {
		return strings.TrimPrefix(u.Path, "/")
	}
	account, _, _ := strings.Cut(u.Hostname(), ".")
	return account + u.Path
}

// Store keeps disk images as page blobs in one container: the Azure side
// of the disk-image stage's store (Exists before building, Put after).
type Store struct {
	Client *container.Client
	// Upload carries the tuning and the Progress callback of each Put;
	// its Container, Name and Metadata are set by Put.
	Upload Upload
	// Uploaded, if set, is called with the result of each finished Put,
	// for the step summary (bytes sent and skipped).
	Uploaded func(Result)
	// Log, if set, receives what Put does besides uploading.
	Log func(format string, args ...any)
}

// Container is where the images are, as the manifest records it.
func (s Store) Container() string { return Label(s.Client) }

// Exists reports whether name is there and its metadata.
func (s Store) Exists(ctx context.Context, name string) (bool, map[string]string, error) {
	return Exists(ctx, s.Client, name)
}

// Put uploads the fixed VHD at path to name (see Upload.Run: a temporary
// name, zero ranges skipped, checked, then copied to name). An image
// already under name is deleted first, since Run never replaces one: the
// caller only puts over an existing name to overwrite it.
func (s Store) Put(ctx context.Context, path, name string, metadata map[string]string) error {
	ok, _, err := Exists(ctx, s.Client, name)
	if err != nil {
		return err
	}
	if ok {
		if s.Log != nil {
			s.Log("azure: deleting the existing %s to replace it", name)
		}
		_, err := s.Client.NewBlobClient(name).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: ptr(blob.DeleteSnapshotsOptionTypeInclude)})
		if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
			return fmt.Errorf("azure: deleting %s to replace it: %w", name, err)
		}
	}
	u := s.Upload
	u.Container, u.Name, u.Metadata = s.Client, name, metadata
	res, err := u.Run(ctx, path)
	if err != nil {
		return err
	}
	if s.Uploaded != nil {
		s.Uploaded(res)
	}
	return nil
}

// Blobs reads blobs for a download, the bucket of a source being its
// container: the Azure side of the disk-image stage's ISO, package and
// driver sources. Open makes the client of a container (NewContainerClient
// with the job's account and credentials).
type Blobs struct {
	Open func(container string) (*container.Client, error)
}

// Size returns the size of blob name in container bucket.
func (b Blobs) Size(ctx context.Context, bucket, name string) (int64, error) {
	c, err := b.Open(bucket)
	if err != nil {
		return 0, err
	}
	return BlobSize(ctx, c, name)
}

// Download writes blob name of container bucket to w from offset on.
func (b Blobs) Download(ctx context.Context, bucket, name string, offset int64, w io.Writer) (int64, error) {
	c, err := b.Open(bucket)
	if err != nil {
		return 0, err
	}
	return Download(ctx, c, name, offset, w)
}
