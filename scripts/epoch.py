#!/usr/bin/env python3
"""One training epoch over a dataset, read the way a PyTorch DataLoader reads it.

A DataLoader with num_workers=N forks N worker processes; the sampler shuffles the indices of
the dataset every epoch, and each worker loads whole samples (Dataset.__getitem__ opens the file
and reads it) for the batches it is handed, several batches ahead of the training loop. This
script does the same with the standard library only: a multiprocessing pool of --workers forked
processes, every file of --list read once in an order shuffled by --seed, handed out in batches
of --batch files, and the results consumed as they come.

    scripts/epoch.py --list FILES --workers 8 --seed 1 ROOT

FILES holds one path per line, relative to ROOT, with its size after a tab (the dataset's
index, which a real job keeps too, so that an epoch does not start by walking the tree). The
script checks that every file read has that size and prints one line of key=value pairs:

    files=5000 bytes=512000000 seconds=2.914 files_per_s=1715.9 mbps=175.7 errors=0

It exits non-zero if any file could not be read or had another size.
"""

import argparse
import multiprocessing
import os
import random
import sys
import time


def read_batch(batch):
    """Reads every file of a batch whole; returns (bytes read, failures)."""
    total, failures = 0, []
    for path, size in batch:
        n = 0
        try:
            with open(path, "rb", buffering=0) as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    n += len(b)
        except OSError as e:
            failures.append(f"{path}: {e}")
            continue
        if n != size:
            failures.append(f"{path}: read {n} bytes, the index says {size}")
        total += n
    return total, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="the dataset's directory (a mount point)")
    ap.add_argument("--list", required=True, help="file of 'relative path<TAB>size' lines")
    ap.add_argument("--workers", type=int, default=8, help="worker processes (default 8)")
    ap.add_argument("--batch", type=int, default=4, help="files per batch (default 4)")
    ap.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    args = ap.parse_args()

    files = []
    with open(args.list) as f:
        for line in f:
            rel, _, size = line.rstrip("\n").partition("\t")
            if rel:
                files.append((os.path.join(args.root, rel), int(size)))
    random.Random(args.seed).shuffle(files)
    batches = [files[i : i + args.batch] for i in range(0, len(files), args.batch)]

    start = time.monotonic()
    total, failures = 0, []
    # fork, as DataLoader workers start on Linux; each worker has two batches in flight
    # (DataLoader's default prefetch_factor).
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers) as pool:
        for n, failed in pool.imap_unordered(read_batch, batches, chunksize=1):
            total += n
            failures.extend(failed)
    took = time.monotonic() - start

    for msg in failures[:10]:
        print(msg, file=sys.stderr)
    print(
        f"files={len(files)} bytes={total} seconds={took:.3f} "
        f"files_per_s={len(files) / took:.1f} mbps={total / took / 1e6:.1f} errors={len(failures)}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
