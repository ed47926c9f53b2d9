package cli

func runRecord(args []string, env Env) int { return ExitUsage }
