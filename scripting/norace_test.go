//go:build !race

package scripting

import (
	"runtime"
	"syscall"
	"testing"
)

const raceEnabled = false

// limitMemory caps the test process's address space (on Linux), so that a
// guard that fails ends this process, not the machine.
func limitMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		return
	}
	lim := &syscall.Rlimit{Cur: 8 << 30, Max: 8 << 30}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
		t.Logf("no memory limit: %v", err)
	}
}
