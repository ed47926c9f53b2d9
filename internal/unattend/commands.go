package unattend

import (
	"fmt"
	"slices"

	"github.com/cib-project/cib/internal/config"
)

// Defaults of an unattend item, as the seed applied them.
const (
	DefaultPass          = "oobeSystem"
	DefaultSynchronicity = "synchronous"
	DefaultPriority      = 500
)

// Command is one command of the answer file, with its defaults applied and
// its position in its list.
type Command struct {
	// Order is the 1-based position in its (pass, synchronicity) list,
	// written as the element's Order.
	Order         int
	Description   string
	Command       string
	Pass          string
	Synchronicity string
	Priority      int
	// Reboot is WillReboot (Always, Never, OnRequest); empty when the item
	// does not say, so that Windows' own default applies.
	Reboot string
}

// places are the (pass, synchronicity) pairs the document has an element
// for; it mirrors config's validation so that Render refuses what
// validation would, even on a configuration built in code.
var places = map[string][]string{
	"specialize": {"synchronous"},
	"oobeSystem": {"synchronous", "asynchronous"},
	"auditUser":  {"synchronous", "asynchronous"},
}

// allCommands lists the selected commands in selection order: the shared
// unattend commands first, then each package's items, with defaults
// applied. Order is left zero.
func allCommands(sel config.Selected) []Command {
	var out []Command
	addItem := func(u config.UnattendItem) {
		c := Command{
			Description:   u.Description,
			Command:       u.Command,
			Pass:          u.Pass,
			Synchronicity: u.Synchronicity,
			Priority:      DefaultPriority,
			Reboot:        u.Reboot,
		}
		if c.Pass == "" {
			c.Pass = DefaultPass
		}
		if c.Synchronicity == "" {
			c.Synchronicity = DefaultSynchronicity
		}
		if u.Priority != nil {
			c.Priority = *u.Priority
		}
		out = append(out, c)
	}
	for _, u := range sel.UnattendCommands {
		addItem(u.UnattendItem)
	}
	for _, p := range sel.Packages {
		for _, u := range p.Unattend {
			addItem(u)
		}
	}
	return out
}

// checkPlaces refuses a command the document has no element for: dropping
// it silently would build an image that quietly lacks a step.
func checkPlaces(cmds []Command) error {
	for _, c := range cmds {
		if !slices.Contains(places[c.Pass], c.Synchronicity) {
			return fmt.Errorf("unattend command %q: unattend.xml has no place for %s commands in the %s pass; "+
				"set its pass to specialize (synchronous only), oobeSystem or auditUser", c.Description, c.Synchronicity, c.Pass)
		}
	}
	return nil
}

// list keeps the commands of one pass and synchronicity, sorted by priority
// and numbered 1..n. The sort is stable because equal priorities must keep
// file order: the seed's configuration relies on it.
func list(cmds []Command, pass, synchronicity string) []Command {
	var out []Command
	for _, c := range cmds {
		if c.Pass == pass && c.Synchronicity == synchronicity {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Command) int { return a.Priority - b.Priority })
	for i := range out {
		out[i].Order = i + 1
	}
	return out
}

// Commands returns the ordered commands of one pass and synchronicity for
// key k on platform, as Render writes them. Pass and synchronicity are
// compared exactly (case matters, as in the configuration).
func Commands(cfg *config.Config, k *config.Key, platform, pass, synchronicity string) []Command {
	if k.Image == nil {
		return nil
	}
	return list(allCommands(cfg.Select(k, platform)), pass, synchronicity)
}
