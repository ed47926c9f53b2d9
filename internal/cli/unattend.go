package cli

import (
	"fmt"

	"github.com/cib-project/cib/internal/unattend"
)

const unattendHelp = `
Print the unattend.xml answer file of an ISO-based image key, as the
disk-image stage writes it into the image: the key's settings, and the
shared commands, packages and product key that apply to it on the platform.
The Administrator password is random; it is printed as REDACTED unless
--with-password is given (and then masked in GitHub Actions logs).`

func runUnattend(args []string, env Env) int {
	fs := newFlags(env, "unattend", "KEY [--platform azure]", unattendHelp)
	dir := fs.String("config", "config", "the configuration `folder`")
	platform := fs.String("platform", "azure", "the `platform` the image is built for")
	repo := fs.String("repo", ".", "the git `repository` whose HEAD names the build (hostname cib-sha)")
	rev := fs.String("rev", "HEAD", "the `revision` the image is built from")
	withPassword := fs.Bool("with-password", false, "print the real password instead of REDACTED")
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		if code, ok := parse(fs, args, env); !ok {
			return code
		}
		fmt.Fprintln(env.Stderr, "cib unattend: name the image key: cib unattend KEY (cib unattend --help)")
		return ExitUsage
	}
	name := args[0]
	if code, ok := parse(fs, args[1:], env); !ok {
		return code
	}
	cfg, code := loadConfig(env, "unattend", *dir)
	if cfg == nil {
		return code
	}
	k := cfg.Key(name)
	if k == nil {
		fmt.Fprintf(env.Stderr, "cib unattend: %q is not an image key of %s\n", name, *dir)
		return ExitUsage
	}
	hash, _, err := commitAt(env.path(*repo), *rev)
	if err != nil {
		return fail(env, "unattend", err)
	}
	doc, err := unattend.Render(cfg, k, unattend.Options{Platform: *platform, Revision: hash, Password: unattend.RandomPassword{}})
	if err != nil {
		return fail(env, "unattend", err)
	}
	if *withPassword {
		env.runner().Mask(doc.Password)
		_, err = env.Stdout.Write(doc.XML)
	} else {
		_, err = env.Stdout.Write(doc.Redacted)
	}
	if err != nil {
		return fail(env, "unattend", err)
	}
	return ExitOK
}
