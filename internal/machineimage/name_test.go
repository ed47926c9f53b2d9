package machineimage

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/cib-project/cib/internal/config"
)

func TestImageName(t *testing.T) {
	target := func(group, dep string) *config.Target {
		tg := &config.Target{Group: group}
		if dep != "" {
			tg.Tag = []config.Tag{{Name: "workerType", Value: "x"}, {Name: "deploymentId", Value: dep}}
		}
		return tg
	}
	for _, c := range []struct {
		group, dep, key, rev, want, err string
	}{
		{"rg-central-us-gecko-t", "39b8154", "win10-64", "0123456789abcdef", "central-us-gecko-t-win10-64-0123456-39b8154", ""},
		{"rg-east-us-relops", "20d46de0ffee", "win2019", "abcdef0123", "east-us-relops-win2019-abcdef0-20d46de", ""},
		{"central", "39b8154", "k", "0123456", "central-k-0123456-39b8154", ""},
		{"rg-x", "", "k", "0123456", "", "deploymentId"},
		{"rg-x", "abc", "k", "0123456", "", "deploymentId"},
		{"rg-x", "39b8154", "k", "0123", "", "shorter than 7"},
	} {
		got, err := ImageName(target(c.group, c.dep), c.key, c.rev)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ImageName(%s, %q, %s) error = %v, want %q", c.group, c.dep, c.rev, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ImageName(%s, %q, %s) = %q, %v; want %q", c.group, c.dep, c.rev, got, err, c.want)
		}
	}
}

func TestResourceID(t *testing.T) {
	r := bytes.NewReader(bytes.Repeat([]byte{0xab}, 64))
	id, vm, err := resourceID(r, &config.Hostname{Format: "cib-{0}", Slug: config.Slug{Type: "disk-image-sha", Length: 7}})
	if err != nil || id != "abababababab" || vm != "vm-abababababab" {
		t.Errorf("default: %q %q %v", id, vm, err)
	}
	id, vm, err = resourceID(r, &config.Hostname{Format: "cib-{0}", Slug: config.Slug{Type: "uuid", Length: 8}})
	if err != nil || id != "abababab" || vm != "cib-abababab" {
		t.Errorf("uuid slug: %q %q %v", id, vm, err)
	}
	if _, _, err := resourceID(bytes.NewReader(nil), nil); err == nil {
		t.Error("no randomness: no error")
	}
}

func TestVersionName(t *testing.T) {
	if got := versionName(time.Date(2026, 11, 27, 23, 3, 32, 0, time.UTC)); got != "2026.1127.83012" {
		t.Errorf("versionName = %s", got)
	}
	if got := versionName(time.Date(2027, 1, 2, 0, 0, 5, 0, time.UTC)); got != "2027.102.5" {
		t.Errorf("versionName = %s", got)
	}
}
