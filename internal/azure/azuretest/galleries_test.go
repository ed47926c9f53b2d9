package azuretest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuretest"
)

const grg = "rg-gallery"

func galleries(t *testing.T) (*azuretest.Azure, *armcompute.GalleriesClient, *armcompute.GalleryImagesClient) {
	t.Helper()
	a := azuretest.New()
	_, err := groupsClient(t, a).CreateOrUpdate(context.Background(), grg, armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil)
	require.NoError(t, err)
	f := computeClients(t, a)
	return a, f.NewGalleriesClient(), f.NewGalleryImagesClient()
}

func createGallery(c *armcompute.GalleriesClient, group, name string, g armcompute.Gallery) (armcompute.Gallery, error) {
	p, err := c.BeginCreateOrUpdate(context.Background(), group, name, g, nil)
	if err != nil {
		return armcompute.Gallery{}, err
	}
	r, err := p.PollUntilDone(context.Background(), nil)
	return r.Gallery, err
}

func createDefinition(c *armcompute.GalleryImagesClient, group, gallery, name string, d armcompute.GalleryImage) (armcompute.GalleryImage, error) {
	p, err := c.BeginCreateOrUpdate(context.Background(), group, gallery, name, d, nil)
	if err != nil {
		return armcompute.GalleryImage{}, err
	}
	r, err := p.PollUntilDone(context.Background(), nil)
	return r.GalleryImage, err
}

func definition(region, hv, sku string) armcompute.GalleryImage {
	d := armcompute.GalleryImage{
		Location: to.Ptr(region),
		Properties: &armcompute.GalleryImageProperties{
			OSType: to.Ptr(armcompute.OperatingSystemTypesWindows), OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
			HyperVGeneration: to.Ptr(armcompute.HyperVGeneration(hv)),
			Identifier:       &armcompute.GalleryImageIdentifier{Publisher: to.Ptr("cib"), Offer: to.Ptr("g"), SKU: to.Ptr(sku)},
		},
	}
	if hv == "" {
		d.Properties.HyperVGeneration = nil
	}
	return d
}

func TestGalleriesAndDefinitions(t *testing.T) {
	ctx := context.Background()
	_, galleries, images := galleries(t)

	g, err := createGallery(galleries, grg, "cib_images.v1", armcompute.Gallery{Location: to.Ptr("East US"),
		Properties: &armcompute.GalleryProperties{Description: to.Ptr("images")}})
	require.NoError(t, err)
	assert.Equal(t, azuretest.GalleryID(grg, "cib_images.v1"), *g.ID)
	assert.Equal(t, "eastus", *g.Location)
	assert.Equal(t, armcompute.GalleryProvisioningStateSucceeded, *g.Properties.ProvisioningState)
	got, err := galleries.Get(ctx, grg, "cib_images.v1", nil)
	require.NoError(t, err)
	assert.Equal(t, g, got.Gallery)

	d, err := createDefinition(images, grg, "cib_images.v1", "win10-64", definition("eastus", "V2", "win10-64"))
	require.NoError(t, err)
	assert.Equal(t, azuretest.ImageDefinitionID(grg, "cib_images.v1", "win10-64"), *d.ID)
	gd, err := images.Get(ctx, grg, "cib_images.v1", "win10-64", nil)
	require.NoError(t, err)
	assert.Equal(t, d, gd.GalleryImage)

	// The generation defaults to V1, as Azure's does.
	d, err = createDefinition(images, grg, "cib_images.v1", "win11-64", definition("eastus", "", "win11-64"))
	require.NoError(t, err)
	assert.Equal(t, armcompute.HyperVGenerationV1, *d.Properties.HyperVGeneration)

	// The same definition again is an update that changes nothing; a
	// description may change.
	same := definition("eastus", "V2", "win10-64")
	same.Properties.Description = to.Ptr("now described")
	_, err = createDefinition(images, grg, "cib_images.v1", "win10-64", same)
	require.NoError(t, err)

	// What Azure cannot change in a definition, it refuses to.
	for what, change := range map[string]func(*armcompute.GalleryImage){
		"generation": func(d *armcompute.GalleryImage) {
			d.Properties.HyperVGeneration = to.Ptr(armcompute.HyperVGenerationV1)
		},
		"os type": func(d *armcompute.GalleryImage) { d.Properties.OSType = to.Ptr(armcompute.OperatingSystemTypesLinux) },
		"os state": func(d *armcompute.GalleryImage) {
			d.Properties.OSState = to.Ptr(armcompute.OperatingSystemStateTypesSpecialized)
		},
		"identifier": func(d *armcompute.GalleryImage) { d.Properties.Identifier.SKU = to.Ptr("other") },
	} {
		d := definition("eastus", "V2", "win10-64")
		change(&d)
		_, err := createDefinition(images, grg, "cib_images.v1", "win10-64", d)
		code(t, err, http.StatusConflict, "PropertyChangeNotAllowed")
		t.Log(what, err)
	}
	_, err = createDefinition(images, grg, "cib_images.v1", "win10-64", definition("westus", "V2", "win10-64"))
	code(t, err, http.StatusConflict, "InvalidResourceLocation")
	_, err = createGallery(galleries, grg, "cib_images.v1", armcompute.Gallery{Location: to.Ptr("westus")})
	code(t, err, http.StatusConflict, "InvalidResourceLocation")
	// Identifiers are unique in a gallery.
	_, err = createDefinition(images, grg, "cib_images.v1", "copy", definition("eastus", "V2", "win10-64"))
	code(t, err, http.StatusConflict, "Conflict")
}

