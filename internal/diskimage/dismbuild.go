package diskimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cib-project/cib/internal/vhd"
)

// Names of the dism builder's own steps (dismSteps); StepVHD, the check of
// the VHD the script wrote, follows them.
const (
	StepDismScript = "dism-script"
	StepDismRun    = "dism-run"
)

// Files of the dism builder in the work directory.
const (
	dismScriptName  = "build-disk.ps1"
	dismCleanupName = "cleanup-disk.ps1"
	dismVHDName     = "disk.vhd"
	dismTempName    = "dism-temp"
)

// dismCleanupTimeout bounds the cleanup script run after a cancelled build.
const dismCleanupTimeout = 2 * time.Minute

// dismSteps are the dism builder's steps (spec/disk-image.md §3, on a
// Windows runner): write the script DismScript generates into the work
// directory, run it through PowerShell (diskpart, dism /Apply-Image, the
// payload tree copied onto the volume, dism /Add-Driver, bcdboot, reg),
// and check that what it wrote is a fixed VHD of image.size GiB, which the
// store step then stores. Everything the script writes, the VHD and its
// scratch files included, is under the work directory.
func (b *build) dismSteps() []buildStep {
	in, k := b.in, b.in.Key
	script := filepath.Join(b.work, dismScriptName)
	cleanup := filepath.Join(b.work, dismCleanupName)
	vhdPath := filepath.Join(b.work, dismVHDName)
	inputs := func() DismInputs {
		return DismInputs{
			Key: k, Selected: b.sel, WIMPath: b.wimPath, Index: b.image.Index,
			PayloadDir: b.payload.Dir, TempDir: filepath.Join(b.work, dismTempName), VHDPath: vhdPath,
		}
	}
	return []buildStep{
		{name: StepDismScript, run: func(ctx context.Context) error {
			di := inputs()
			s, err := DismScript(di)
			if err != nil {
				return err
			}
			c, err := DismCleanupScript(di)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(di.TempDir, 0o755); err != nil {
				return err
			}
			if err := writePowerShell(script, s); err != nil {
				return err
			}
			return writePowerShell(cleanup, c)
		}},
		{name: StepDismRun, run: func(ctx context.Context) error {
			logLine := func(l string) { b.logf("dism: %s", l) }
			err := in.Tools.runPowerShell(ctx, script, b.work, logLine)
			if err != nil && ctx.Err() != nil {
				// Killed midway, the script's finally block did not run:
				// undo what it may have left attached or loaded, or the
				// work directory could not be removed.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dismCleanupTimeout)
				defer cancel()
				if cerr := in.Tools.runPowerShell(cctx, cleanup, b.work, logLine); cerr != nil {
					b.logf("disk image: warning: cleaning up after the cancelled script: %v", cerr)
				}
			}
			if err != nil {
				return err
			}
			// The image is on the disk now; the WIM can be several GiB.
			return os.Remove(b.wimPath)
		}},
		{name: StepVHD, run: func(ctx context.Context) error {
			want := int64(k.Image.Size) << 30
			_, size, err := vhd.ReadFixed(vhdPath)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return fmt.Errorf("the dism script succeeded but wrote no VHD at %s", vhdPath)
			case err != nil:
				return fmt.Errorf("the dism script did not write a fixed VHD: %w", err)
			case size != want:
				return fmt.Errorf("the dism script's VHD %s has a virtual size of %d bytes, want %d (image.size %d GiB)", vhdPath, size, want, k.Image.Size)
			}
			b.vhdPath, b.size = vhdPath, size+vhd.FooterSize
			return nil
		}},
	}
}

// writePowerShell writes a generated script with a UTF-8 byte order mark:
// Windows PowerShell 5.1 reads a script without one in the ANSI code
// page, which would change every value that is not ASCII.
func writePowerShell(path, script string) error {
	return os.WriteFile(path, append([]byte("\uFEFF"), script...), 0o644)
}

