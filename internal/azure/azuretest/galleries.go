package azuretest

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
)

func init() { installers = append(installers, (*Azure).installGalleries) }

// galleryMu makes each gallery operation's read-check-write atomic.
var galleryMu sync.Mutex

var (
	// A gallery name is letters and digits, with dots and underscores
	// inside, up to 80 characters.
	galleryName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._]{0,78}[A-Za-z0-9])?$`)
	// An image definition's name may have hyphens too.
	definitionName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,78}[A-Za-z0-9])?$`)
)

// GalleryID is the ID of Compute Gallery name in group.
func GalleryID(group, name string) string {
	return ResourceID(group, "Microsoft.Compute", "galleries", name)
}

// ImageDefinitionID is the ID of image definition name of gallery in
// group.
func ImageDefinitionID(group, gallery, name string) string {
	return GalleryID(group, gallery) + "/images/" + name
}

// installGalleries models Compute Galleries and their image definitions:
// create (or update), read. Names are checked as Azure checks them, a
// definition needs its gallery, and what Azure does not let change in a
// definition (OS type and state, Hyper-V generation, identifier) it
// refuses to change. AddGalleryImage (compute.go) stores the same values.
func (a *Azure) installGalleries() {
	g := &a.compute.GalleriesServer
	g.Get = func(_ context.Context, group, name string, o *armcompute.GalleriesClientGetOptions) (resp azfake.Responder[armcompute.GalleriesClientGetResponse], errResp azfake.ErrorResponder) {
		galleryMu.Lock()
		defer galleryMu.Unlock()
		if o != nil && (o.Expand != nil || o.Select != nil) {
			errResp.SetError(notModelled("a gallery read with $expand or $select"))
			return
		}
		v, ok := lookup[armcompute.Gallery](a, GalleryID(group, name))
		if !ok {
			errResp.SetError(a.missing(group, "Microsoft.Compute/galleries", name))
			return
		}
		resp.SetResponse(http.StatusOK, armcompute.GalleriesClientGetResponse{Gallery: v}, nil)
		return
	}
	g.BeginCreateOrUpdate = func(_ context.Context, group, name string, v armcompute.Gallery, _ *armcompute.GalleriesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.GalleriesClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		galleryMu.Lock()
		defer galleryMu.Unlock()
		if err := a.groupMissing(group); err != nil {
			errResp.SetError(err)
			return
		}
		if !galleryName.MatchString(name) {
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter",
				"The gallery name '%s' is not valid: it can contain only alphanumeric characters, with underscores and periods in the middle, up to 80 characters.", name))
			return
		}
		id := GalleryID(group, name)
		old, exists := lookup[armcompute.Gallery](a, id)
		v = clone(v)
		if err := checkLocation(v.Location, old.Location, exists, id); err != nil {
			errResp.SetError(err)
			return
		}
		if v.Identity != nil {
			errResp.SetError(notModelled("a gallery with a managed identity"))
			return
		}
		if v.Properties == nil {
			v.Properties = &armcompute.GalleryProperties{}
		}
		if extra := setFields(v.Properties, "description"); len(extra) > 0 {
			errResp.SetError(notModelled("gallery properties %s", strings.Join(extra, ", ")))
			return
		}
		v.ID, v.Name, v.Type = to.Ptr(id), to.Ptr(name), to.Ptr("Microsoft.Compute/galleries")
		v.Location = to.Ptr(normRegion(*v.Location))
		v.Properties.ProvisioningState = to.Ptr(armcompute.GalleryProvisioningStateSucceeded)
		v.Properties.Identifier = &armcompute.GalleryIdentifier{UniqueName: to.Ptr(Subscription[len(Subscription)-12:] + "-" + strings.ToUpper(name))}
		a.put(id, clone(v))
		resp.AddNonTerminalResponse(putStatus(exists), nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.GalleriesClientCreateOrUpdateResponse{Gallery: v}, nil)
		return
	}

	d := &a.compute.GalleryImagesServer
	d.Get = func(_ context.Context, group, gallery, name string, _ *armcompute.GalleryImagesClientGetOptions) (resp azfake.Responder[armcompute.GalleryImagesClientGetResponse], errResp azfake.ErrorResponder) {
		galleryMu.Lock()
		defer galleryMu.Unlock()
		if err := a.galleryParent(group, gallery); err != nil {
			errResp.SetError(err)
			return
		}
		v, ok := lookup[armcompute.GalleryImage](a, ImageDefinitionID(group, gallery, name))
		if !ok {
			errResp.SetError(armError(http.StatusNotFound, "NotFound", "The Resource 'Microsoft.Compute/galleries/%s/images/%s' under resource group '%s' was not found.", gallery, name, group))
			return
		}
		resp.SetResponse(http.StatusOK, armcompute.GalleryImagesClientGetResponse{GalleryImage: v}, nil)
		return
	}
	d.BeginCreateOrUpdate = func(_ context.Context, group, gallery, name string, v armcompute.GalleryImage, _ *armcompute.GalleryImagesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.GalleryImagesClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		galleryMu.Lock()
		defer galleryMu.Unlock()
		if err := a.galleryParent(group, gallery); err != nil {
			errResp.SetError(err)
			return
		}
		if !definitionName.MatchString(name) {
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter",
				"The gallery image name '%s' is not valid: it can contain only alphanumeric characters, with underscores, hyphens and periods in the middle, up to 80 characters.", name))
			return
		}
		id := ImageDefinitionID(group, gallery, name)
		old, exists := lookup[armcompute.GalleryImage](a, id)
		v = clone(v)
		if err := checkLocation(v.Location, old.Location, exists, id); err != nil {
			errResp.SetError(err)
			return
		}
		p := v.Properties
		if p == nil {
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Required parameter 'galleryImage.properties' is missing (null)."))
			return
		}
		if extra := setFields(p, "osType", "osState", "hyperVGeneration", "identifier", "description"); len(extra) > 0 {
			errResp.SetError(notModelled("gallery image properties %s", strings.Join(extra, ", ")))
			return
		}
		switch {
		case p.OSType == nil || !slices.Contains(armcompute.PossibleOperatingSystemTypesValues(), *p.OSType):
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Required parameter 'osType' is missing or not valid."))
			return
		case p.OSState == nil || !slices.Contains(armcompute.PossibleOperatingSystemStateTypesValues(), *p.OSState):
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Required parameter 'osState' is missing or not valid."))
			return
		case p.Identifier == nil || deref(p.Identifier.Publisher) == "" || deref(p.Identifier.Offer) == "" || deref(p.Identifier.SKU) == "":
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "Required parameter 'identifier' (publisher, offer and sku) is missing."))
			return
		case p.HyperVGeneration != nil && !slices.Contains(armcompute.PossibleHyperVGenerationValues(), *p.HyperVGeneration):
			errResp.SetError(armError(http.StatusBadRequest, "InvalidParameter", "The value '%s' of 'hyperVGeneration' is not valid.", *p.HyperVGeneration))
			return
		}
		if p.HyperVGeneration == nil {
			p.HyperVGeneration = to.Ptr(armcompute.HyperVGenerationV1)
		}
		if exists {
			if field := changedDefinition(old.Properties, p); field != "" {
				errResp.SetError(armError(http.StatusConflict, "PropertyChangeNotAllowed", "Changing property '%s' is not allowed.", field))
				return
			}
		}
		if conflict := a.identifierTaken(group, gallery, name, p.Identifier); conflict != "" {
			errResp.SetError(armError(http.StatusConflict, "Conflict",
				"Gallery image '%s' has the same identifier (publisher, offer, sku) as gallery image '%s'.", name, conflict))
			return
		}
		v.ID, v.Name, v.Type = to.Ptr(id), to.Ptr(name), to.Ptr("Microsoft.Compute/galleries/images")
		v.Location = to.Ptr(normRegion(*v.Location))
		p.ProvisioningState = to.Ptr(armcompute.GalleryProvisioningStateSucceeded)
		a.put(id, clone(v))
		resp.AddNonTerminalResponse(putStatus(exists), nil)
		resp.SetTerminalResponse(http.StatusOK, armcompute.GalleryImagesClientCreateOrUpdateResponse{GalleryImage: v}, nil)
		return
	}
}

