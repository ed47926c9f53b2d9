package azure

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// ErrResourceNotFound is wrapped by the errors of Tags when the resource
// (or its group) is not there.
var ErrResourceNotFound = errors.New("not found")

// Tags returns the current tags of a resource cib tags: a managed image,
// a Compute Gallery image version, a VM, a managed disk, a NIC or a public
// IP address. A resource without tags has an empty (not nil) map. A
// resource that is not there is an error that wraps ErrResourceNotFound;
// other errors are classified (throttling and server failures are
// retryable).
func (m *Machines) Tags(ctx context.Context, id string) (map[string]string, error) {
	r, err := arm.ParseResourceID(id)
	if err != nil {
		return nil, fmt.Errorf("azure: tags of %s: %w", id, err)
	}
	g := r.ResourceGroupName
	var what string
	var tags map[string]*string
	switch strings.ToLower(r.ResourceType.String()) {
	case "microsoft.compute/images":
		what = "image " + g + "/" + r.Name
		res, e := m.images.Get(ctx, g, r.Name, nil)
		tags, err = res.Tags, e
	case "microsoft.compute/galleries/images/versions":
		gallery, image := r.Parent.Parent.Name, r.Parent.Name
		what = "image version " + g + "/" + gallery + "/" + image + "/" + r.Name
		res, e := m.versions.Get(ctx, g, gallery, image, r.Name, nil)
		tags, err = res.Tags, e
	case "microsoft.compute/virtualmachines":
		what = "VM " + g + "/" + r.Name
		res, e := m.vms.Get(ctx, g, r.Name, nil)
		tags, err = res.Tags, e
	case "microsoft.compute/disks":
		what = "disk " + g + "/" + r.Name
		res, e := m.disks.Get(ctx, g, r.Name, nil)
		tags, err = res.Tags, e
	case "microsoft.network/networkinterfaces":
		what = "NIC " + g + "/" + r.Name
		res, e := m.nics.Get(ctx, g, r.Name, nil)
		tags, err = res.Tags, e
	case "microsoft.network/publicipaddresses":
		what = "public IP " + g + "/" + r.Name
		res, e := m.ips.Get(ctx, g, r.Name, nil)
		tags, err = res.Tags, e
	default:
		return nil, fmt.Errorf("azure: tags of %s: cib does not tag %s resources", id, r.ResourceType)
	}
	switch {
	case notFound(err):
		return nil, fmt.Errorf("azure: tags of %s: %w: %w", what, ErrResourceNotFound, err)
	case err != nil:
		return nil, classify(fmt.Errorf("azure: tags of %s: %w", what, err))
	}
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		out[k] = valueOf(v)
	}
	return out, nil
}
