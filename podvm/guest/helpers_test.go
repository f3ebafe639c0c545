package guest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// rec is an archive record read back, with its content materialised.
type rec struct {
	cpio.Info
	data []byte
}

// readNewc reads one uncompressed newc archive with the cpio library's
// reader and returns its records in archive order, plus the number of bytes
// the archive occupies including its trailer.
func readNewc(data []byte) ([]rec, int, error) {
	records, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		return nil, 0, err
	}
	var out []rec
	end := 0
	for _, r := range records {
		b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			return nil, 0, err
		}
		out = append(out, rec{Info: r.Info, data: b})
		end = int(r.FilePos) + int(round4(int64(r.FileSize)))
	}
	// The trailer is a 110-byte header plus "TRAILER!!!\0", padded to 4.
	trailer := int(round4(110 + int64(len(cpio.Trailer)) + 1))
	if end+trailer > len(data) || !bytes.Equal(data[end+110:end+110+len(cpio.Trailer)], []byte(cpio.Trailer)) {
		return nil, 0, errors.New("archive does not end with a trailer")
	}
	return out, end + trailer, nil
}

func round4(n int64) int64 { return (n + 3) &^ 3 }

// gunzip decompresses exactly one gzip member at the start of data and
// returns its content and the compressed length.
func gunzip(data []byte) ([]byte, int, error) {
	br := bytes.NewReader(data)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, 0, err
	}
	zr.Multistream(false)
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, 0, err
	}
	return out, len(data) - br.Len(), nil
}

// unpackLikeKernel unpacks an initramfs the way the kernel's
// unpack_to_rootfs does (init/initramfs.c): at each point it skips NUL
// bytes, treats a '0' as the start of an uncompressed newc archive only when
// the offset since the last compressed stream is a multiple of 4, and
// otherwise expects a compressed stream (only gzip here). Later entries
// replace earlier ones, as they do in the guest's rootfs.
func unpackLikeKernel(data []byte) (map[string]rec, error) {
	files := map[string]rec{}
	add := func(rs []rec) {
		for _, r := range rs {
			files[r.Name] = r
		}
	}
	thisHeader := 0
	for len(data) > 0 {
		saved := thisHeader
		switch {
		case data[0] == '0' && thisHeader&3 == 0:
			rs, n, err := readNewc(data)
			if err != nil {
				return nil, fmt.Errorf("uncompressed archive: %w", err)
			}
			add(rs)
			data, thisHeader = data[n:], thisHeader+n
		case data[0] == 0:
			data, thisHeader = data[1:], thisHeader+1
		default:
			plain, n, err := gunzip(data)
			if err != nil {
				return nil, fmt.Errorf("invalid magic at start of compressed archive: %w", err)
			}
			rs, _, err := readNewc(plain)
			if err != nil {
				return nil, fmt.Errorf("compressed archive: %w", err)
			}
			add(rs)
			data, thisHeader = data[n:], saved+n
		}
	}
	return files, nil
}

func mustUnpackLikeKernel(t *testing.T, data []byte) map[string]rec {
	t.Helper()
	files, err := unpackLikeKernel(data)
	if err != nil {
		t.Fatal(err)
	}
	return files
}
