package azure_test

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
)

func TestCloudFromTheEnvironment(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cfg, custom, err := azure.Cloud(env())
	require.NoError(t, err)
	assert.False(t, custom)
	assert.Equal(t, cloud.AzurePublic.ActiveDirectoryAuthorityHost, cfg.ActiveDirectoryAuthorityHost)

	cfg, _, err = azure.Cloud(env("AZURE_CLOUD", "AzureUSGovernment"))
	require.NoError(t, err)
	assert.Equal(t, "https://management.usgovcloudapi.net", cfg.Services[cloud.ResourceManager].Endpoint)

	cfg, custom, err = azure.Cloud(env("AZURE_RESOURCE_MANAGER_ENDPOINT", "https://management.local.azurestack.external",
		"AZURE_AUTHORITY_HOST", "https://login.local/"))
	require.NoError(t, err)
	assert.True(t, custom)
	assert.Equal(t, cloud.ServiceConfiguration{Endpoint: "https://management.local.azurestack.external", Audience: "https://management.local.azurestack.external"},
		cfg.Services[cloud.ResourceManager])
	assert.Equal(t, "https://login.local/", cfg.ActiveDirectoryAuthorityHost)

	for _, c := range []struct {
		env  func(string) string
		want string
	}{
		{env("AZURE_CLOUD", "Mars"), `AZURE_CLOUD="Mars": use AzurePublic, AzureChina or AzureUSGovernment`},
		{env("AZURE_RESOURCE_MANAGER_ENDPOINT", "http://plain"), "want an https:// URL"},
		{env("AZURE_RESOURCE_MANAGER_ENDPOINT", "https://arm.example"), "set without AZURE_AUTHORITY_HOST"},
	} {
		_, _, err := azure.Cloud(c.env)
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.want)
	}
}
