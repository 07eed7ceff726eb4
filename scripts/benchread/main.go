// Command benchread is the measuring half of scripts/bench.sh: the parts a shell cannot time
// precisely. Every subcommand prints one line of key=value pairs on standard output.
//
//	benchread genbig FILE BYTES                 incompressible data, written fast
//	benchread gensmall DIR COUNT BYTES          COUNT files of BYTES in DIR/dNNN/fNNNNN (100 a dir)
//	benchread gentree DIR NDIRS NFILES BYTES    NDIRS directories of NFILES files of about BYTES
//	benchread list DIR OUT                      the regular files under DIR, relative, sorted
//	benchread seq FILE                          sequential read with 1 MiB buffers
//	benchread shuffle ROOT LIST                 parallel readers over LIST in shuffled order
//	benchread start [flags] -- CMD ARGS...      start a mount daemon, time it, leave it running
//	benchread download URL                      plain parallel azblob download (ranged GETs)
//	benchread freeport                          a free TCP port on 127.0.0.1
//	benchread container URL                     create a blob container (account key from the environment)
//	benchread plainvol [flags] FILE MOUNTPOINT  ext4 over a loop device over FILE served through
//	                                            FUSE with no cryptography (blockdev.FileDevice),
//	                                            the baseline of the volume benchmarks; until SIGTERM
//
// It is a benchmark tool, not part of encfs: it lives under scripts/ and is built by bench.sh.
package main

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

const bufSize = 1 << 20

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "genbig":
		err = genBig(args)
	case "gensmall":
		err = genSmall(args)
	case "gentree":
		err = genTree(args)
	case "list":
		err = list(args)
	case "seq":
		err = seq(args)
	case "shuffle":
		err = shuffle(args)
	case "start":
		err = start(args)
	case "download":
		err = download(args)
	case "freeport":
		err = freePort()
	case "plainvol":
		err = plainVol(args)
	case "container":
		err = mkContainer(args)
	case "rmblob":
		err = rmBlob(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchread:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchread genbig|gensmall|gentree|list|seq|shuffle|start|download|freeport|container|rmblob|plainvol ... (see the source)")
	os.Exit(2)
}

func atoi(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchread: %q is not a number\n", s)
		os.Exit(2)
	}
	return n
}

// stream is a fast source of incompressible bytes (AES-CTR under a random key).
func stream() cipher.Stream {
	var key [32]byte
	var iv [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		panic(err)
	}
	b, _ := aes.NewCipher(key[:])
	return cipher.NewCTR(b, iv[:])
}

func genBig(args []string) error {
	if len(args) != 2 {
		usage()
	}
	size := atoi(args[1])
	f, err := os.Create(args[0] + ".tmp")
	if err != nil {
		return err
	}
	s := stream()
	buf := make([]byte, 4<<20)
	start := time.Now()
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		clear(buf[:n])
		s.XORKeyStream(buf[:n], buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(args[0]+".tmp", args[0]); err != nil {
		return err
	}
	fmt.Printf("bytes=%d secs=%.3f\n", size, time.Since(start).Seconds())
	return nil
}

// writeFiles writes jobs files in parallel; name(i) gives the path of file i, size(i) its length.
func writeFiles(n int, name func(int) string, size func(int) int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stream()
			buf := make([]byte, 1<<20)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if size(i) > cap(buf) {
					buf = make([]byte, size(i))
				}
				b := buf[:size(i)]
				clear(b)
				s.XORKeyStream(b, b)
				p := name(i)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					if !errors.Is(err, fs.ErrNotExist) {
						errs <- err
						return
					}
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						errs <- err
						return
					}
					if err := os.WriteFile(p, b, 0o644); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func genSmall(args []string) error {
	if len(args) != 3 {
		usage()
	}
	dir, count, size := args[0], int(atoi(args[1])), int(atoi(args[2]))
	start := time.Now()
	err := writeFiles(count, func(i int) string {
		return filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
	}, func(int) int { return size })
	if err != nil {
		return err
	}
	fmt.Printf("files=%d secs=%.3f\n", count, time.Since(start).Seconds())
	return nil
}

func genTree(args []string) error {
	if len(args) != 4 {
		usage()
	}
	dir, ndirs, nfiles, size := args[0], int(atoi(args[1])), int(atoi(args[2])), int(atoi(args[3]))
	for d := 0; d < ndirs; d++ {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("dir%04d", d)), 0o755); err != nil {
			return err
		}
	}
	start := time.Now()
	err := writeFiles(ndirs*nfiles, func(i int) string {
		return filepath.Join(dir, fmt.Sprintf("dir%04d", i/nfiles), fmt.Sprintf("file%05d.txt", i%nfiles))
	}, func(i int) int { return size/2 + i%size }) // sizes from size/2 to 1.5*size, about size on average
	if err != nil {
		return err
	}
	fmt.Printf("files=%d secs=%.3f\n", ndirs*nfiles, time.Since(start).Seconds())
	return nil
}

