package initsys

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultSecretsDir is where the host puts the guest's keys in the
// initramfs. No mount covers it, so it can be read before or after Setup;
// read it first anyway (see the package comment).
const DefaultSecretsDir = "/.podvisor/keys"

// Limits on the secrets directory: keys and certificates are a few KiB.
const (
	MaxSecretSize  = 64 << 10
	maxSecretFiles = 64
)

// ReadAndRemoveSecrets returns the contents of the regular files in dir,
// keyed by file name, and deletes them and dir, so that nothing started
// later can read them.
//
// It refuses (returns an error and no secrets) a dir that is a symlink, an
// entry that is not a regular file (symlink, directory, device, FIFO…), a
// file larger than MaxSecretSize, or more than 64 entries. Whatever it
// refuses, it still deletes everything in dir and dir itself: a secret must
// not outlive a failed boot attempt in the guest's memory-backed root.
func ReadAndRemoveSecrets(dir string) (secrets map[string][]byte, retErr error) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("secrets dir %s: %w", dir, err)
	}
	d := os.NewFile(uintptr(dfd), dir)
	defer d.Close()
	entries, err := d.ReadDir(-1)
	defer func() {
		if err := removeEntries(dfd, dir, entries); err != nil {
			retErr = errors.Join(retErr, err)
		}
		if retErr != nil {
			wipe(secrets)
			secrets = nil
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("secrets dir %s: %w", dir, err)
	}
	if len(entries) > maxSecretFiles {
		return nil, fmt.Errorf("secrets dir %s: %d entries, more than %d", dir, len(entries), maxSecretFiles)
	}
	secrets = make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := readSecret(dfd, e)
		if err != nil {
			return secrets, fmt.Errorf("secret %s: %w", filepath.Join(dir, e.Name()), err)
		}
		secrets[e.Name()] = b
	}
	return secrets, nil
}

// readSecret reads one entry of the directory open as dfd. The checks on the
// open descriptor, not on the name, are the ones that count.
func readSecret(dfd int, e os.DirEntry) ([]byte, error) {
	if !e.Type().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%v)", e.Type())
	}
	// O_NONBLOCK: opening a FIFO swapped in for the file must not hang boot.
	fd, err := unix.Openat(dfd, e.Name(), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), e.Name())
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("not a regular file (mode %#o)", st.Mode)
	}
	if st.Size > MaxSecretSize {
		return nil, fmt.Errorf("%d bytes, more than %d", st.Size, MaxSecretSize)
	}
	// Read one byte more than allowed in case the file grew after Fstat.
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSecretSize {
		wipe(map[string][]byte{"": b})
		return nil, fmt.Errorf("more than %d bytes", MaxSecretSize)
	}
	return b, nil
}

// removeEntries deletes every entry of dir and then dir. Subdirectories go
// with os.RemoveAll, which does not follow symlinks.
func removeEntries(dfd int, dir string, entries []os.DirEntry) error {
	var errs []error
	for _, e := range entries {
		var err error
		if e.IsDir() {
			err = os.RemoveAll(filepath.Join(dir, e.Name()))
		} else {
			err = unix.Unlinkat(dfd, e.Name(), 0)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove secret %s: %w", e.Name(), err))
		}
	}
	if err := os.Remove(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove secrets dir: %w", err))
	}
	return errors.Join(errs...)
}

// wipe overwrites secrets that will not be returned. Best effort: copies the
// runtime made are out of reach.
func wipe(secrets map[string][]byte) {
	for _, b := range secrets {
		clear(b)
	}
}
