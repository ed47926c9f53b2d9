// Package machineimage builds machine images (spec/machine-image.md): it
// boots a disk image (or a marketplace image) in the cloud, lets the
// guest's bootstrap run, captures an image, replicates and tags it, and
// leaves nothing behind. It talks to the cloud only through Cloud, which
// internal/azure implements for Azure.
package machineimage

import (
	"context"
	"errors"
)

// Cloud is what the pipeline asks of a cloud. Resources are named by
// their cloud IDs. Every Create returns the ID that Delete takes, so that
// the pipeline can undo what it created, in reverse order. A Create that
// fails after the cloud may have accepted it (a long-running operation
// whose polling failed or was cancelled, a server error) returns the ID
// along with the error, so that the pipeline undoes that too; it returns
// "" only when nothing can have been created.
type Cloud interface {
	// SizeOffered reports whether VM size is offered in region to this
	// subscription (not restricted).
	SizeOffered(ctx context.Context, region, size string) (bool, error)
	// VCPUs returns how many vCPUs a VM of size needs and how many of its
	// family's quota in region are free.
	VCPUs(ctx context.Context, region, size string) (need, free int, err error)
	// ImageID returns the ID of the managed image name in group, or ""
	// when there is none.
	ImageID(ctx context.Context, group, name string) (string, error)

	// EnsureNetwork makes the NSG (its rules reconciled with n.Rules), the
	// virtual network and the subnet exist as n describes, and returns the
	// subnet's ID. They are shared between runs and never deleted by one.
	EnsureNetwork(ctx context.Context, n Network) (subnetID string, err error)

	// CreateDisk creates a managed disk: imported from d.SourceBlob (a
	// VHD in a storage account) when set, else empty.
	CreateDisk(ctx context.Context, d Disk) (id string, err error)
	// CreatePublicIP creates a static public IP address.
	CreatePublicIP(ctx context.Context, r Resource) (id string, err error)
	// CreateNIC creates a network interface in subnetID, with publicIPID
	// when it is not empty.
	CreateNIC(ctx context.Context, r Resource, subnetID, publicIPID string) (id string, err error)
	// CreateVM creates and starts a VM.
	CreateVM(ctx context.Context, vm VM) (id string, err error)

	// PowerState is the VM's power state.
	PowerState(ctx context.Context, vmID string) (PowerState, error)
	// StartVM starts a stopped VM.
	StartVM(ctx context.Context, vmID string) error
	// RestartVM restarts a running VM (the guest boots again).
	RestartVM(ctx context.Context, vmID string) error
	// RunCommand runs a PowerShell script in the running guest.
	RunCommand(ctx context.Context, vmID, script string) (RunResult, error)
	// Diagnostics fetches the boot diagnostics: a screenshot and the
	// serial log.
	Diagnostics(ctx context.Context, vmID string) (Diagnostics, error)
	// Deallocate stops the VM and releases its host.
	Deallocate(ctx context.Context, vmID string) error
	// Generalize marks a deallocated VM generalized.
	Generalize(ctx context.Context, vmID string) error

	// CreateImage captures a managed image of a generalized VM.
	CreateImage(ctx context.Context, img Image) (id string, err error)
	// CreateImageVersion creates a Compute Gallery image version of a
	// managed image, replicated to v.Regions.
	CreateImageVersion(ctx context.Context, v ImageVersion) (id string, err error)
	// Tag sets tags on a resource, keeping the others.
	Tag(ctx context.Context, id string, tags map[string]string) error
	// Delete deletes a resource and waits for it; one that does not exist
	// is not an error.
	Delete(ctx context.Context, id string) error
}

// Resource is what every created resource has.
type Resource struct {
	Group  string // resource group
	Region string // normalized: centralus
	Name   string
	Tags   map[string]string
}

// Network is a target's network: NSG, virtual network and subnet.
type Network struct {
	Group, Region string
	NSG           string
	Rules         []Rule
	VNet          string
	Prefix        string   // address space, e.g. 10.0.0.0/16
	DNS           []string // DNS servers
	Subnet        string
	SubnetPrefix  string
	Tags          map[string]string
}

// Rule is an NSG rule.
type Rule struct {
	Name, Description    string
	Access               string // Allow, Deny
	Protocol             string // Tcp, Udp, *
	Direction            string // Inbound, Outbound
	Priority             int
	SourceAddressPrefix  []string
	SourcePortRange      string
	DestinationPrefix    string
	DestinationPortRange []string
}

// Disk is a managed disk.
type Disk struct {
	Resource
	SKU              string // StandardSSD_LRS, Standard_LRS
	SizeGiB          int
	HyperVGeneration string // V1, V2
	// SourceBlob is the URL of the VHD page blob to import; empty makes an
	// empty (data) disk.
	SourceBlob string
	// StorageAccountID is the account of SourceBlob, as import needs it.
	StorageAccountID string
}

// VM is a virtual machine: an attached OS disk (OSDiskID, an image built
// by cib: nothing to provision), a marketplace image (Source), or a
// managed image or Compute Gallery image version (ImageID); the last two
// are provisioned with an administrator password. A VM made from ImageID
// has its OS disk named <Name>-osdisk, in its group, deleted with it.
type VM struct {
	Resource
	Size     string
	OSDiskID string
	Source   *Marketplace
	// ImageID is the ID of a managed image
	// (…/providers/Microsoft.Compute/images/NAME) or of a gallery image
	// version (…/galleries/G/images/D/versions/V) to create the VM from:
	// how cib verify boots the images it built.
	ImageID     string
	AdminPass   string // only with Source or ImageID
	OSDiskSKU   string // only with Source or ImageID
	DataDiskIDs []string
	NICID       string
}

// Marketplace names a marketplace image.
type Marketplace struct {
	Publisher, Offer, SKU, Version string
}

// PowerState is a VM's power state, as Azure's instance view names it
// (PowerState/<state>).
type PowerState string

// The power states.
const (
	Starting     PowerState = "starting"
	Running      PowerState = "running"
	Stopping     PowerState = "stopping"
	Stopped      PowerState = "stopped"
	Deallocating PowerState = "deallocating"
	Deallocated  PowerState = "deallocated"
	Unknown      PowerState = "unknown"
)

// RunResult is the output of a Run Command.
type RunResult struct {
	Stdout, Stderr string
}

// Diagnostics are a VM's boot diagnostics.
type Diagnostics struct {
	Screenshot []byte // image/bmp or png, as the cloud gives it
	Serial     []byte
}

// Image is a managed image captured from a VM.
type Image struct {
	Resource
	SourceVMID       string
	HyperVGeneration string
}

// ImageVersion is a Compute Gallery image version.
type ImageVersion struct {
	Resource            // Name is the version, e.g. 2026.1127.83012
	Gallery, Definition string
	SourceImageID       string
	Regions             []string // where it is replicated, Region included
}

// Retryable marks an error a later run may not meet: throttling, quota,
// a transient service failure, a guest that did not reach a state in
// time. The CLI gives it its own exit code.
type Retryable struct{ Err error }

func (e *Retryable) Error() string { return e.Err.Error() }
func (e *Retryable) Unwrap() error { return e.Err }

// IsRetryable reports whether err is or wraps a Retryable.
func IsRetryable(err error) bool {
	var r *Retryable
	return errors.As(err, &r)
}
