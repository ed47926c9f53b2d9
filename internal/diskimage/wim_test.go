package diskimage

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

func TestImages(t *testing.T) {
	tools := testTools(t)
	f := diskimagetest.BuildFixture(t)
	images, err := tools.Images(context.Background(), f.WIM)
	require.NoError(t, err)
	require.Len(t, images, 2)
	assert.Equal(t, 1, images[0].Index)
	assert.Equal(t, "Windows 10 Pro", images[0].Name)
	assert.Equal(t, "Professional", images[0].EditionID)
	assert.Equal(t, 2, images[1].Index)
	assert.Equal(t, "Windows 10 Enterprise", images[1].Name)
	assert.Equal(t, "Enterprise", images[1].EditionID)
	for _, im := range images {
		assert.Positive(t, im.TotalBytes, "image %d", im.Index)
	}
}

func TestImagesNotAWIM(t *testing.T) {
	tools := testTools(t)
	path := filepath.Join(t.TempDir(), "install.wim")
	diskimagetest.WriteFile(t, path, "not a wim")
	_, err := tools.Images(context.Background(), path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reading images of "+path)
}

func TestParseInfo(t *testing.T) {
	out := `WIM Information:
----------------
Path:           x.wim
Image Count:    1
Boot Index:     0

Available Images:
-----------------
Index:                  3
Name:                   Windows: Special Edition
Description:            A: B
Total Bytes:            12345
Edition ID:             ServerDatacenter
`
	images, err := parseInfo(out)
	require.NoError(t, err)
	assert.Equal(t, []WIMImage{{Index: 3, Name: "Windows: Special Edition", Description: "A: B", EditionID: "ServerDatacenter", TotalBytes: 12345}}, images)
}

var testImages = []WIMImage{
	{Index: 1, Name: "Windows 10 Pro", EditionID: "Professional"},
	{Index: 2, Name: "Windows 10 Enterprise", EditionID: "Enterprise"},
	{Index: 3, Name: "Windows 10 Education Pro"},
}

func TestChooseImage(t *testing.T) {
	two := testImages[:2]
	for _, tc := range []struct {
		name     string
		images   []WIMImage
		wimindex int
		edition  string
		want     int
	}{
		{"index wins over edition", two, 2, "Pro", 2},
		{"edition suffix", two, 0, "Pro", 1},
		{"edition case-insensitive", two, 0, "enterprise", 2},
		{"edition with full name", two, 0, "Windows 10 Enterprise", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := ChooseImage(tc.images, tc.wimindex, tc.edition)
			require.NoError(t, err)
			assert.Equal(t, tc.want, im.Index)
		})
	}
}

func TestChooseImageErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wimindex int
		edition  string
		contains []string
	}{
		{"missing index", 7, "Pro", []string{"iso.wimindex 7 does not exist", `1: "Windows 10 Pro"`, `2: "Windows 10 Enterprise"`}},
		{"negative index", -1, "Pro", []string{"iso.wimindex -1 is not a valid image index"}},
		{"no match", 0, "Home", []string{`no image name ends with edition "Home"`, "set iso.wimindex", `3: "Windows 10 Education Pro"`}},
		{"two matches", 0, "pro", []string{`2 image names end with edition "pro"`, "set iso.wimindex", `1: "Windows 10 Pro"`, `3: "Windows 10 Education Pro"`}},
		{"no edition", 0, " ", []string{"no iso.wimindex and no image.edition", "set iso.wimindex"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ChooseImage(testImages, tc.wimindex, tc.edition)
			require.Error(t, err)
			for _, s := range tc.contains {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}
