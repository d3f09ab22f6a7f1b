package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"juice/cmd/juice/launch"
)

// blkBenchEmptyExec is the --blk guest's command with nothing to move:
// the same programs, no data.
var blkBenchEmptyExec = "dd if=/dev/vda of=/dev/null bs=1048576 count=0 && dd if=/dev/zero of=/dev/vda bs=1048576 count=0 && sync"

// blkPerMiB prints juice's exits and virtio-blk notifications per MiB
// the --blk guest moved (mib read plus mib written): runs are juice's
// console lines of the good runs under juice; the run with the median
// exit count is compared with one more boot of vm whose command moves
// nothing (the boot's own share).
func blkPerMiB(ctx context.Context, c jeosBenchConfig, dir string, vm launch.VMSpec, runs [][]string, mib int, stdout io.Writer) {
	var counts []juiceCounts
	for _, texts := range runs {
		if jc, err := parseJuiceCounts(texts, []string{vm.Name}, "blk"); err == nil {
			counts = append(counts, jc)
		}
	}
	if len(counts) == 0 {
		return
	}
	sort.Slice(counts, func(i, j int) bool { return counts[i].exits < counts[j].exits })
	med := counts[len(counts)/2]
	vm.Cmdline = strings.Replace(vm.Cmdline, blkBenchExec, blkBenchEmptyExec, 1)
	b, err := launch.BuildBundle([]launch.VMSpec{vm})
	d := filepath.Join(dir, "blk-empty")
	if err == nil {
		err = os.MkdirAll(d, 0o755)
	}
	var path string
	if err == nil {
		path, err = launch.WriteBundle(d, b)
	}
	if err != nil {
		fmt.Fprintf(stdout, "  per MiB under juice: FAILED: %v\n", err)
		return
	}
	m, err := launch.Start(ctx, launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem, Initrd: path, Timeout: c.timeout})
	if err != nil {
		fmt.Fprintf(stdout, "  per MiB under juice: FAILED: %v\n", err)
		return
	}
	res := m.Wait()
	base, err := parseJuiceCounts(m.Console.Texts(), []string{vm.Name}, "blk")
	if err != nil || !res.Exited() || res.Status != 0 {
		fmt.Fprintf(stdout, "  per MiB under juice: the run moving nothing FAILED: %v %v\n", res, err)
		return
	}
	fmt.Fprintf(stdout, "  per MiB moved under juice (%d MiB read + %d written; the median run less one moving nothing): %s\n",
		mib, mib, med.perMiB(base, float64(2*mib)))
}
