package azure

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// deleteCompute deletes a compute resource and waits for it.
func (m *Machines) deleteCompute(ctx context.Context, r *arm.ResourceID) error {
	switch strings.ToLower(r.ResourceType.String()) {
	case "microsoft.compute/virtualmachines":
		p, err := m.vms.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, m.poll())
		}
		return err
	case "microsoft.compute/disks":
		p, err := m.disks.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, m.poll())
		}
		return err
	case "microsoft.compute/images":
		p, err := m.images.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, m.poll())
		}
		return err
	case "microsoft.compute/galleries/images/versions":
		gallery, image := r.Parent.Parent.Name, r.Parent.Name
		p, err := m.versions.BeginDelete(ctx, r.ResourceGroupName, gallery, image, r.Name, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, m.poll())
		}
		return err
	}
	return fmt.Errorf("cib does not delete %s resources", r.ResourceType)
}
