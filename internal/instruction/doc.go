// Package instruction reads the instructions a commit message (or a manual
// workflow_dispatch run) gives to the plan: flags such as pool-deploy and
// include/exclude filters on keys, pools, regions and environments.
//
// The rules are those of the spec (decision.md §1 and §7). Real commit history
// is sloppy, so the parser is deliberately forgiving in what it accepts (any
// case, no space after the colon, CRLF or CR line endings, .yaml suffixes on
// keys) and loud about what it cannot accept: every problem becomes a
// Diagnostic that names the line, quotes it and says what to do. Parsing never
// fails; the caller decides what an error means (the plan refuses to run).
//
// Near misses - lines that look like an instruction but are not one, such as
// "include key: x", "include-pools: x", "pool-deploy: x" or "no ci" - are
// warnings with a "did you mean" hint, because a silently ignored instruction
// is the worst outcome: the build runs, but not the one the author asked for.
// Ordinary prose ("support pool deployment only commits", "- include available
// tag info in wm description") is left alone.
//
// Manual runs go through FromDispatch, which writes the inputs as instruction
// lines and parses them with the same code, so the two sources can never
// disagree. A dispatch filter input is an include list unless its value starts
// with "exclude:" or "include:" (any case), which sets the mode explicitly:
// keys = "exclude: win7-32" excludes win7-32. Line breaks inside an input value
// are read as commas.
//
// The package is pure: no I/O, no global state that changes.
package instruction
