// Package guest owns the guest image: the pinned Debian kernel and the
// initramfs that carries the agent as /init, plus the kernel modules it loads.
//
// It has two kinds of callers:
//
//   - the build (podvm/guest/mkguest, run by `make guest`), which resolves the
//     modules from the kernel's modules.dep with [LoadModuleIndex] and
//     [ModuleIndex.Resolve] and writes vmlinuz, initramfs.img and manifest.json
//     with [Build];
//   - the host at boot time, which opens the image with [Load], checks it with
//     [Image.Verify] before every boot, and builds a per-VM initramfs with
//     [ComposeInitramfs]: the base image followed by a small uncompressed
//     overlay archive ([WriteOverlay]) that delivers per-VM files such as key
//     material out of band, never on the kernel command line.
//
// Layout of the base initramfs (all entries owned by root, mtime 0, sorted by
// path so the archive and its digest are reproducible):
//
//	/init                         the agent, 0755
//	/etc/podvisor/modules         module paths, one per line, in load order
//	/lib/modules/<version>/...ko  exactly the resolved modules
//	/usr/sbin/runc                the container runtime (Debian's runc 1.1.5),
//	/lib64/ld-linux-x86-64.so.2   its PT_INTERP loader and the DT_NEEDED closure
//	/lib/x86_64-linux-gnu/...     of its libraries, from pinned .debs (see
//	/usr/lib/x86_64-linux-gnu/... [ResolveRuntime]); recorded in the manifest
//	/dev/console, /dev/null       device nodes PID 1 needs before devtmpfs
//	/proc /sys /sys/fs/cgroup /dev /run /tmp /etc   mountpoints
//
// There is deliberately no shell and no busybox in the image.
package guest