// powerShell resolves the PowerShell that runs the dism builder's script:
// Windows PowerShell, on every Windows runner, or pwsh elsewhere.
func (t Tools) powerShell() string {
	if t.PowerShell != "" {
		return t.PowerShell
	}
	if runtime.GOOS == "windows" {
		return "powershell.exe"
	}
	return "pwsh"
}

// runPowerShell runs the script file at script in dir, giving each line
// it prints (stdout and stderr) to line as it comes. When ctx is done the
// process is killed (on Windows with its whole tree: dism and diskpart run
// as its children).
func (t Tools) runPowerShell(ctx context.Context, script, dir string, line func(string)) error {
	exe := t.powerShell()
	doing := "running " + script
	cmd := exec.CommandContext(ctx, exe, "-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", script)
	cmd.Dir = dir
	if runtime.GOOS == "windows" {
		cmd.Cancel = func() error {
			if err := exec.Command("taskkill.exe", "/T", "/F", "/PID", strconv.Itoa(cmd.Process.Pid)).Run(); err != nil {
				return cmd.Process.Kill()
			}
			return nil
		}
	}
	cmd.WaitDelay = 10 * time.Second
	out := &lineWriter{line: line, keep: 20}
	// One writer for both: exec then writes to it from one goroutine.
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.flush()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Errorf("%s: PowerShell (%s) is not installed: the dism builder runs on Windows runners", doing, exe)
	}
	return toolError(ctx, exe, doing, []byte(strings.Join(out.tail, "\n")), err,
		"the lines above end its output; the script is generated by cib (internal/diskimage/dism.go) and runs diskpart, dism, robocopy, bcdboot and reg, which need an administrator")
}

// lineWriter splits what a program prints into lines for the log and
// keeps the last ones for an error message. A line redrawn with a carriage
// return (dism's progress bar) is logged at most every few seconds, and in
// its last state when it ends.
type lineWriter struct {
	line    func(string)
	keep    int
	tail    []string
	buf     []byte
	pending string    // a redrawn line not logged yet
	drawn   time.Time // when a redrawn line was last logged
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	rest := w.buf
	for {
		i := bytes.IndexAny(rest, "\r\n")
		if i < 0 || (rest[i] == '\r' && i+1 == len(rest)) {
			// No end yet, or a \r that may be the start of \r\n.
			break
		}
		seg := string(rest[:i])
		switch {
		case rest[i] == '\n':
			w.newline(seg)
			rest = rest[i+1:]
		case rest[i+1] == '\n':
			w.newline(seg)
			rest = rest[i+2:]
		default:
			w.redraw(seg)
			rest = rest[i+1:]
		}
	}
	w.buf = w.buf[:copy(w.buf, rest)]
	// A line that never ends is given as it is rather than held forever.
	if len(w.buf) > 64<<10 {
		w.newline(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) newline(s string) {
	if strings.TrimSpace(s) == "" {
		// "progress\r" then "\n" ends a redrawn line: log its last state.
		w.flushPending()
		return
	}
	// The redrawn line's last state, when it ends with \r\n, is this one.
	w.pending = ""
	w.emit(s)
}

func (w *lineWriter) redraw(s string) {
	if strings.TrimSpace(s) == "" {
		return
	}
	if time.Since(w.drawn) >= 5*time.Second {
		w.drawn = time.Now()
		w.pending = ""
		w.emit(s)
		return
	}
	w.pending = s
}

func (w *lineWriter) flushPending() {
	if w.pending != "" {
		w.drawn = time.Now()
		w.emit(w.pending)
		w.pending = ""
	}
}

func (w *lineWriter) emit(s string) {
	s = strings.TrimRightFunc(strings.ToValidUTF8(s, "\uFFFD"), unicode.IsSpace)
	w.line(s)
	w.tail = append(w.tail, s)
	if len(w.tail) > w.keep {
		w.tail = w.tail[len(w.tail)-w.keep:]
	}
}

// flush gives what is left after the program ended.
func (w *lineWriter) flush() {
	s := strings.TrimSuffix(string(w.buf), "\r")
	w.buf = nil
	w.newline(s)
}
