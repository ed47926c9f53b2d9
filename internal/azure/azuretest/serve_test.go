package azuretest

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAPIOf checks that a request on the wire is named as the SDK names
// the call, and that one the model does not implement is an error.
func TestAPIOf(t *testing.T) {
	a := New()
	rg := "/subscriptions/" + Subscription + "/resourceGroups/rg"
	for _, c := range []struct{ method, path, want string }{
		{http.MethodGet, rg + "/providers/Microsoft.Compute/virtualMachines", "VirtualMachinesClient.NewListPager"},
		{http.MethodPut, rg + "/providers/Microsoft.Compute/virtualMachines/vm", "VirtualMachinesClient.BeginCreateOrUpdate"},
		{http.MethodPost, rg + "/providers/Microsoft.Compute/virtualMachines/vm/deallocate", "VirtualMachinesClient.BeginDeallocate"},
		{http.MethodPost, rg + "/providers/Microsoft.Compute/virtualMachines/vm/generalize", "VirtualMachinesClient.Generalize"},
		{http.MethodGet, rg + "/providers/Microsoft.Compute/virtualMachines/vm/instanceView", "VirtualMachinesClient.InstanceView"},
		{http.MethodGet, rg + "/providers/Microsoft.Compute/galleries/g/images/d/versions", "GalleryImageVersionsClient.NewListByGalleryImagePager"},
		{http.MethodPut, rg + "/providers/Microsoft.Network/virtualNetworks/vn/subnets/sn", "SubnetsClient.BeginCreateOrUpdate"},
		{http.MethodGet, rg + "/providers/Microsoft.Network/networkInterfaces", "InterfacesClient.NewListPager"},
		{http.MethodPut, rg + "/providers/Microsoft.Storage/storageAccounts/sa/blobServices/default/containers/c", "BlobContainersClient.Create"},
		{http.MethodGet, rg + "/providers/Microsoft.Storage/storageAccounts/sa", "AccountsClient.GetProperties"},
		{http.MethodPost, "/subscriptions/" + Subscription + "/providers/Microsoft.Storage/checkNameAvailability", "AccountsClient.CheckNameAvailability"},
		{http.MethodGet, "/subscriptions/" + Subscription + "/providers/Microsoft.Compute/skus", "ResourceSKUsClient.NewListPager"},
		{http.MethodGet, "/subscriptions/" + Subscription + "/providers/Microsoft.Compute/locations/eastus/usages", "UsageClient.NewListPager"},
		{http.MethodHead, rg, "ResourceGroupsClient.CheckExistence"},
		{http.MethodDelete, rg, "ResourceGroupsClient.BeginDelete"},
	} {
		got, err := a.apiOf(c.method, c.path)
		require.NoError(t, err, "%s %s", c.method, c.path)
		assert.Equal(t, c.want, got, "%s %s", c.method, c.path)
	}
	for _, c := range []struct{ method, path, want string }{
		{http.MethodGet, rg + "/providers/Microsoft.Web/sites", "no client for resource type microsoft.web/sites"},
		{http.MethodPost, rg + "/providers/Microsoft.Compute/virtualMachines/vm/reimage", "implements 0 of the operations [BeginReimage Reimage]"},
		{http.MethodGet, "/providers/Microsoft.Compute/operations", "not a subscription's resource"},
	} {
		_, err := a.apiOf(c.method, c.path)
		require.Error(t, err, "%s %s", c.method, c.path)
		assert.Contains(t, err.Error(), c.want)
	}
}
