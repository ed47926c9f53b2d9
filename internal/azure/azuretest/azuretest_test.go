package azuretest_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuretest"
)

func groupsClient(t *testing.T, a *azuretest.Azure) *armresources.ResourceGroupsClient {
	t.Helper()
	c, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return c
}

func TestResourceGroups(t *testing.T) {
	a := azuretest.New()
	ctx := context.Background()
	c := groupsClient(t, a)
	_, err := c.CreateOrUpdate(ctx, "rg-cib", armresources.ResourceGroup{Location: to.Ptr("centralus")}, nil)
	require.NoError(t, err)
	g, err := c.Get(ctx, "rg-cib", nil)
	require.NoError(t, err)
	assert.Equal(t, "centralus", *g.Location)
	assert.Equal(t, []string{azuretest.GroupID("rg-cib")}, a.IDs())

	p, err := c.BeginDelete(ctx, "rg-cib", nil)
	require.NoError(t, err)
	_, err = p.PollUntilDone(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, a.IDs())
	_, err = c.Get(ctx, "rg-cib", nil)
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "ResourceGroupNotFound", re.ErrorCode)
}

// A call the model does not implement fails loudly; a fault answers with
// an Azure error and is recorded.
func TestUnimplementedAndFaults(t *testing.T) {
	a := azuretest.New()
	ctx := context.Background()
	c := groupsClient(t, a)
	_, err := c.Update(ctx, "rg", armresources.ResourceGroupPatchable{}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not implemented")

	a.Inject(azuretest.Fault{API: "ResourceGroupsClient.CreateOrUpdate", Status: 429, Code: "TooManyRequests", Times: 1})
	_, err = c.CreateOrUpdate(ctx, "rg", armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil)
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 429, re.StatusCode)
	assert.Equal(t, "TooManyRequests", re.ErrorCode)
	_, err = c.CreateOrUpdate(ctx, "rg", armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil)
	require.NoError(t, err, "the fault fires once")
	calls := a.Calls()
	require.Len(t, calls, 3)
	assert.Equal(t, "ResourceGroupsClient.CreateOrUpdate", calls[1].API)
	assert.True(t, calls[1].Fault)
	assert.False(t, calls[2].Fault)
}
