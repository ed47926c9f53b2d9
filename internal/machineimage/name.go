package machineimage

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cib-project/cib/internal/config"
)

// ImageName is the seed's name of a machine image:
// <group without rg->-<key>-<sha7>-<deploymentId 7>, where sha is the disk
// image's revision (for a marketplace key, the revision built) and
// deploymentId is the target's tag of that name, the bootstrap revision.
func ImageName(t *config.Target, key, revision string) (string, error) {
	if len(revision) < 7 {
		return "", fmt.Errorf("image name: revision %q is shorter than 7 characters", revision)
	}
	dep := TargetTag(t, "deploymentId")
	if len(dep) < 7 {
		return "", fmt.Errorf("image name: target %s needs a tag deploymentId of at least 7 characters (the bootstrap revision), found %q", t.Group, dep)
	}
	return fmt.Sprintf("%s-%s-%s-%s", strings.TrimPrefix(t.Group, "rg-"), key, revision[:7], dep[:7]), nil
}

// TargetTag is the value of the target's tag name, or "".
func TargetTag(t *config.Target, name string) string {
	for _, tg := range t.Tag {
		if tg.Name == name {
			return tg.Value
		}
	}
	return ""
}

// resourceID is the seed's per-run resource ID: the last 12 hex digits of
// a random UUID, or the last slug.length of them with hostname slug uuid.
// It names the run's VM (vm-<id>, or the hostname format with slug uuid),
// NIC, public IP and disks, so that two runs never collide.
func resourceID(r io.Reader, h *config.Hostname) (id, vmName string, err error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", "", fmt.Errorf("resource id: %w", err)
	}
	all := hex.EncodeToString(b[:])
	id = all[len(all)-12:]
	vmName = "vm-" + id
	if h != nil && h.Slug.Type == "uuid" && h.Format != "" {
		n := h.Slug.Length
		if n <= 0 || n > len(all) {
			n = 12
		}
		id = all[len(all)-n:]
		vmName = strings.ReplaceAll(h.Format, "{0}", id)
	}
	return id, vmName, nil
}

// versionName is a Compute Gallery image version for a build started at t:
// <year>.<MMDD>.<second of the day>, three integers that sort by time, as
// gallery versions must be.
func versionName(t time.Time) string {
	t = t.UTC()
	sec := t.Hour()*3600 + t.Minute()*60 + t.Second()
	return fmt.Sprintf("%d.%d%02d.%d", t.Year(), int(t.Month()), t.Day(), sec)
}

var randReader io.Reader = rand.Reader
