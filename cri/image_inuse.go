package cri

// ImageInUse reports whether any container, in whatever state, was created
// from the image with this ID or mounts it as an image volume. The image
// store refuses to remove such an image: the container's rootfs or volume
// overlays its layers.
func (s *Service) ImageInUse(imageID string) bool {
	for _, c := range s.containers.List() {
		if c.Metadata.ImageID == imageID {
			return true
		}
		for _, m := range c.Metadata.Mounts {
			if m.GetImage().GetImageRef() == imageID {
				return true
			}
		}
	}
	return false
}