func list(args []string) error {
	if len(args) != 2 {
		usage()
	}
	var names []string
	err := filepath.WalkDir(args[0], func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(args[0], p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	if err := os.WriteFile(args[1], []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("files=%d\n", len(names))
	return nil
}

// seq reads FILE from start to end with 1 MiB read(2) calls.
func seq(args []string) error {
	if len(args) != 1 {
		usage()
	}
	buf := make([]byte, bufSize)
	start := time.Now()
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var total int64
	var first time.Duration
	for {
		n, err := f.Read(buf)
		if total == 0 && n > 0 {
			first = time.Since(start)
		}
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Printf("bytes=%d secs=%.3f mbps=%.1f first_byte_ms=%.2f\n", total, el.Seconds(), float64(total)/1e6/el.Seconds(),
		float64(first.Microseconds())/1000)
	return nil
}

// shuffle reads every file of LIST (paths relative to ROOT) once, in an order shuffled with a
// fixed seed, with -jobs readers taking the next file from a shared queue.
func shuffle(args []string) error {
	fl := flag.NewFlagSet("shuffle", flag.ExitOnError)
	jobs := fl.Int("jobs", 8, "parallel readers")
	seed := fl.Uint64("seed", 1, "shuffle seed")
	_ = fl.Parse(args)
	if fl.NArg() != 2 {
		usage()
	}
	root := fl.Arg(0)
	data, err := os.ReadFile(fl.Arg(1))
	if err != nil {
		return err
	}
	names := strings.Fields(string(data))
	r := mrand.New(mrand.NewPCG(*seed, 0x9e3779b97f4a7c15))
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	var next atomic.Int64
	var bytes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *jobs)
	start := time.Now()
	for w := 0; w < *jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bufSize)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				f, err := os.Open(filepath.Join(root, names[i]))
				if err != nil {
					errs <- err
					return
				}
				for {
					n, err := f.Read(buf)
					bytes.Add(int64(n))
					if err == io.EOF {
						break
					}
					if err != nil {
						f.Close()
						errs <- err
						return
					}
				}
				f.Close()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("files=%d bytes=%d secs=%.3f files_per_s=%.0f mbps=%.1f\n", len(names), bytes.Load(), el.Seconds(),
		float64(len(names))/el.Seconds(), float64(bytes.Load())/1e6/el.Seconds())
	return nil
}

// start runs a mount daemon and leaves it running: it waits until the mount is live (a ready
// file appears, or a FUSE mount shows up at a directory), then optionally reads the first byte
// of a file, lists the mount's root and some subdirectories, and samples the daemon's memory.
// All times are from the moment the command was started.
func start(args []string) error {
	fl := flag.NewFlagSet("start", flag.ExitOnError)
	ready := fl.String("ready-file", "", "live once this file exists")
	waitMount := fl.String("wait-mount", "", "live once a FUSE filesystem is mounted at this directory")
	pidFile := fl.String("pidfile", "", "write the daemon's pid here")
	logFile := fl.String("log", "/dev/null", "the daemon's standard output and error")
	timeout := fl.Duration("timeout", 60*time.Second, "give up after this long")
	firstByte := fl.String("first-byte", "", "after the mount is live, read one byte of this file")
	root := fl.String("list-root", "", "after the mount is live, list this directory (the mount's root)")
	subdirs := fl.Int("subdirs", 0, "then list this many subdirectories of it, with lstat of every entry")
	_ = fl.Parse(args)
	if fl.NArg() == 0 || (*ready == "") == (*waitMount == "") {
		usage()
	}
	lf, err := os.OpenFile(*logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	if *ready != "" {
		os.Remove(*ready)
	}
	cmd := exec.Command(fl.Arg(0), fl.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			return err
		}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	absMount, _ := filepath.Abs(*waitMount)
	for {
		if *ready != "" {
			if _, err := os.Stat(*ready); err == nil {
				break
			}
		} else if isFuseMount(absMount) {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before the mount was live: %v (see %s)", fl.Arg(0), err, *logFile)
		case <-time.After(500 * time.Microsecond):
		}
		if time.Since(t0) > *timeout {
			return fmt.Errorf("%s: no mount after %s (see %s)", fl.Arg(0), *timeout, *logFile)
		}
	}
	out := []string{fmt.Sprintf("pid=%d", pid), fmt.Sprintf("ready_ms=%.1f", ms(time.Since(t0)))}
	if *firstByte != "" {
		f, err := os.Open(*firstByte)
		if err != nil {
			return err
		}
		var b [1]byte
		_, err = io.ReadFull(f, b[:])
		f.Close()
		if err != nil {
			return fmt.Errorf("first byte of %s: %w", *firstByte, err)
		}
		out = append(out, fmt.Sprintf("first_byte_ms=%.1f", ms(time.Since(t0))))
	}
	if *root != "" {
		t1 := time.Now()
		ents, err := os.ReadDir(*root)
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("root_entries=%d", len(ents)), fmt.Sprintf("list_root_ms=%.1f", ms(time.Since(t1))),
			fmt.Sprintf("mount_and_list_ms=%.1f", ms(time.Since(t0))))
		out = append(out, memory("root", pid)...)
		if *subdirs > 0 {
			t2 := time.Now()
			n, entries := 0, 0
			for _, e := range ents {
				if n == *subdirs {
					break
				}
				if !e.IsDir() {
					continue
				}
				n++
				d := filepath.Join(*root, e.Name())
				sub, err := os.ReadDir(d)
				if err != nil {
					return err
				}
				for _, s := range sub {
					if _, err := os.Lstat(filepath.Join(d, s.Name())); err != nil {
						return err
					}
				}
				entries += len(sub)
			}
			out = append(out, fmt.Sprintf("subdirs=%d", n), fmt.Sprintf("subdir_entries=%d", entries),
				fmt.Sprintf("list_subdirs_ms=%.1f", ms(time.Since(t2))))
			out = append(out, memory("subdirs", pid)...)
		}
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// memory reports VmRSS and VmHWM of pid in KiB.
func memory(tag string, pid int) []string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && (k == "VmRSS" || k == "VmHWM") {
			out = append(out, fmt.Sprintf("%s_%s_kb=%s", tag, strings.ToLower(k), strings.TrimSuffix(strings.TrimSpace(v), " kB")))
		}
	}
	return out
}

// isFuseMount reports whether a FUSE filesystem is mounted exactly at dir.
func isFuseMount(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != dir {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) && strings.HasPrefix(f[i+1], "fuse") {
				return true
			}
		}
	}
	return false
}

