package diskimage

import (
	"encoding/json"
	"fmt"
)

// Manifest describes a stored disk image: the seed's
// image-bucket-resource.json (spec/disk-image.md §4). The machine-image
// stage and people reading a run's artifacts use it to find the VHD and to
// tell which commit and which ISO it was built from, so it is written only
// for an image that was stored completely.
type Manifest struct {
	Build  ManifestBuild  `json:"build"`
	Image  ManifestImage  `json:"image"`
	Source ManifestSource `json:"source"`
}

// ManifestBuild says when and from what the image was built.
type ManifestBuild struct {
	// Date (yyyy-mm-dd) and Time (hh:mm:ss) are UTC, split as the seed
	// split them.
	Date     string `json:"date"`
	Time     string `json:"time"`
	Revision string `json:"revision"`
	// RunURL links the CI run. Build leaves it empty: only the CLI knows
	// which run it is part of.
	RunURL string `json:"runUrl,omitempty"`
}

// ManifestImage says where the VHD is and what it holds.
type ManifestImage struct {
	Platform string `json:"platform"`
	// Container is the storage container (Azure) or directory (local)
	// holding the image.
	Container string `json:"container"`
	// Key is the image's name in the container (BlobName).
	Key string `json:"key"`
	// Size is the VHD's size in bytes, footer included.
	Size int64 `json:"size"`
	// Fingerprint is what a re-run compares to decide to skip the build.
	Fingerprint string `json:"fingerprint"`
}

// ManifestSource names the installation ISO the image came from.
type ManifestSource struct {
	Platform string `json:"platform,omitempty"`
	Bucket   string `json:"bucket,omitempty"`
	// Key is the ISO's blob key, or its URL or local path when it is not
	// in a bucket.
	Key string `json:"key"`
}

// JSON renders the manifest indented, as it is published as a file people
// read.
func (m Manifest) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding disk image manifest: %w", err)
	}
	return append(b, '\n'), nil
}
