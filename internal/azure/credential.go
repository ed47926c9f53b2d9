package azure

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// FederationAudience is the audience of the GitHub OIDC ID token that
// Microsoft Entra ID exchanges for an access token (a federated
// credential on the app registration or managed identity).
const FederationAudience = "api://AzureADTokenExchange"

// CredentialOptions say how a job logs in to Azure.
type CredentialOptions struct {
	// Getenv reads AZURE_CLIENT_ID and AZURE_TENANT_ID (and, for the
	// default chain, the other AZURE_* variables).
	Getenv func(string) string
	// IDToken, when set, fetches the workflow's OIDC ID token for an
	// audience (actionsio.Runner.IDToken; nil outside Actions or without
	// `permissions: id-token: write`).
	IDToken func(ctx context.Context, audience string) (string, error)
	// Client are the options of the token requests (tests point them at
	// a stand-in authority).
	Client azcore.ClientOptions
	// DisableInstanceDiscovery skips the authority's instance discovery
	// (sovereign or test authorities).
	DisableInstanceDiscovery bool
}

// Credential returns the credential a job logs in with, and says which:
//
//   - "oidc": workload identity federation, when IDToken is set and
//     AZURE_CLIENT_ID and AZURE_TENANT_ID name the identity. Each access
//     token is bought with a fresh GitHub ID token, so no secret is stored
//     anywhere;
//   - "default": azidentity's default chain otherwise: a service principal
//     from AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or a
//     certificate), workload identity, managed identity, or the Azure CLI
//     that azure/login signed in.
//
// No secret ever appears in an error.
func Credential(o CredentialOptions) (azcore.TokenCredential, string, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	client, tenant := getenv("AZURE_CLIENT_ID"), getenv("AZURE_TENANT_ID")
	if o.IDToken != nil && client != "" && tenant != "" {
		idToken := o.IDToken
		cred, err := azidentity.NewClientAssertionCredential(tenant, client,
			func(ctx context.Context) (string, error) { return idToken(ctx, FederationAudience) },
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: o.Client, DisableInstanceDiscovery: o.DisableInstanceDiscovery})
		if err != nil {
			return nil, "", fmt.Errorf("azure: OIDC login as client %s in tenant %s: %w", client, tenant, err)
		}
		return cred, "oidc", nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: o.Client})
	if err != nil {
		return nil, "", errors.New("azure: no credentials: give the job `permissions: id-token: write` with AZURE_CLIENT_ID and AZURE_TENANT_ID (OIDC), or log in with azure/login, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET")
	}
	return cred, "default", nil
}
