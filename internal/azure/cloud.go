package azure

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

// The environment variables that name the Azure cloud cib talks to. The
// public cloud needs none of them.
const (
	// CloudVar names a national cloud: AzurePublic (the default),
	// AzureChina or AzureUSGovernment.
	CloudVar = "AZURE_CLOUD"
	// ResourceManagerVar is the Resource Manager endpoint of any other
	// cloud (Azure Stack Hub, a private stand-in), with
	// ResourceManagerAudienceVar its token audience (default: the
	// endpoint) and azidentity's AZURE_AUTHORITY_HOST its Entra ID.
	ResourceManagerVar         = "AZURE_RESOURCE_MANAGER_ENDPOINT"
	ResourceManagerAudienceVar = "AZURE_RESOURCE_MANAGER_AUDIENCE"
	AuthorityHostVar           = "AZURE_AUTHORITY_HOST"
)

// Cloud is the cloud the environment names (see CloudVar and
// ResourceManagerVar); custom reports a cloud other than a built-in one,
// whose authority has no instance discovery.
func Cloud(getenv func(string) string) (cfg cloud.Configuration, custom bool, err error) {
	switch name := strings.ToLower(strings.TrimSpace(getenv(CloudVar))); name {
	case "", "azurepublic", "azurepubliccloud", "azurecloud":
		cfg = cloud.AzurePublic
	case "azurechina", "azurechinacloud":
		cfg = cloud.AzureChina
	case "azureusgovernment", "azureusgovernmentcloud":
		cfg = cloud.AzureGovernment
	default:
		return cfg, false, fmt.Errorf("azure: %s=%q: use AzurePublic, AzureChina or AzureUSGovernment, or name the endpoints with %s and %s", CloudVar, getenv(CloudVar), ResourceManagerVar, AuthorityHostVar)
	}
	endpoint := strings.TrimSpace(getenv(ResourceManagerVar))
	if endpoint == "" {
		return cfg, false, nil
	}
	if u, perr := url.Parse(endpoint); perr != nil || u.Scheme != "https" || u.Host == "" {
		return cfg, false, fmt.Errorf("azure: %s=%q: want an https:// URL", ResourceManagerVar, endpoint)
	}
	audience := strings.TrimSpace(getenv(ResourceManagerAudienceVar))
	if audience == "" {
		audience = endpoint
	}
	authority := strings.TrimSpace(getenv(AuthorityHostVar))
	if authority == "" {
		return cfg, false, fmt.Errorf("azure: %s is set without %s: name the cloud's Entra ID authority too", ResourceManagerVar, AuthorityHostVar)
	}
	cfg = cloud.Configuration{
		ActiveDirectoryAuthorityHost: authority,
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: endpoint, Audience: audience},
		},
	}
	return cfg, true, nil
}
