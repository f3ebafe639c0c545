package image

import "errors"

// Error kinds. Errors returned by this package wrap one of these with %w so
// callers (the CRI edge) can map them to status codes with errors.Is.
var (
	// ErrNotFound: no image, reference, user or group by that name.
	ErrNotFound = errors.New("not found")
	// ErrInvalidReference: the string is neither a valid image reference nor an image ID.
	ErrInvalidReference = errors.New("invalid image reference")
	// ErrInUse: a container still uses the image.
	ErrInUse = errors.New("image in use")
	// ErrUnauthorized: the registry refused the credentials (or their absence).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrInvalidArgument: malformed input other than a reference (config, auth, archive).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrInvalidLayer: a layer failed digest verification or holds an unsafe entry.
	ErrInvalidLayer = errors.New("invalid layer")
)
