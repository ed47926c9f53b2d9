package diskimagetest

import (
	"os/exec"
	"strings"
	"testing"
)

// output runs a program and returns its standard output.
func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

func TestRegfWriterReadByHivex(t *testing.T) {
	hivexget := RequireTool(t, "libhivex-bin", "hivexget")
	dir := t.TempDir()
	sys := dir + "/SYSTEM"
	WriteHive(t, sys, TestSystemHive())
	for _, c := range []struct{ key, value, want string }{
		{`\Select`, "Current", "1"},
		{`\ControlSet001\Control\Terminal Server`, "fDenyTSConnections", "1"},
		{`\ControlSet001\Services\WinDefend`, "Start", "2"},
		{`\ControlSet001\Services\Sense`, "Start", "3"},
		{`\controlset001\services\windefend`, "Type", "16"},
	} {
		if got := strings.TrimSpace(output(t, hivexget, sys, c.key, c.value)); got != c.want {
			t.Errorf("hivexget %s %s = %q, want %q", c.key, c.value, got, c.want)
		}
	}
	user := dir + "/NTUSER.DAT"
	WriteHive(t, user, &RegKey{Name: "ROOT"})
	if got := output(t, hivexget, user, `\`); strings.TrimSpace(got) != "" {
		t.Errorf("empty hive's root lists values: %q", got)
	}
}
