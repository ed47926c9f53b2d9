package machineimage

import (
	"path"
	"strconv"
	"time"

	"github.com/cib-project/cib/internal/config"
)

// The tags every resource a run creates carries, so that purge can find
// what a killed run left behind.
const (
	TagManaged = "cib:managed"
	TagRun     = "cib:run"
	TagKey     = "cib:key"
	TagExpires = "cib:expires"
	// NoExpiry is cib:expires on a finished image: the run's product is
	// kept (retention is purge's business), not collected as a leftover.
	NoExpiry = "never"
)

// resourceTags are the cib:* tags of a resource created at now.
func resourceTags(runURL, key string, now time.Time, ttl time.Duration) map[string]string {
	return map[string]string{
		TagManaged: "true",
		TagRun:     runURL,
		TagKey:     key,
		TagExpires: now.Add(ttl).UTC().Format(time.RFC3339),
	}
}

// merge returns a new map with the maps' entries; later maps win.
func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// targetTags are the target's tag list as a map.
func targetTags(t *config.Target) map[string]string {
	out := map[string]string{}
	for _, tg := range t.Tag {
		out[tg.Name] = tg.Value
	}
	return out
}

// ImageTagInputs are the provenance of an image, for its tags (§4).
type ImageTagInputs struct {
	Key            *config.Key
	Target         *config.Target
	DiskRevision   string
	DiskCommitTime time.Time
	DiskTask       string
	Revision       string
	CommitTime     time.Time
	RunURL         string
	ResourceID     string
	Fingerprint    string
}

// ImageTags are the tags of a machine image (spec §4): its provenance,
// then every target tag (target tags win over provenance). Empty values
// are left out. The cib:* tags are set apart, by the pipeline.
func ImageTags(in ImageTagInputs) map[string]string {
	t := map[string]string{
		"diskImageCommitSha":    in.DiskRevision,
		"diskImageTask":         in.DiskTask,
		"machineImageCommitSha": in.Revision,
		"machineImageTask":      in.RunURL,
		"imageKey":              in.Key.Name,
		"resourceId":            in.ResourceID,
		"fingerprint":           in.Fingerprint,
	}
	if !in.DiskCommitTime.IsZero() {
		t["diskImageCommitTime"] = in.DiskCommitTime.UTC().Format(time.RFC3339)
	}
	if !in.CommitTime.IsZero() {
		t["machineImageCommitTime"] = in.CommitTime.UTC().Format(time.RFC3339)
	}
	if im := in.Key.Image; im != nil {
		t["os"], t["edition"], t["language"], t["architecture"] = im.OS, im.Edition, im.Language, im.Architecture
	}
	if iso := in.Key.ISO; iso != nil {
		if iso.WimIndex > 0 {
			t["isoIndex"] = strconv.Itoa(iso.WimIndex)
		}
		for _, p := range []string{iso.Source.Key, iso.Source.Path, iso.Source.URL} {
			if p != "" {
				t["isoName"] = path.Base(p)
				break
			}
		}
	}
	if s := in.Key.Source; s != nil {
		t["sourceImage"] = s.Publisher + "/" + s.Offer + "/" + s.SKU + "/" + s.Version
	}
	for k, v := range t {
		if v == "" {
			delete(t, k)
		}
	}
	return merge(t, targetTags(in.Target))
}
