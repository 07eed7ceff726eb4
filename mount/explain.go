package mount

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// explainMountError turns a failed mount into a message that names the likely cause. Without
// root, go-fuse mounts through the setuid helper fusermount3 and only reports its exit code
// ("fusermount exited with code 256"); the real reason (no fusermount3, no access to
// /dev/fuse, no user_allow_other) is only in the helper's own output, if anywhere.
func explainMountError(dir string, err error) error {
	msg := strings.TrimSpace(err.Error())
	if os.Geteuid() == 0 {
		if strings.Contains(msg, "no such device") || strings.Contains(msg, "ENODEV") {
			return fmt.Errorf("mount %s: %s; the kernel has no FUSE support here: load it (modprobe fuse) or, in a container, pass --device /dev/fuse", dir, msg)
		}
		return fmt.Errorf("mount %s: %s", dir, msg)
	}
	var causes []string
	if _, lerr := exec.LookPath("fusermount3"); lerr != nil {
		if _, lerr := exec.LookPath("fusermount"); lerr != nil {
			causes = append(causes, "fusermount3 (the setuid helper non-root FUSE mounts need) is not installed (Debian/Ubuntu: apt-get install fuse3)")
		}
	}
	if aerr := unix.Access("/dev/fuse", unix.R_OK|unix.W_OK); aerr != nil {
		causes = append(causes, fmt.Sprintf("this user cannot open /dev/fuse (%v; see ls -l /dev/fuse: it is usually mode 0666)", aerr))
	}
	if len(causes) == 0 {
		causes = append(causes, "fusermount3 refused the mount (a mount that other users may read needs user_allow_other in /etc/fuse.conf)")
	}
	return fmt.Errorf("mount %s as a non-root user failed (%s): %s; alternatives: run as root, or in a container with --device /dev/fuse --cap-add SYS_ADMIN",
		dir, msg, strings.Join(causes, "; "))
}
