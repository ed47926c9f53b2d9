package azuretest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuretest"
)

const srg = "rg-storage"

// storage is the storage clients of a fresh Azure with group srg.
func storage(t *testing.T) (*azuretest.Azure, *armstorage.AccountsClient, *armstorage.BlobContainersClient) {
	t.Helper()
	a := azuretest.New()
	_, err := groupsClient(t, a).CreateOrUpdate(context.Background(), srg, armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil)
	require.NoError(t, err)
	f, err := armstorage.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return a, f.NewAccountsClient(), f.NewBlobContainersClient()
}

func accountParams(region string) armstorage.AccountCreateParameters {
	return armstorage.AccountCreateParameters{
		Kind: to.Ptr(armstorage.KindStorageV2), Location: to.Ptr(region), SKU: &armstorage.SKU{Name: to.Ptr(armstorage.SKUNameStandardLRS)},
	}
}

func createAccount(c *armstorage.AccountsClient, group, name string, p armstorage.AccountCreateParameters) (armstorage.Account, error) {
	poller, err := c.BeginCreate(context.Background(), group, name, p, nil)
	if err != nil {
		return armstorage.Account{}, err
	}
	r, err := poller.PollUntilDone(context.Background(), nil)
	return r.Account, err
}

func TestStorageAccounts(t *testing.T) {
	ctx := context.Background()
	a, accounts, _ := storage(t)

	acc, err := createAccount(accounts, srg, "saeast", accountParams("East US"))
	require.NoError(t, err)
	assert.Equal(t, azuretest.StorageAccountID(srg, "saeast"), *acc.ID)
	assert.Equal(t, "eastus", *acc.Location)
	assert.Equal(t, armstorage.SKUTierStandard, *acc.SKU.Tier)
	p := acc.Properties
	assert.True(t, *p.EnableHTTPSTrafficOnly, "Azure's default")
	assert.Equal(t, armstorage.MinimumTLSVersionTLS10, *p.MinimumTLSVersion, "Azure's documented default")
	assert.False(t, *p.AllowBlobPublicAccess)
	assert.Equal(t, "https://saeast.blob.core.windows.net/", *p.PrimaryEndpoints.Blob)

	got, err := accounts.GetProperties(ctx, srg, "saeast", nil)
	require.NoError(t, err)
	assert.Equal(t, acc, got.Account)

	// The update of the security settings and tags.
	up, err := accounts.Update(ctx, srg, "saeast", armstorage.AccountUpdateParameters{
		Tags:       map[string]*string{"a": to.Ptr("b")},
		Properties: &armstorage.AccountPropertiesUpdateParameters{MinimumTLSVersion: to.Ptr(armstorage.MinimumTLSVersionTLS12)},
	}, nil)
	require.NoError(t, err)
	assert.Equal(t, armstorage.MinimumTLSVersionTLS12, *up.Properties.MinimumTLSVersion)
	assert.True(t, *up.Properties.EnableHTTPSTrafficOnly, "what the update leaves out stays")
	assert.Equal(t, "b", *up.Tags["a"])

	// Names are global: the name check and a create elsewhere see it.
	chk := func(name string) armstorage.CheckNameAvailabilityResult {
		r, err := accounts.CheckNameAvailability(ctx, armstorage.AccountCheckNameAvailabilityParameters{Name: to.Ptr(name), Type: to.Ptr("Microsoft.Storage/storageAccounts")}, nil)
		require.NoError(t, err)
		return r.CheckNameAvailabilityResult
	}
	assert.False(t, *chk("saeast").NameAvailable)
	assert.Equal(t, armstorage.ReasonAlreadyExists, *chk("saeast").Reason)
	assert.True(t, *chk("safree").NameAvailable)
	a.TakeStorageName("sataken")
	assert.False(t, *chk("sataken").NameAvailable)
	assert.Equal(t, armstorage.ReasonAccountNameInvalid, *chk("Not-Valid").Reason)

	_, err = groupsClient(t, a).CreateOrUpdate(ctx, "rg-other", armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil)
	require.NoError(t, err)
	_, err = createAccount(accounts, "rg-other", "saeast", accountParams("eastus"))
	code(t, err, http.StatusConflict, "StorageAccountAlreadyTaken")
	_, err = createAccount(accounts, "rg-other", "sataken", accountParams("eastus"))
	code(t, err, http.StatusConflict, "StorageAccountAlreadyTaken")
	assert.NotContains(t, strings.Join(a.IDs(), "\n"), "sataken", "a name taken elsewhere is no resource here")

	pager := accounts.NewListByResourceGroupPager(srg, nil)
	var names []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		require.NoError(t, err)
		for _, v := range page.Value {
			names = append(names, *v.Name)
		}
	}
	assert.Equal(t, []string{"saeast"}, names)
}

