package azure

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// deleteNetwork deletes a network resource a run creates (a NIC, a public
// IP) and waits for it. NSGs and virtual networks are shared between runs
// and are never deleted by one.
func (m *Machines) deleteNetwork(ctx context.Context, r *arm.ResourceID) error {
	switch strings.ToLower(r.ResourceType.String()) {
	case "microsoft.network/networkinterfaces":
		p, err := m.nics.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, m.poll())
		}
		return err
	case "microsoft.network/publicipaddresses":
		p, err := m.ips.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, m.poll())
		}
		return err
	}
	return fmt.Errorf("cib does not delete %s resources", r.ResourceType)
}
