package cli

import "fmt"

// runPrepare is `cib prepare`. (Being built.)
func runPrepare(args []string, env Env) int {
	fmt.Fprintln(env.Stderr, "cib prepare: not built yet")
	return ExitFailure
}