func TestStorageAccountRefusals(t *testing.T) {
	ctx := context.Background()
	_, accounts, _ := storage(t)
	for _, name := range []string{"ab", "UPPER", "with-hyphen", strings.Repeat("a", 25)} {
		_, err := createAccount(accounts, srg, name, accountParams("eastus"))
		code(t, err, http.StatusBadRequest, "AccountNameInvalid")
	}
	_, err := createAccount(accounts, "rg-missing", "sagood", accountParams("eastus"))
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	noLocation := accountParams("")
	_, err = createAccount(accounts, srg, "sagood", noLocation)
	code(t, err, http.StatusBadRequest, "LocationRequired")
	noSKU := accountParams("eastus")
	noSKU.SKU = nil
	_, err = createAccount(accounts, srg, "sagood", noSKU)
	code(t, err, http.StatusBadRequest, "InvalidRequestContent")
	badKind := accountParams("eastus")
	badKind.Kind = to.Ptr(armstorage.Kind("StorageV9"))
	_, err = createAccount(accounts, srg, "sagood", badKind)
	code(t, err, http.StatusBadRequest, "InvalidRequestPropertyValue")

	// What the model does not implement it refuses, never pretends.
	hns := accountParams("eastus")
	hns.Properties = &armstorage.AccountPropertiesCreateParameters{IsHnsEnabled: to.Ptr(true)}
	_, err = createAccount(accounts, srg, "sagood", hns)
	code(t, err, http.StatusNotImplemented, "NotImplementedInModel")
	_, err = createAccount(accounts, srg, "sagood", accountParams("eastus"))
	require.NoError(t, err)
	_, err = createAccount(accounts, srg, "sagood", accountParams("eastus"))
	code(t, err, http.StatusNotImplemented, "NotImplementedInModel")
	_, err = accounts.Update(ctx, srg, "sagood", armstorage.AccountUpdateParameters{SKU: &armstorage.SKU{Name: to.Ptr(armstorage.SKUNameStandardGRS)}}, nil)
	code(t, err, http.StatusNotImplemented, "NotImplementedInModel")
	_, err = accounts.Update(ctx, srg, "sagood", armstorage.AccountUpdateParameters{
		Properties: &armstorage.AccountPropertiesUpdateParameters{AllowSharedKeyAccess: to.Ptr(false)},
	}, nil)
	code(t, err, http.StatusNotImplemented, "NotImplementedInModel")
	_, err = accounts.GetProperties(ctx, srg, "sagood", &armstorage.AccountsClientGetPropertiesOptions{Expand: to.Ptr(armstorage.StorageAccountExpandGeoReplicationStats)})
	code(t, err, http.StatusNotImplemented, "NotImplementedInModel")

	_, err = accounts.GetProperties(ctx, srg, "samissing", nil)
	code(t, err, http.StatusNotFound, "ResourceNotFound")
	_, err = accounts.GetProperties(ctx, "rg-missing", "sagood", nil)
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	_, err = accounts.Update(ctx, srg, "samissing", armstorage.AccountUpdateParameters{}, nil)
	code(t, err, http.StatusNotFound, "ResourceNotFound")
}

func TestBlobContainers(t *testing.T) {
	ctx := context.Background()
	a, accounts, containers := storage(t)
	_, err := createAccount(accounts, srg, "saeast", accountParams("eastus"))
	require.NoError(t, err)

	c, err := containers.Create(ctx, srg, "saeast", "disk-images", armstorage.BlobContainer{}, nil)
	require.NoError(t, err)
	assert.Equal(t, azuretest.ContainerID(srg, "saeast", "disk-images"), *c.ID)
	assert.Equal(t, armstorage.PublicAccessNone, *c.ContainerProperties.PublicAccess)
	got, err := containers.Get(ctx, srg, "saeast", "disk-images", nil)
	require.NoError(t, err)
	assert.Equal(t, *c.ID, *got.ID)

	_, err = containers.Create(ctx, srg, "saeast", "disk-images", armstorage.BlobContainer{}, nil)
	code(t, err, http.StatusConflict, "ContainerAlreadyExists")
	_, err = containers.Get(ctx, srg, "saeast", "nope", nil)
	code(t, err, http.StatusNotFound, "ContainerNotFound")
	for _, name := range []string{"ab", "Upper", "double--hyphen", "-start", "end-", strings.Repeat("a", 64)} {
		_, err = containers.Create(ctx, srg, "saeast", name, armstorage.BlobContainer{}, nil)
		code(t, err, http.StatusBadRequest, "ContainerOperationFailure")
	}
	for _, name := range []string{"abc", "a-b-c", strings.Repeat("a", 63), "v10"} {
		_, err = containers.Create(ctx, srg, "saeast", name, armstorage.BlobContainer{}, nil)
		assert.NoError(t, err, name)
	}
	_, err = containers.Create(ctx, srg, "saeast", "public", armstorage.BlobContainer{
		ContainerProperties: &armstorage.ContainerProperties{PublicAccess: to.Ptr(armstorage.PublicAccessBlob)},
	}, nil)
	code(t, err, http.StatusConflict, "PublicAccessNotPermitted")
	_, err = containers.Create(ctx, srg, "saeast", "scoped", armstorage.BlobContainer{
		ContainerProperties: &armstorage.ContainerProperties{DefaultEncryptionScope: to.Ptr("scope")},
	}, nil)
	code(t, err, http.StatusNotImplemented, "NotImplementedInModel")

	_, err = containers.Create(ctx, srg, "samissing", "disk-images", armstorage.BlobContainer{}, nil)
	code(t, err, http.StatusNotFound, "ParentResourceNotFound")
	_, err = containers.Get(ctx, srg, "samissing", "disk-images", nil)
	code(t, err, http.StatusNotFound, "ParentResourceNotFound")
	_, err = containers.Get(ctx, "rg-missing", "saeast", "disk-images", nil)
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")

	// Deleting the group takes the account and its containers.
	p, err := groupsClient(t, a).BeginDelete(ctx, srg, nil)
	require.NoError(t, err)
	_, err = p.PollUntilDone(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, a.IDs())
}

func TestStorageOperationsNotModelledFailLoudly(t *testing.T) {
	ctx := context.Background()
	_, accounts, _ := storage(t)
	_, err := accounts.ListKeys(ctx, srg, "saeast", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not implemented")
}
