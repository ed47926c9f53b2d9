package machineimage

import (
	"reflect"
	"testing"
	"time"

	"github.com/cib-project/cib/internal/config"
)

func TestResourceTags(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.FixedZone("x", 3600))
	got := resourceTags("https://github.com/o/r/actions/runs/1", "win10-64", now, 12*time.Hour)
	want := map[string]string{
		"cib:managed": "true", "cib:run": "https://github.com/o/r/actions/runs/1",
		"cib:key": "win10-64", "cib:expires": "2026-11-27T21:00:00Z",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resourceTags = %v, want %v", got, want)
	}
}

func TestImageTagsTargetTagsWin(t *testing.T) {
	k := &config.Key{
		Name:  "win10-64",
		Image: &config.Image{OS: "Windows 10", Edition: "Professional", Language: "en-US", Architecture: "x86-64"},
		ISO:   &config.ISO{Source: config.Location{Key: "iso/en_windows_10.iso"}, WimIndex: 5},
	}
	tg := &config.Target{Tag: []config.Tag{{Name: "deploymentId", Value: "39b8154"}, {Name: "os", Value: "overridden"}}}
	got := ImageTags(ImageTagInputs{
		Key: k, Target: tg, DiskRevision: "d1sk", DiskCommitTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		DiskTask: "run/1", Revision: "m4ch", CommitTime: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC),
		RunURL: "run/2", ResourceID: "abc", Fingerprint: "sha256:f",
	})
	want := map[string]string{
		"diskImageCommitTime": "2026-01-02T03:04:05Z", "diskImageCommitSha": "d1sk", "diskImageTask": "run/1",
		"machineImageCommitTime": "2026-01-03T00:00:00Z", "machineImageCommitSha": "m4ch", "machineImageTask": "run/2",
		"imageKey": "win10-64", "resourceId": "abc", "fingerprint": "sha256:f",
		"os": "overridden", "edition": "Professional", "language": "en-US", "architecture": "x86-64",
		"isoIndex": "5", "isoName": "en_windows_10.iso", "deploymentId": "39b8154",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ImageTags =\n%v\nwant\n%v", got, want)
	}
}

func TestMergeLaterWins(t *testing.T) {
	got := merge(map[string]string{"a": "1", "b": "1"}, nil, map[string]string{"b": "2"})
	if !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("merge = %v", got)
	}
}
