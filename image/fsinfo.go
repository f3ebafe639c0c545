package image

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// FsUsage is the image filesystem usage CRI's ImageFsInfo reports.
type FsUsage struct {
	Timestamp  time.Time
	Mountpoint string // the store's root
	UsedBytes  uint64
	InodesUsed uint64
}

// FsInfo measures the space and inodes used under the store's root, counting
// hard-linked files once.
func (s *Store) FsInfo(ctx context.Context) (FsUsage, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	u := FsUsage{Timestamp: time.Now(), Mountpoint: s.root}
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // entries vanish while pulls and removals run
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		k := inode{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		u.InodesUsed++
		u.UsedBytes += uint64(st.Blocks) * 512
		return nil
	})
	if err != nil {
		return FsUsage{}, fmt.Errorf("image fs usage: %w", err)
	}
	return u, nil
}
