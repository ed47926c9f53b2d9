package azuretest

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/v2"
)

func init() { installers = append(installers, (*Azure).installStorage) }

// storageMu makes each storage operation's read-check-write atomic: an
// account name is global, so a create checks every group.
var storageMu sync.Mutex

// Names of Microsoft.Storage, as IDs and the type field spell them.
const (
	storageNS     = "Microsoft.Storage"
	accountKind   = "storageAccounts"
	accountType   = storageNS + "/" + accountKind
	containerType = storageNS + "/" + accountKind + "/blobServices/containers"
)

var (
	// An account name is 3 to 24 lower-case letters and digits.
	accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	// A container name is 3 to 63 lower-case letters, digits and single
	// hyphens, starting and ending with a letter or a digit ($root and
	// $web aside, which the model does not have).
	containerPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// validContainer reports whether name is a container name Azure takes.
func validContainer(name string) bool {
	return len(name) >= 3 && len(name) <= 63 && containerPattern.MatchString(name)
}

// StorageAccountID is the ID of storage account name in group.
func StorageAccountID(group, name string) string {
	return ResourceID(group, storageNS, accountKind, name)
}

// ContainerID is the ID of blob container name of account in group, as
// Resource Manager spells it.
func ContainerID(group, account, name string) string {
	return StorageAccountID(group, account) + "/blobServices/default/containers/" + name
}

// TakeStorageName marks a storage account name as taken by someone else
// (another subscription): Azure's account names are global, so a create
// with it fails even though this subscription has no such account.
func (a *Azure) TakeStorageName(name string) {
	storageMu.Lock()
	defer storageMu.Unlock()
	if takenNames[a] == nil {
		takenNames[a] = map[string]bool{}
	}
	takenNames[a][strings.ToLower(name)] = true
}

// takenNames are the names TakeStorageName took, by Azure: kept out of
// the resources, which are this subscription's. storageMu guards it.
var takenNames = map[*Azure]map[string]bool{}

// accountHolder returns the ID of the account that holds name anywhere
// in the subscription, "elsewhere" for a name TakeStorageName took, or
// "". The caller holds storageMu.
func (a *Azure) accountHolder(name string) string {
	if takenNames[a][strings.ToLower(name)] {
		return "elsewhere"
	}
	for _, v := range a.children("/subscriptions/" + Subscription + "/resourceGroups/") {
		if acc, ok := v.(armstorage.Account); ok && strings.EqualFold(deref(acc.Name), name) {
			return *acc.ID
		}
	}
	return ""
}

// installStorage models what prepare uses of Microsoft.Storage: storage
// accounts (create, read, update of their security settings, the name
// check, lists by group) and blob containers through Resource Manager
// (create, read). Names are checked as Azure checks them, account names
// are global, and a container needs its account. Anything else the model
// refuses as not modelled.
func (a *Azure) installStorage() {
	s := &a.storage.AccountsServer
	s.CheckNameAvailability = func(_ context.Context, p armstorage.AccountCheckNameAvailabilityParameters, _ *armstorage.AccountsClientCheckNameAvailabilityOptions) (resp azfake.Responder[armstorage.AccountsClientCheckNameAvailabilityResponse], errResp azfake.ErrorResponder) {
		storageMu.Lock()
		defer storageMu.Unlock()
		if !strings.EqualFold(deref(p.Type), accountType) {
			errResp.SetError(armError(http.StatusBadRequest, "InvalidResourceType", "The resource type '%s' is not a storage account type.", deref(p.Type)))
			return
		}
		name := deref(p.Name)
		r := armstorage.CheckNameAvailabilityResult{NameAvailable: to.Ptr(true)}
		switch {
		case !accountName.MatchString(name):
			r = armstorage.CheckNameAvailabilityResult{
				NameAvailable: to.Ptr(false), Reason: to.Ptr(armstorage.ReasonAccountNameInvalid),
				Message: to.Ptr(name + " is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only."),
			}
		case a.accountHolder(name) != "":
			r = armstorage.CheckNameAvailabilityResult{
				NameAvailable: to.Ptr(false), Reason: to.Ptr(armstorage.ReasonAlreadyExists),
				Message: to.Ptr("The storage account named " + name + " is already taken."),
			}
		}
		resp.SetResponse(http.StatusOK, armstorage.AccountsClientCheckNameAvailabilityResponse{CheckNameAvailabilityResult: r}, nil)
		return
	}
	s.BeginCreate = func(_ context.Context, group, name string, p armstorage.AccountCreateParameters, _ *armstorage.AccountsClientBeginCreateOptions) (resp azfake.PollerResponder[armstorage.AccountsClientCreateResponse], errResp azfake.ErrorResponder) {
		storageMu.Lock()
		defer storageMu.Unlock()
		acc, err := a.createAccount(group, name, p)
		if err != nil {
			errResp.SetError(err)
			return
		}
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armstorage.AccountsClientCreateResponse{Account: acc}, nil)
		return
	}
	s.GetProperties = func(_ context.Context, group, name string, o *armstorage.AccountsClientGetPropertiesOptions) (resp azfake.Responder[armstorage.AccountsClientGetPropertiesResponse], errResp azfake.ErrorResponder) {
		storageMu.Lock()
		defer storageMu.Unlock()
		if o != nil && o.Expand != nil {
			errResp.SetError(notModelled("storage account properties with $expand=%s", *o.Expand))
			return
		}
		acc, err := a.account(group, name)
		if err != nil {
			errResp.SetError(err)
			return
		}
		resp.SetResponse(http.StatusOK, armstorage.AccountsClientGetPropertiesResponse{Account: acc}, nil)
		return
	}
	s.Update = func(_ context.Context, group, name string, u armstorage.AccountUpdateParameters, _ *armstorage.AccountsClientUpdateOptions) (resp azfake.Responder[armstorage.AccountsClientUpdateResponse], errResp azfake.ErrorResponder) {
		storageMu.Lock()
		defer storageMu.Unlock()
		acc, err := a.account(group, name)
		if err != nil {
			errResp.SetError(err)
			return
		}
		if u.Identity != nil || u.Kind != nil || u.Placement != nil || u.SKU != nil || u.Zones != nil {
			errResp.SetError(notModelled("updating a storage account's identity, kind, placement, SKU or zones"))
			return
		}
		if p := u.Properties; p != nil {
			if extra := setFields(p, "supportsHttpsTrafficOnly", "minimumTlsVersion", "allowBlobPublicAccess"); len(extra) > 0 {
				errResp.SetError(notModelled("updating storage account properties %s", strings.Join(extra, ", ")))
				return
			}
			if p.MinimumTLSVersion != nil && !slices.Contains(armstorage.PossibleMinimumTLSVersionValues(), *p.MinimumTLSVersion) {
				errResp.SetError(armError(http.StatusBadRequest, "InvalidValuesForRequestParameters", "Values for request parameters are invalid: minimumTlsVersion."))
				return
			}
			if p.EnableHTTPSTrafficOnly != nil {
				acc.Properties.EnableHTTPSTrafficOnly = p.EnableHTTPSTrafficOnly
			}
			if p.MinimumTLSVersion != nil {
				acc.Properties.MinimumTLSVersion = p.MinimumTLSVersion
			}
			if p.AllowBlobPublicAccess != nil {
				acc.Properties.AllowBlobPublicAccess = p.AllowBlobPublicAccess
			}
		}
		if u.Tags != nil {
			acc.Tags = clone(u.Tags)
		}
		a.put(*acc.ID, clone(acc))
		resp.SetResponse(http.StatusOK, armstorage.AccountsClientUpdateResponse{Account: acc}, nil)
		return
	}
	s.NewListByResourceGroupPager = func(group string, _ *armstorage.AccountsClientListByResourceGroupOptions) (resp azfake.PagerResponder[armstorage.AccountsClientListByResourceGroupResponse]) {
		storageMu.Lock()
		defer storageMu.Unlock()
		if err := a.groupMissing(group); err != nil {
			resp.AddError(err)
			return
		}
		for _, p := range pages(stored[armstorage.Account](a, GroupID(group)+"/providers/"+accountType+"/")) {
			resp.AddPage(http.StatusOK, armstorage.AccountsClientListByResourceGroupResponse{AccountListResult: armstorage.AccountListResult{Value: p}}, nil)
		}
		return
	}

	c := &a.storage.BlobContainersServer
	c.Create = func(_ context.Context, group, account, name string, bc armstorage.BlobContainer, _ *armstorage.BlobContainersClientCreateOptions) (resp azfake.Responder[armstorage.BlobContainersClientCreateResponse], errResp azfake.ErrorResponder) {
		storageMu.Lock()
		defer storageMu.Unlock()
		acc, err := a.containerParent(group, account)
		if err != nil {
			errResp.SetError(err)
			return
		}
		if !validContainer(name) {
			errResp.SetError(armError(http.StatusBadRequest, "ContainerOperationFailure",
				"The specified resource name contains invalid characters. Container names are 3 to 63 lower-case letters, digits and single hyphens, and start and end with a letter or a digit."))
			return
		}
		id := ContainerID(group, account, name)
		if _, ok := a.get(id); ok {
			errResp.SetError(armError(http.StatusConflict, "ContainerAlreadyExists", "The specified container already exists."))
			return
		}
		bc = clone(bc)
		if bc.ContainerProperties == nil {
			bc.ContainerProperties = &armstorage.ContainerProperties{}
		}
		p := bc.ContainerProperties
		if extra := setFields(p, "publicAccess", "metadata"); len(extra) > 0 {
			errResp.SetError(notModelled("blob container properties %s", strings.Join(extra, ", ")))
			return
		}
		if p.PublicAccess == nil {
			p.PublicAccess = to.Ptr(armstorage.PublicAccessNone)
		}
		if *p.PublicAccess != armstorage.PublicAccessNone && !deref(acc.Properties.AllowBlobPublicAccess) {
			errResp.SetError(armError(http.StatusConflict, "PublicAccessNotPermitted", "Public access is not permitted on this storage account."))
			return
		}
		now := time.Now().UTC()
		bc.ID, bc.Name, bc.Type, bc.Etag = to.Ptr(id), to.Ptr(name), to.Ptr(containerType), to.Ptr(`"0x8DC`+strings.ToUpper(newUUID()[:10])+`"`)
		p.LastModifiedTime, p.Deleted, p.HasLegalHold, p.HasImmutabilityPolicy = &now, to.Ptr(false), to.Ptr(false), to.Ptr(false)
		p.LeaseState, p.LeaseStatus = to.Ptr(armstorage.LeaseStateAvailable), to.Ptr(armstorage.LeaseStatusUnlocked)
		a.put(id, clone(bc))
		resp.SetResponse(http.StatusCreated, armstorage.BlobContainersClientCreateResponse{BlobContainer: bc}, nil)
		return
	}
	c.Get = func(_ context.Context, group, account, name string, _ *armstorage.BlobContainersClientGetOptions) (resp azfake.Responder[armstorage.BlobContainersClientGetResponse], errResp azfake.ErrorResponder) {
		storageMu.Lock()
		defer storageMu.Unlock()
		if _, err := a.containerParent(group, account); err != nil {
			errResp.SetError(err)
			return
		}
		bc, ok := lookup[armstorage.BlobContainer](a, ContainerID(group, account, name))
		if !ok {
			errResp.SetError(armError(http.StatusNotFound, "ContainerNotFound", "The specified container does not exist."))
			return
		}
		resp.SetResponse(http.StatusOK, armstorage.BlobContainersClientGetResponse{BlobContainer: bc}, nil)
		return
	}
}

