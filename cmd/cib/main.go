// Command cib builds Windows cloud images in GitHub Actions. See
// `cib help` and the README.
package main

import (
	"os"

	"github.com/cib-project/cib/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.System()))
}
