package chspec

// This package holds only the embedded OpenAPI description of Cloud
// Hypervisor's API, for the spec-checking fake VMM in ../../chtest. It pulls in
// kin-openapi, so only tests may import it: the driver uses the
// dependency-free client in the parent package. `make generate` rebuilds it
// with oapi-codegen v2.8.2 and oapi-codegen.yaml; never edit chspec.gen.go.
