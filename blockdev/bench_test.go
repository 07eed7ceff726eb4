package blockdev_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/encfs/encfs/blockdev"
)

// BenchmarkLoop measures the stack over a FileDevice with the loop device in direct-I/O mode
// and buffered, with fio: sequential 1 MiB writes with a final fsync, and random 4 KiB direct
// writes and reads at queue depth 16 (reads of the file the writes laid out). Each iteration
// is one fio run; the metrics are fio's.
func BenchmarkLoop(b *testing.B) {
	if _, err := exec.LookPath("fio"); err != nil {
		b.Skip("fio is not installed")
	}
	for _, mode := range []string{"direct", "buffered"} {
		b.Run(mode, func(b *testing.B) {
			blockdev.SetBufferedLoop(mode == "buffered")
			defer blockdev.SetBufferedLoop(false)
			for _, job := range []struct{ name, args string }{
				{"seqwrite", "--rw=write --bs=1M --size=512M --end_fsync=1"},
				{"randwrite4k", "--rw=randwrite --bs=4k --size=256M --direct=1 --ioengine=libaio --iodepth=16 --time_based --runtime=5"},
				{"randread4k", "--rw=randread --bs=4k --size=256M --direct=1 --ioengine=libaio --iodepth=16 --time_based --runtime=5"},
			} {
				b.Run(job.name, func(b *testing.B) { benchFio(b, job.args) })
			}
		})
	}
}

func benchFio(b *testing.B, args string) {
	requireLoop(b)
	ctx := context.Background()
	dev, err := blockdev.CreateFileDevice(b.TempDir()+"/dev.img", 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	if err := blockdev.Mkfs(ctx, dev, ""); err != nil {
		b.Fatal(err)
	}
	m, err := blockdev.Mount(ctx, dev, b.TempDir(), blockdev.Options{Log: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Unmount(ctx)
	b.Logf("direct I/O: %v", m.DirectIO)
	var bw, iops float64
	for b.Loop() {
		cmd := exec.Command("sh", "-c", "fio --name=b --output-format=json --filename="+m.Mountpoint+"/f "+args)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("fio: %v\n%s", err, out)
		}
		var res struct {
			Jobs []struct {
				Read, Write struct {
					BW   float64 `json:"bw_bytes"`
					IOPS float64 `json:"iops"`
				}
			} `json:"jobs"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) == 0 {
			b.Fatalf("fio output: %v\n%s", err, out)
		}
		j := res.Jobs[0]
		bw, iops = j.Write.BW+j.Read.BW, j.Write.IOPS+j.Read.IOPS
	}
	b.ReportMetric(bw/1e6, "MB/s")
	b.ReportMetric(iops, "IOPS")
}
