package azure

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// TagNetwork lets the external tests reach tagNetwork, which the Cloud
// interface reaches through Tag.
func TagNetwork(ctx context.Context, m *Machines, id string, tags map[string]string) error {
	r, err := arm.ParseResourceID(id)
	if err != nil {
		return err
	}
	return m.tagNetwork(ctx, r, tags)
}
