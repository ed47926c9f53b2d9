package diskimage

import (
	"testing"

	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

// testTools returns Tools pointing at the programs found on PATH.
func testTools(t *testing.T) Tools {
	t.Helper()
	return Tools{
		SevenZip: diskimagetest.RequireTool(t, "p7zip-full (or 7zip)", "7z", "7zz"),
		Wimlib:   diskimagetest.RequireTool(t, "wimtools", "wimlib-imagex"),
	}
}
