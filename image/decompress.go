package image

import (
	"bufio"
	"bytes"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress sniffs r's compression (gzip, zstd or none: media types are not
// trusted) and returns the plain stream; Close also closes c.
func decompress(r io.Reader, c io.Closer) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4) // a short or empty stream is handled by the tar reader
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			c.Close()
			return nil, err
		}
		return readCloser{zr, func() error { zr.Close(); return c.Close() }}, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			c.Close()
			return nil, err
		}
		return readCloser{zr, func() error { zr.Close(); return c.Close() }}, nil
	default:
		return readCloser{br, c.Close}, nil
	}
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
