package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/v2"

	"github.com/cib-project/cib/internal/machineimage"
)

// Machines is the Azure Resource Manager side of the machine-image stage:
// it implements machineimage.Cloud with the SDK's clients (compute.go,
// network.go), in one subscription.
type Machines struct {
	subscription string
	// PollFrequency is the pause between polls of a long-running
	// operation (default 5 s; tests shorten it).
	PollFrequency time.Duration
	// HTTP downloads boot diagnostics from the URLs Azure gives (default
	// http.DefaultClient).
	HTTP *http.Client

	vms      *armcompute.VirtualMachinesClient
	disks    *armcompute.DisksClient
	images   *armcompute.ImagesClient
	versions *armcompute.GalleryImageVersionsClient
	// galleries and galleryImages list a group's image definitions, whose
	// versions purge decides about.
	galleries     *armcompute.GalleriesClient
	galleryImages *armcompute.GalleryImagesClient
	skus          *armcompute.ResourceSKUsClient
	usage         *armcompute.UsageClient
	nsgs          *armnetwork.SecurityGroupsClient
	rules         *armnetwork.SecurityRulesClient
	vnets         *armnetwork.VirtualNetworksClient
	subnets       *armnetwork.SubnetsClient
	nics          *armnetwork.InterfacesClient
	ips           *armnetwork.PublicIPAddressesClient
	groups        *armresources.ResourceGroupsClient
	// accounts and containers are the storage accounts and blob
	// containers prepare makes exist (management plane: no data access
	// is needed).
	accounts   *armstorage.AccountsClient
	containers *armstorage.BlobContainersClient
}

// NewMachines makes the clients of subscription with cred; opts may be nil
// (Azure's public cloud) or name another transport (azuretest).
func NewMachines(subscription string, cred azcore.TokenCredential, opts *arm.ClientOptions) (*Machines, error) {
	m := &Machines{subscription: subscription}
	var err error
	wrap := func(what string, e error) {
		if err == nil && e != nil {
			err = fmt.Errorf("azure: %s client: %w", what, e)
		}
	}
	cf, e := armcompute.NewClientFactory(subscription, cred, opts)
	wrap("compute", e)
	nf, e := armnetwork.NewClientFactory(subscription, cred, opts)
	wrap("network", e)
	rf, e := armresources.NewClientFactory(subscription, cred, opts)
	wrap("resources", e)
	sf, e := armstorage.NewClientFactory(subscription, cred, opts)
	wrap("storage", e)
	if err != nil {
		return nil, err
	}
	m.vms, m.disks, m.images = cf.NewVirtualMachinesClient(), cf.NewDisksClient(), cf.NewImagesClient()
	m.versions, m.skus, m.usage = cf.NewGalleryImageVersionsClient(), cf.NewResourceSKUsClient(), cf.NewUsageClient()
	m.galleries, m.galleryImages = cf.NewGalleriesClient(), cf.NewGalleryImagesClient()
	m.nsgs, m.vnets, m.subnets = nf.NewSecurityGroupsClient(), nf.NewVirtualNetworksClient(), nf.NewSubnetsClient()
	m.nics, m.ips = nf.NewInterfacesClient(), nf.NewPublicIPAddressesClient()
	m.rules = nf.NewSecurityRulesClient()
	m.groups = rf.NewResourceGroupsClient()
	m.accounts, m.containers = sf.NewAccountsClient(), sf.NewBlobContainersClient()
	return m, nil
}

// poll is the poll option of every long-running operation.
func (m *Machines) poll() *runtime.PollUntilDoneOptions {
	f := m.PollFrequency
	if f <= 0 {
		f = 5 * time.Second
	}
	return &runtime.PollUntilDoneOptions{Frequency: f}
}

// pollDone waits for a long-running operation that began with err (the
// pair a Begin method returns).
func pollDone[T any](ctx context.Context, m *Machines, p *runtime.Poller[T], err error) error {
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(ctx, m.poll())
	return err
}

// Delete deletes the resource id and waits for it; one that is not there
// is not an error (an undo may run twice, or after the resource's group
// went).
func (m *Machines) Delete(ctx context.Context, id string) error {
	r, err := arm.ParseResourceID(id)
	if err != nil {
		return fmt.Errorf("azure: delete %s: %w", id, err)
	}
	switch strings.ToLower(r.ResourceType.Namespace) {
	case "microsoft.compute":
		err = m.deleteCompute(ctx, r)
	case "microsoft.network":
		err = m.deleteNetwork(ctx, r)
	default:
		err = fmt.Errorf("cib does not delete %s resources", r.ResourceType)
	}
	if err != nil && !notFound(err) {
		return classify(fmt.Errorf("azure: delete %s: %w", id, err))
	}
	return nil
}

// notFound reports whether err says a resource (or its group) is not
// there.
func notFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// classify marks errors a later run may not meet as retryable: throttling,
// server failures, quota and capacity. Others (bad request, not found,
// forbidden, an operation not allowed in the resource's state) are
// permanent.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusTooManyRequests, re.StatusCode >= 500:
			return &machineimage.Retryable{Err: err}
		}
		switch re.ErrorCode {
		case "QuotaExceeded", "AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest":
			return &machineimage.Retryable{Err: err}
		case "OperationNotAllowed":
			// Azure answers a VM creation beyond the vCPU quota with
			// OperationNotAllowed ("... exceeding approved ... Cores
			// quota ..."); the same code also refuses an operation in the
			// wrong state (generalize a running VM), which no later run
			// fixes.
			if strings.Contains(strings.ToLower(re.Error()), "quota") {
				return &machineimage.Retryable{Err: err}
			}
		}
	}
	return err
}