func TestGalleryRefusals(t *testing.T) {
	ctx := context.Background()
	_, galleries, images := galleries(t)
	for _, name := range []string{"with-hyphen", "_start", "end.", "a b"} {
		_, err := createGallery(galleries, grg, name, armcompute.Gallery{Location: to.Ptr("eastus")})
		code(t, err, http.StatusBadRequest, "InvalidParameter")
	}
	_, err := createGallery(galleries, "rg-missing", "g", armcompute.Gallery{Location: to.Ptr("eastus")})
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	_, err = createGallery(galleries, grg, "g", armcompute.Gallery{})
	code(t, err, http.StatusBadRequest, "LocationRequired")
	_, err = createGallery(galleries, grg, "g", armcompute.Gallery{Location: to.Ptr("eastus"),
		Properties: &armcompute.GalleryProperties{SoftDeletePolicy: &armcompute.SoftDeletePolicy{IsSoftDeleteEnabled: to.Ptr(true)}}})
	code(t, err, http.StatusNotImplemented, "NotImplementedInModel")
	_, err = galleries.Get(ctx, grg, "g", nil)
	code(t, err, http.StatusNotFound, "ResourceNotFound")

	_, err = createDefinition(images, grg, "g", "win10-64", definition("eastus", "V2", "win10-64"))
	code(t, err, http.StatusNotFound, "ParentResourceNotFound")
	_, err = images.Get(ctx, grg, "g", "win10-64", nil)
	code(t, err, http.StatusNotFound, "ParentResourceNotFound")

	_, err = createGallery(galleries, grg, "g", armcompute.Gallery{Location: to.Ptr("eastus")})
	require.NoError(t, err)
	_, err = images.Get(ctx, grg, "g", "win10-64", nil)
	code(t, err, http.StatusNotFound, "NotFound")
	_, err = createDefinition(images, grg, "g", "bad name", definition("eastus", "V2", "x"))
	code(t, err, http.StatusBadRequest, "InvalidParameter")
	noIdentifier := definition("eastus", "V2", "x")
	noIdentifier.Properties.Identifier.Offer = nil
	_, err = createDefinition(images, grg, "g", "x", noIdentifier)
	code(t, err, http.StatusBadRequest, "InvalidParameter")
	noOS := definition("eastus", "V2", "x")
	noOS.Properties.OSType = nil
	_, err = createDefinition(images, grg, "g", "x", noOS)
	code(t, err, http.StatusBadRequest, "InvalidParameter")
	badGen := definition("eastus", "V3", "x")
	_, err = createDefinition(images, grg, "g", "x", badGen)
	code(t, err, http.StatusBadRequest, "InvalidParameter")
	withPlan := definition("eastus", "V2", "x")
	withPlan.Properties.PurchasePlan = &armcompute.ImagePurchasePlan{Name: to.Ptr("p")}
	_, err = createDefinition(images, grg, "g", "x", withPlan)
	code(t, err, http.StatusNotImplemented, "NotImplementedInModel")
}

// AddGalleryImage stores what the model's own operations read.
func TestAddGalleryImageIsReadable(t *testing.T) {
	ctx := context.Background()
	a, galleries, images := galleries(t)
	a.AddGalleryImage(grg, "shared", "win10-64", "eastus", "V2")
	_, err := galleries.Get(ctx, grg, "shared", nil)
	require.NoError(t, err)
	d, err := images.Get(ctx, grg, "shared", "win10-64", nil)
	require.NoError(t, err)
	assert.Equal(t, armcompute.HyperVGenerationV2, *d.Properties.HyperVGeneration)
}
