package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Names of the files in the configuration folder that are not image keys.
const (
	SettingsFile         = "settings.yaml"
	DriversFile          = "drivers.yaml"
	PackagesFile         = "packages.yaml"
	UnattendCommandsFile = "unattend-commands.yaml"
	DisabledServicesFile = "disable-windows-service.yaml"
	ProductKeysFile      = "product-keys.yaml"
)

// reserved are the file names that are never image keys.
var reserved = map[string]bool{
	SettingsFile: true, DriversFile: true, PackagesFile: true,
	UnattendCommandsFile: true, DisabledServicesFile: true, ProductKeysFile: true,
}

var keyName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Load reads and validates the configuration in dir. On any problem it
// returns Problems listing every one, each with file:line:column.
func Load(dir string) (*Config, error) {
	return LoadFS(os.DirFS(dir), dir)
}

// LoadFS reads and validates the configuration at the root of fsys; dir is
// only used to name files in messages.
func LoadFS(fsys fs.FS, dir string) (*Config, error) {
	l := &loader{fsys: fsys, dir: dir, decoders: map[string]*decoder{}}
	cfg := l.load()
	if len(l.problems) > 0 {
		return cfg, l.problems.sorted()
	}
	return cfg, nil
}

type loader struct {
	fsys     fs.FS
	dir      string
	decoders map[string]*decoder
	problems Problems
}

func (l *loader) name(file string) string { return path.Join(l.dir, file) }

// errorf records a problem at the position of path in file (or its closest
// recorded parent).
func (l *loader) errorf(file, at, format string, args ...any) {
	p := Problem{File: l.name(file), Path: at, Message: fmt.Sprintf(format, args...)}
	if d, ok := l.decoders[file]; ok {
		pos := d.at(at)
		p.Line, p.Column = pos.Line, pos.Column
	}
	l.problems = append(l.problems, p)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads one YAML file into out. A missing file is reported only when
// required.
func (l *loader) parse(file string, out any, required bool) bool {
	data, err := fs.ReadFile(l.fsys, file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !required {
			return false
		}
		l.problems = append(l.problems, Problem{File: l.name(file), Message: fmt.Sprintf("cannot read: %v", err)})
		return false
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		p := Problem{File: l.name(file), Message: "not valid YAML: " + err.Error() + "; fix the syntax (indentation, quotes, colons)"}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = "not valid YAML: " + m[2] + "; fix the syntax (indentation, quotes, colons)"
		}
		l.problems = append(l.problems, p)
		return false
	}
	d := newDecoder(l.name(file))
	d.pos[""] = Pos{1, 1}
	l.decoders[file] = d
	if resolve(&root) == nil {
		l.errorf(file, "", "the file is empty")
		return false
	}
	d.decode(&root, reflectValue(out), "")
	l.problems = append(l.problems, d.problems...)
	return true
}

func (l *loader) load() *Config {
	cfg := &Config{Dir: l.dir}
	entries, err := fs.ReadDir(l.fsys, ".")
	if err != nil {
		l.problems = append(l.problems, Problem{File: l.dir, Message: fmt.Sprintf("cannot read the configuration folder: %v", err)})
		return cfg
	}
	l.parse(SettingsFile, &cfg.Settings, true)
	l.parse(DriversFile, &cfg.Shared.Drivers, true)
	l.parse(PackagesFile, &cfg.Shared.Packages, true)
	l.parse(UnattendCommandsFile, &cfg.Shared.UnattendCommands, true)
	l.parse(DisabledServicesFile, &cfg.Shared.DisabledServices, true)
	l.parse(ProductKeysFile, &cfg.Shared.ProductKeys, true)
	for _, e := range entries {
		name := e.Name()
		ext := path.Ext(name)
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") || reserved[name] {
			continue
		}
		if ext == ".yml" && reserved[strings.TrimSuffix(name, ext)+".yaml"] {
			l.problems = append(l.problems, Problem{File: l.name(name), Message: fmt.Sprintf("shared files end in .yaml; rename it to %s", strings.TrimSuffix(name, ext)+".yaml")})
			continue
		}
		k := &Key{Name: strings.TrimSuffix(name, ext), File: l.name(name)}
		if !keyName.MatchString(k.Name) {
			l.problems = append(l.problems, Problem{File: l.name(name), Message: fmt.Sprintf("image key %q must be lower-case letters, digits, '.', '-' or '_' (commit instructions match keys in lower case); rename the file", k.Name)})
			continue
		}
		if l.parse(name, k, true) {
			cfg.Keys = append(cfg.Keys, k)
		}
	}
	sort.Slice(cfg.Keys, func(i, j int) bool { return cfg.Keys[i].Name < cfg.Keys[j].Name })
	seen := map[string]string{}
	for _, k := range cfg.Keys {
		if other, dup := seen[k.Name]; dup {
			l.problems = append(l.problems, Problem{File: k.File, Message: fmt.Sprintf("image key %q is also defined by %s; keep one", k.Name, other)})
		}
		seen[k.Name] = k.File
	}
	l.validate(cfg)
	return cfg
}
