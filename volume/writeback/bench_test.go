package writeback_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/volume"
	"github.com/encfs/encfs/volume/writeback"
)

// BenchmarkPageBlob writes to a page blob in Azurite, through the write-back cache (default
// options: 64 MiB, 8 Put Pages of up to 4 MiB in flight) and directly (one Put Page per write,
// one at a time), with sequential 1 MiB writes and random 4 KiB writes. The time includes the
// final Flush.
//
// Azurite is one Node process on the same machine, answering in about a millisecond: it
// measures the CPU cost of each path, where parallel writes gain little. The "+10ms" runs add
// 10 ms to every Put Page (a fault proxy holds each one), closer to Azure's latency, where the
// cache's parallel writes matter.
//
//	go test -run - -bench PageBlob -benchtime 400x ./volume/writeback/
func BenchmarkPageBlob(b *testing.B) {
	const size = 128 << 20
	ctx := context.Background()
	az := azuritetest.Start(b, azuritetest.Config{})
	az.CreateContainer(b, "bench", false)
	px := faultproxy.New(b, az.Endpoint)
	px.Match(func(r *http.Request) bool { return r.Method == http.MethodPut && r.URL.Query().Get("comp") == "page" })
	px.SetStall(10 * time.Millisecond)
	o := azure.PageBlobOptions{Options: azure.Options{ConnectionString: az.ConnectionString}}
	u := az.BlobURL("bench", "bench.vol")
	if err := azure.CreatePageBlob(ctx, u, size, o); err != nil {
		b.Fatal(err)
	}
	warmUp(b, u, o) // Node compiles its hot paths during the first thousand requests
	for _, latency := range []bool{false, true} {
		for _, bc := range []struct {
			name      string
			n         int
			random    bool
			writeback bool
		}{
			{"seq1M/writeback", 1 << 20, false, true},
			{"seq1M/direct", 1 << 20, false, false},
			{"rand4K/writeback", 4096, true, true},
			{"rand4K/direct", 4096, true, false},
		} {
			name, target := bc.name, u
			if latency {
				name, target = bc.name+"+10ms", px.Rewrite(u)
			}
			b.Run(name, func(b *testing.B) {
				if latency {
					px.Always(faultproxy.Stall)
					defer px.Always(faultproxy.None)
				}
				pb, err := azure.OpenPageBlob(ctx, target, o)
				if err != nil {
					b.Fatal(err)
				}
				var s volume.Store = pb
				if bc.writeback {
					s = writeback.New(pb, writeback.Options{})
				}
				defer s.Close()
				p := pattern(7, bc.n)
				r := rand.New(rand.NewPCG(1, 1))
				b.SetBytes(int64(bc.n))
				b.ResetTimer()
				for i := range b.N {
					off := int64(i*bc.n) % size
					if bc.random {
						off = int64(r.IntN(size/bc.n)) * int64(bc.n)
					}
					if err := s.WriteAt(ctx, p, off); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			})
		}
	}
}

func warmUp(b *testing.B, u string, o azure.PageBlobOptions) {
	ctx := context.Background()
	pb, err := azure.OpenPageBlob(ctx, u, o)
	if err != nil {
		b.Fatal(err)
	}
	defer pb.Close()
	p := pattern(1, 4096)
	for i := range 1000 {
		if err := pb.WriteAt(ctx, p, int64(i)*4096); err != nil {
			b.Fatal(err)
		}
	}
}
