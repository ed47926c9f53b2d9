package actions_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

// TestBuildDiskImageActionSkipsAStoredImage runs actions/build-disk-image
// as a runner would, for a matrix entry whose image is already in the
// local store: the action maps its inputs, the build says so in its
// outputs, no artifact is uploaded, the build is recorded on the records
// branch, and the token never reaches the log unmasked.
func TestBuildDiskImageActionSkipsAStoredImage(t *testing.T) {
	requireTools(t, "git", "bash")
	root := repoRoot(t)
	msg := "build win10-64\n\ninclude keys: win10-64\n"
	ws := newWorkspace(t, root, msg, "")

	cfg, err := config.Load(filepath.Join(ws.dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Key("win10-64")
	fp := cfg.DiskInputs(k, "azure").Fingerprint()
	store := t.TempDir()
	name := "vhd/" + time.Now().UTC().Format("2006-01-02") + "/" + ws.sha[:7] + "-azure-windows10-professional-en-us-x86-64-fixed.vhd"
	image := filepath.Join(store, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(image), 0o755); err != nil {
		t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]string{"fingerprint": fp})
	for file, data := range map[string][]byte{image: []byte("a stored image"), image + ".json": md} {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	run := runNamedAction(t, root, "build-disk-image", ws, msg, map[string]string{
		"key": "win10-64", "environment": "staging", "platform": "azure", "store": "local",
		"fingerprint": fp, "store-dir": store,
	})
	if run.failed {
		t.Fatal("the action failed")
	}
	want := map[string]string{"image-name": name, "skipped": "true", "fingerprint": fp, "image-location": store + "/" + name}
	for k, v := range want {
		if run.outputs[k] != v {
			t.Errorf("output %s = %q, want %q", k, run.outputs[k], v)
		}
	}
	upload := run.step(t, "upload-artifact", func(s actionStep) bool { return strings.HasPrefix(s.Uses, "actions/upload-artifact@") })
	if upload.status != "skipped" || len(run.artifacts) != 0 {
		t.Errorf("upload step: %s, artifacts %v; want skipped, none, for a skipped build", upload.status, run.artifacts)
	}
	if !strings.Contains(run.summary, "already stored with this fingerprint") {
		t.Errorf("the step summary does not say the image is already there:\n%s", run.summary)
	}
	origin := filepath.Join(filepath.Dir(ws.dir), "origin.git")
	rec := git(t, origin, "", "show", "cib-records:records/staging/azure/disk/win10-64.json")
	if !strings.Contains(rec, `"fingerprint": "`+fp+`"`) || !strings.Contains(rec, `"revision": "`+ws.sha+`"`) {
		t.Errorf("the record does not hold the fingerprint and revision:\n%s", rec)
	}
	for _, s := range run.steps {
		if strings.Contains(strings.ReplaceAll(s.log, "::add-mask::"+testToken, ""), testToken) {
			t.Errorf("step %q shows the token unmasked:\n%s", s.title, s.log)
		}
	}
	if b, err := os.ReadFile(image); err != nil || string(b) != "a stored image" {
		t.Errorf("the stored image was touched: %q, %v", b, err)
	}
}

// TestBuildDiskImageActionBuilds runs actions/build-disk-image as a runner
// would for a whole build from a test ISO (diskimagetest) into a local
// store: the outputs name the image, the manifest and the redacted
// unattend.xml are uploaded as the artifact, the step summary shows the
// steps, and the build is recorded.
func TestBuildDiskImageActionBuilds(t *testing.T) {
	requireTools(t, "git", "bash")
	diskimagetest.RequireBuildTools(t)
	f := diskimagetest.BuildPipelineFixture(t)
	root := repoRoot(t)
	msg := "build win10-64\n\ninclude keys: win10-64\n"
	ws := newWorkspaceWith(t, root, msg, "", func(dir string) {
		diskimagetest.OfflineConfig(t, dir)
		// The ISO is a local file here, not the bucket object.
		key := filepath.Join(dir, "win10-64.yaml")
		data, err := os.ReadFile(key)
		if err != nil {
			t.Fatal(err)
		}
		source := regexp.MustCompile(`(?s)\niso:\n    source:\n.*?\n    wimindex:`)
		if !source.Match(data) {
			t.Fatal("win10-64.yaml has no iso.source to replace")
		}
		data = source.ReplaceAll(data, []byte("\niso:\n    source:\n        platform: local\n        path: "+f.ISO+"\n    wimindex:"))
		if err := os.WriteFile(key, data, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	store := t.TempDir()
	run := runNamedAction(t, root, "build-disk-image", ws, msg, map[string]string{
		"key": "win10-64", "environment": "staging", "store": "local", "store-dir": store,
	})
	if run.failed {
		t.Fatal("the action failed")
	}
	name := run.outputs["image-name"]
	if !strings.HasSuffix(name, "/"+ws.sha[:7]+"-azure-windows10-professional-en-us-x86-64-fixed.vhd") || run.outputs["skipped"] != "false" {
		t.Errorf("outputs image-name %q, skipped %q: want the image built for %s", name, run.outputs["skipped"], ws.sha[:7])
	}
	if _, err := os.Stat(filepath.Join(store, filepath.FromSlash(name))); err != nil {
		t.Errorf("the image is not in the store: %v", err)
	}
	artifact := run.artifacts["disk-image-staging-azure-win10-64"]
	if strings.Join(artifact, ",") != "image-bucket-resource.json,unattend.xml" {
		t.Errorf("artifact files %v, want the manifest and unattend.xml", artifact)
	}
	if xml, err := os.ReadFile(filepath.Join(runnerTemp, "cib-artifacts", "win10-64", "unattend.xml")); err != nil || !strings.Contains(string(xml), "REDACTED") {
		t.Errorf("the uploaded unattend.xml is not the redacted one (%v)", err)
	}
	for _, want := range []string{"### Disk image win10-64", "| size | 1.00 GiB |", "| apply-image | ", "| placed | path | files | bytes |"} {
		if !strings.Contains(run.summary, want) {
			t.Errorf("the step summary lacks %q:\n%s", want, run.summary)
		}
	}
	origin := filepath.Join(filepath.Dir(ws.dir), "origin.git")
	if rec := git(t, origin, "", "show", "cib-records:records/staging/azure/disk/win10-64.json"); !strings.Contains(rec, name) {
		t.Errorf("the record does not name the image:\n%s", rec)
	}
}
