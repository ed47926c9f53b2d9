package cli

import "fmt"

// runVerify is `cib verify`. (Being built.)
func runVerify(args []string, env Env) int {
	fmt.Fprintln(env.Stderr, "cib verify: not built yet")
	return ExitFailure
}