// download fetches a whole blob, the baseline for streaming through the mount. Mode "ranges"
// (the default) is the plainest parallel reader: -concurrency goroutines take the next
// -block-sized range, GET it and read the body into a buffer of their own, which is reused
// (the mount's chunk layer does the same GETs). Mode "buffer" is the SDK's DownloadBuffer
// into one buffer the size of the blob. Credentials: AZURE_STORAGE_CONNECTION_STRING
// (account name and key), or a SAS in the URL.
func download(args []string) error {
	fl := flag.NewFlagSet("download", flag.ExitOnError)
	block := fl.Int64("block", 8<<20, "bytes per range GET")
	conc := fl.Int("concurrency", 8, "range GETs in flight")
	mode := fl.String("mode", "ranges", "ranges or buffer")
	_ = fl.Parse(args)
	if fl.NArg() != 1 {
		usage()
	}
	u := fl.Arg(0)
	var c *blob.Client
	var err error
	if os.Getenv("AZURE_STORAGE_CONNECTION_STRING") != "" && !strings.Contains(u, "sig=") {
		cred, cerr := connStringCredential()
		if cerr != nil {
			return cerr
		}
		c, err = blob.NewClientWithSharedKeyCredential(u, cred, nil)
	} else {
		c, err = blob.NewClientWithNoCredential(u, nil)
	}
	if err != nil {
		return err
	}
	ctx := context.Background()
	t0 := time.Now()
	props, err := c.GetProperties(ctx, nil)
	if err != nil {
		return err
	}
	size := *props.ContentLength
	var total int64
	switch *mode {
	case "buffer":
		buf := make([]byte, size)
		if total, err = c.DownloadBuffer(ctx, buf, &blob.DownloadBufferOptions{BlockSize: *block, Concurrency: uint16(*conc)}); err != nil {
			return err
		}
	case "ranges":
		var next, got atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, *conc)
		for w := 0; w < *conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, *block)
				for {
					off := next.Add(*block) - *block
					if off >= size {
						return
					}
					n := min(*block, size-off)
					resp, err := c.DownloadStream(ctx, &blob.DownloadStreamOptions{
						Range: blob.HTTPRange{Offset: off, Count: n}, AccessConditions: &blob.AccessConditions{
							ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: props.ETag}}})
					if err != nil {
						errs <- err
						return
					}
					m, err := io.ReadFull(resp.Body, buf[:n])
					resp.Body.Close()
					got.Add(int64(m))
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		total = got.Load()
	default:
		usage()
	}
	el := time.Since(t0)
	fmt.Printf("bytes=%d secs=%.3f mbps=%.1f\n", total, el.Seconds(), float64(total)/1e6/el.Seconds())
	return nil
}

func freePort() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}
