package azuretest

import (
	"context"
	"net/http"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

func init() { installers = append(installers, (*Azure).installGroups) }

// installGroups models resource groups: create or update, get, check
// existence, and delete, which (like Azure) takes everything in the group
// with it.
func (a *Azure) installGroups() {
	s := &a.groups.ResourceGroupsServer
	s.CreateOrUpdate = func(_ context.Context, name string, g armresources.ResourceGroup, _ *armresources.ResourceGroupsClientCreateOrUpdateOptions) (resp azfake.Responder[armresources.ResourceGroupsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		id := GroupID(name)
		status := http.StatusCreated
		if _, ok := a.get(id); ok {
			status = http.StatusOK
		}
		g.ID, g.Name, g.Type = to.Ptr(id), to.Ptr(name), to.Ptr("Microsoft.Resources/resourceGroups")
		g.Properties = &armresources.ResourceGroupProperties{ProvisioningState: to.Ptr("Succeeded")}
		a.put(id, g)
		resp.SetResponse(status, armresources.ResourceGroupsClientCreateOrUpdateResponse{ResourceGroup: g}, nil)
		return
	}
	s.Get = func(_ context.Context, name string, _ *armresources.ResourceGroupsClientGetOptions) (resp azfake.Responder[armresources.ResourceGroupsClientGetResponse], errResp azfake.ErrorResponder) {
		v, ok := a.get(GroupID(name))
		if !ok {
			errResp.SetResponseError(http.StatusNotFound, "ResourceGroupNotFound")
			return
		}
		resp.SetResponse(http.StatusOK, armresources.ResourceGroupsClientGetResponse{ResourceGroup: v.(armresources.ResourceGroup)}, nil)
		return
	}
	s.CheckExistence = func(_ context.Context, name string, _ *armresources.ResourceGroupsClientCheckExistenceOptions) (resp azfake.Responder[armresources.ResourceGroupsClientCheckExistenceResponse], errResp azfake.ErrorResponder) {
		_, ok := a.get(GroupID(name))
		status := http.StatusNoContent
		if !ok {
			status = http.StatusNotFound
		}
		resp.SetResponse(status, armresources.ResourceGroupsClientCheckExistenceResponse{Success: ok}, nil)
		return
	}
	s.BeginDelete = func(_ context.Context, name string, _ *armresources.ResourceGroupsClientBeginDeleteOptions) (resp azfake.PollerResponder[armresources.ResourceGroupsClientDeleteResponse], errResp azfake.ErrorResponder) {
		id := GroupID(name)
		if !a.del(id) {
			errResp.SetResponseError(http.StatusNotFound, "ResourceGroupNotFound")
			return
		}
		a.delPrefix(id + "/")
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armresources.ResourceGroupsClientDeleteResponse{}, nil)
		return
	}
}
