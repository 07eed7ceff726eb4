package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/encfs/encfs/blockdev"
)

// plainVol serves a plain file as a device through blockdev (FUSE file, loop device, ext4),
// the stack of an encfs volume without its cryptography, until SIGTERM or SIGINT.
func plainVol(args []string) error {
	fl := flag.NewFlagSet("plainvol", flag.ExitOnError)
	size := fl.Int64("create", 0, "create FILE with this many bytes and make a filesystem on it first")
	fs := fl.String("fs", "ext4", "filesystem: ext4 or xfs")
	ready := fl.String("ready-file", "", "create this file once mounted")
	_ = fl.Parse(args)
	if fl.NArg() != 2 {
		usage()
	}
	ctx := context.Background()
	var dev *blockdev.FileDevice
	var err error
	if *size > 0 {
		if dev, err = blockdev.CreateFileDevice(fl.Arg(0), *size); err != nil {
			return err
		}
		if err := blockdev.Mkfs(ctx, dev, *fs); err != nil {
			return err
		}
	} else if dev, err = blockdev.OpenFileDevice(fl.Arg(0)); err != nil {
		return err
	}
	defer dev.Close()
	m, err := blockdev.Mount(ctx, dev, fl.Arg(1), blockdev.Options{FS: *fs})
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if *ready != "" {
		if err := os.WriteFile(*ready, nil, 0o644); err != nil {
			m.Unmount(ctx)
			return err
		}
	}
	select {
	case <-sig:
	case <-m.Done():
		return fmt.Errorf("the FUSE server ended on its own")
	}
	return m.Unmount(ctx)
}
