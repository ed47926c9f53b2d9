package diskimage

import (
	"fmt"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/config"
)

// ImageSlug is the seed's name of a disk image's contents:
// <os>-<edition>-<language>-<architecture>[-gpu], lower case without spaces
// ("windows10-professional-en-us-x86-64"), the form target disks name as
// their source.
func ImageSlug(im *config.Image) string {
	clean := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }
	slug := strings.Join([]string{clean(im.OS), clean(im.Edition), clean(im.Language), clean(im.Architecture)}, "-")
	if im.GPU {
		slug += "-gpu"
	}
	return slug
}

// BlobName is where a disk image is stored, by the seed's rule:
// vhd/<yyyy-mm-dd>/<sha7>-<platform>-<slug>-fixed.vhd. The commit comes
// first so that images built from one revision sort together.
func BlobName(im *config.Image, platform, revision string, built time.Time) (string, error) {
	if len(revision) < 7 {
		return "", fmt.Errorf("blob name: revision %q is shorter than 7 characters", revision)
	}
	return fmt.Sprintf("vhd/%s/%s-%s-%s-fixed.vhd", built.UTC().Format("2006-01-02"), revision[:7], platform, ImageSlug(im)), nil
}
