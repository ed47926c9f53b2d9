package azuretest_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuretest"
)

func TestListsPageAndSkipNothing(t *testing.T) {
	a := azuretest.New()
	ctx := context.Background()
	_, err := groupsClient(t, a).CreateOrUpdate(ctx, "rg-list", armresources.ResourceGroup{Location: to.Ptr("centralus")}, nil)
	require.NoError(t, err)
	for i := range 5 {
		name := fmt.Sprintf("d%d", i)
		_, err := a.Put(armcompute.Disk{ID: to.Ptr(azuretest.ResourceID("rg-list", "Microsoft.Compute", "disks", name)), Name: to.Ptr(name),
			Location: to.Ptr("centralus"), Properties: &armcompute.DiskProperties{DiskState: to.Ptr(armcompute.DiskStateUnattached)}})
		require.NoError(t, err)
	}
	c, err := armcompute.NewDisksClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	p := c.NewListByResourceGroupPager("rg-list", nil)
	var names []string
	pages := 0
	for p.More() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		pages++
		assert.LessOrEqual(t, len(page.Value), azuretest.ListPageSize)
		for _, d := range page.Value {
			names = append(names, *d.Name)
		}
	}
	assert.Equal(t, []string{"d0", "d1", "d2", "d3", "d4"}, names)
	assert.Equal(t, 3, pages)

	// An empty group is one empty page; a missing group is a 404.
	images, err := armcompute.NewImagesClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	ip := images.NewListByResourceGroupPager("rg-list", nil)
	page, err := ip.NextPage(ctx)
	require.NoError(t, err)
	assert.Empty(t, page.Value)
	assert.False(t, ip.More())
	_, err = images.NewListByResourceGroupPager("rg-missing", nil).NextPage(ctx)
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusNotFound, re.StatusCode)
	assert.Equal(t, "ResourceGroupNotFound", re.ErrorCode)

	// Put refuses what it cannot place.
	_, err = a.Put(armcompute.Disk{Name: to.Ptr("no-id")})
	assert.Error(t, err)
	_, err = a.Put(armcompute.Disk{ID: to.Ptr(azuretest.ResourceID("rg-missing", "Microsoft.Compute", "disks", "x"))})
	assert.Error(t, err)
	_, err = a.Put(armcompute.VirtualMachine{ID: to.Ptr(azuretest.ResourceID("rg-list", "Microsoft.Compute", "virtualMachines", "vm"))})
	assert.Error(t, err)
}
