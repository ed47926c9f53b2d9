package actions_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cib-project/cib/internal/config"
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
