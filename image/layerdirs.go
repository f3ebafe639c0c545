package image

import (
	"fmt"
	"os"
)

// LayerDirs returns img's unpacked layer directories, top layer first: the
// lowerdir= list of an overlay mount (plus a per-container upper dir).
func (s *Store) LayerDirs(img Image) ([]string, error) {
	dirs := make([]string, 0, len(img.DiffIDs))
	for i := len(img.DiffIDs) - 1; i >= 0; i-- {
		d := s.layerPath(img.DiffIDs[i])
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("image %s layer %s: %w", img.ID, img.DiffIDs[i], ErrNotFound)
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}