// galleryParent returns the 404 Azure answers an operation on a gallery's
// image definitions when the gallery (or its group) is missing.
func (a *Azure) galleryParent(group, gallery string) error {
	if err := a.groupMissing(group); err != nil {
		return err
	}
	if _, ok := a.get(GalleryID(group, gallery)); !ok {
		return armError(http.StatusNotFound, "ParentResourceNotFound",
			"Can not perform requested operation on nested resource. Parent resource '%s' not found.", gallery)
	}
	return nil
}

// checkLocation checks a create's location, and that an update keeps the
// resource's (Azure does not move resources).
func checkLocation(want, have *string, exists bool, id string) error {
	switch {
	case deref(want) == "":
		return armError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.")
	case exists && normRegion(*want) != normRegion(deref(have)):
		return armError(http.StatusConflict, "InvalidResourceLocation",
			"The resource '%s' already exists in location '%s'. A resource with the same name cannot be created in location '%s'.",
			id, deref(have), normRegion(*want))
	}
	return nil
}

// changedDefinition names the first unchangeable property of an image
// definition that want changes, or "".
func changedDefinition(have, want *armcompute.GalleryImageProperties) string {
	if have == nil {
		have = &armcompute.GalleryImageProperties{}
	}
	hv := deref(have.HyperVGeneration)
	if hv == "" {
		hv = armcompute.HyperVGenerationV1
	}
	id := func(i *armcompute.GalleryImageIdentifier) [3]string {
		if i == nil {
			return [3]string{}
		}
		return [3]string{strings.ToLower(deref(i.Publisher)), strings.ToLower(deref(i.Offer)), strings.ToLower(deref(i.SKU))}
	}
	switch {
	case deref(have.OSType) != deref(want.OSType):
		return "galleryImage.properties.osType"
	case deref(have.OSState) != deref(want.OSState):
		return "galleryImage.properties.osState"
	case hv != deref(want.HyperVGeneration):
		return "galleryImage.properties.hyperVGeneration"
	case id(have.Identifier) != id(want.Identifier):
		return "galleryImage.properties.identifier"
	}
	return ""
}

// identifierTaken returns the name of another definition of the gallery
// with identifier ident, or "": Azure wants them unique in a gallery.
func (a *Azure) identifierTaken(group, gallery, name string, ident *armcompute.GalleryImageIdentifier) string {
	for _, d := range stored[armcompute.GalleryImage](a, GalleryID(group, gallery)+"/images/") {
		if strings.EqualFold(deref(d.Name), name) || d.Properties == nil || d.Properties.Identifier == nil {
			continue
		}
		o := d.Properties.Identifier
		if strings.EqualFold(deref(o.Publisher), deref(ident.Publisher)) && strings.EqualFold(deref(o.Offer), deref(ident.Offer)) &&
			strings.EqualFold(deref(o.SKU), deref(ident.SKU)) {
			return deref(d.Name)
		}
	}
	return ""
}
