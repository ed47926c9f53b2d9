package cli

import "fmt"

// runComment is `cib comment`. (Being built.)
func runComment(args []string, env Env) int {
	fmt.Fprintln(env.Stderr, "cib comment: not built yet")
	return ExitFailure
}
