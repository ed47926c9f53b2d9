package azure

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// What the command line needs to reach Azure Resource Manager without
// importing the SDK itself (internal/azure stays its only importer).

// Connect logs in with Credential(o) (OIDC federation when o.IDToken is
// set and AZURE_CLIENT_ID and AZURE_TENANT_ID are, else the default
// chain) and makes the Machines of subscription in the cloud the
// environment names (Cloud: Azure's public cloud unless AZURE_CLOUD or
// AZURE_RESOURCE_MANAGER_ENDPOINT say otherwise). It returns which login
// it used ("oidc" or "default").
func Connect(subscription string, o CredentialOptions) (*Machines, string, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg, custom, err := Cloud(getenv)
	if err != nil {
		return nil, "", err
	}
	o.Client.Cloud = cfg
	o.DisableInstanceDiscovery = o.DisableInstanceDiscovery || custom
	cred, how, err := Credential(o)
	if err != nil {
		return nil, "", err
	}
	m, err := NewMachines(subscription, cred, &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Cloud: cfg}})
	if err != nil {
		return nil, "", err
	}
	return m, how, nil
}

// StandIn makes the Machines of subscription over a stand-in Resource
// Manager that checks no token (opts: azuretest's ClientOptions), for
// the command line's tests.
func StandIn(subscription string, opts *arm.ClientOptions) (*Machines, error) {
	return NewMachines(subscription, standInToken{}, opts)
}

// standInToken is a credential whose token no real service accepts.
type standInToken struct{}

func (standInToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "stand-in", ExpiresOn: time.Now().Add(time.Hour)}, nil
}