// createAccount creates storage account name in group as Azure does, or
// returns Azure's refusal. The caller holds storageMu.
func (a *Azure) createAccount(group, name string, p armstorage.AccountCreateParameters) (armstorage.Account, error) {
	if err := a.groupMissing(group); err != nil {
		return armstorage.Account{}, err
	}
	if !accountName.MatchString(name) {
		return armstorage.Account{}, armError(http.StatusBadRequest, "AccountNameInvalid",
			"%s is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.", name)
	}
	id := StorageAccountID(group, name)
	switch holder := a.accountHolder(name); {
	case holder == "":
	case strings.EqualFold(holder, id):
		// Azure takes a create of an existing account as an update of
		// what it names; the model does not.
		return armstorage.Account{}, notModelled("creating the storage account %s that exists (Azure updates it)", id)
	default:
		return armstorage.Account{}, armError(http.StatusConflict, "StorageAccountAlreadyTaken",
			"The storage account named %s is already taken.", name)
	}
	switch {
	case deref(p.Location) == "":
		return armstorage.Account{}, armError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.")
	case p.SKU == nil || p.SKU.Name == nil:
		return armstorage.Account{}, armError(http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'sku' not found in JSON.'")
	case !slices.Contains(armstorage.PossibleSKUNameValues(), *p.SKU.Name):
		return armstorage.Account{}, armError(http.StatusBadRequest, "InvalidRequestPropertyValue", "The value '%s' is not accepted for the property 'sku.name'.", *p.SKU.Name)
	case p.Kind == nil:
		return armstorage.Account{}, armError(http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'kind' not found in JSON.'")
	case !slices.Contains(armstorage.PossibleKindValues(), *p.Kind):
		return armstorage.Account{}, armError(http.StatusBadRequest, "InvalidRequestPropertyValue", "The value '%s' is not accepted for the property 'kind'.", *p.Kind)
	case p.ExtendedLocation != nil || p.Identity != nil || p.Placement != nil || p.Zones != nil:
		return armstorage.Account{}, notModelled("a storage account with an extended location, identity, placement or zones")
	}
	props := &armstorage.AccountPropertiesCreateParameters{}
	if p.Properties != nil {
		props = p.Properties
		if extra := setFields(props, "supportsHttpsTrafficOnly", "minimumTlsVersion", "allowBlobPublicAccess", "accessTier"); len(extra) > 0 {
			return armstorage.Account{}, notModelled("storage account properties %s", strings.Join(extra, ", "))
		}
	}
	if props.MinimumTLSVersion != nil && !slices.Contains(armstorage.PossibleMinimumTLSVersionValues(), *props.MinimumTLSVersion) {
		return armstorage.Account{}, armError(http.StatusBadRequest, "InvalidValuesForRequestParameters", "Values for request parameters are invalid: minimumTlsVersion.")
	}
	region := normRegion(*p.Location)
	now := time.Now().UTC()
	tier := armstorage.SKUTierStandard
	if strings.HasPrefix(string(*p.SKU.Name), "Premium") {
		tier = armstorage.SKUTierPremium
	}
	acc := armstorage.Account{
		ID: to.Ptr(id), Name: to.Ptr(name), Type: to.Ptr(accountType), Location: to.Ptr(region),
		Kind: p.Kind, SKU: &armstorage.SKU{Name: p.SKU.Name, Tier: to.Ptr(tier)}, Tags: clone(p.Tags),
		Properties: &armstorage.AccountProperties{
			ProvisioningState: to.Ptr(armstorage.ProvisioningStateSucceeded),
			CreationTime:      &now,
			PrimaryLocation:   to.Ptr(region),
			StatusOfPrimary:   to.Ptr(armstorage.AccountStatusAvailable),
			PrimaryEndpoints: &armstorage.Endpoints{
				Blob: to.Ptr("https://" + name + ".blob.core.windows.net/"), Queue: to.Ptr("https://" + name + ".queue.core.windows.net/"),
				Table: to.Ptr("https://" + name + ".table.core.windows.net/"), File: to.Ptr("https://" + name + ".file.core.windows.net/"),
			},
			// Azure's defaults for what the request leaves out: HTTPS
			// only, TLS 1.0 (as the API documents), no public blob
			// access.
			EnableHTTPSTrafficOnly: orDefault(props.EnableHTTPSTrafficOnly, true),
			MinimumTLSVersion:      orDefault(props.MinimumTLSVersion, armstorage.MinimumTLSVersionTLS10),
			AllowBlobPublicAccess:  orDefault(props.AllowBlobPublicAccess, false),
			AccessTier:             props.AccessTier,
		},
	}
	if acc.Properties.AccessTier == nil && *p.Kind == armstorage.KindStorageV2 {
		acc.Properties.AccessTier = to.Ptr(armstorage.AccessTierHot)
	}
	a.put(id, clone(acc))
	return acc, nil
}

// account returns storage account name of group, or the 404 Azure
// answers.
func (a *Azure) account(group, name string) (armstorage.Account, error) {
	if err := a.groupMissing(group); err != nil {
		return armstorage.Account{}, err
	}
	acc, ok := lookup[armstorage.Account](a, StorageAccountID(group, name))
	if !ok {
		return armstorage.Account{}, armError(http.StatusNotFound, "ResourceNotFound",
			"The Resource '%s/%s' under resource group '%s' was not found.", accountType, name, group)
	}
	return acc, nil
}

// containerParent returns the account a container operation names, or
// the 404 Azure answers when it (or its group) is missing.
func (a *Azure) containerParent(group, account string) (armstorage.Account, error) {
	if err := a.groupMissing(group); err != nil {
		return armstorage.Account{}, err
	}
	acc, ok := lookup[armstorage.Account](a, StorageAccountID(group, account))
	if !ok {
		return armstorage.Account{}, armError(http.StatusNotFound, "ParentResourceNotFound",
			"Can not perform requested operation on nested resource. Parent resource '%s' not found.", account)
	}
	return acc, nil
}

// setFields returns the JSON fields v sets besides those allowed: what a
// request asks of the model beyond what it models.
func setFields(v any, allowed ...string) []string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	var extra []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	return extra
}

// orDefault is p, or a pointer to def when p is nil.
func orDefault[T any](p *T, def T) *T {
	if p == nil {
		return &def
	}
	return p
}
