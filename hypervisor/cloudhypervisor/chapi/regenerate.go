package chapi

// This package is generated from Cloud Hypervisor's OpenAPI description, which
// is a development-time input and deliberately not kept in the repository.
// `make generate` rebuilds it with oapi-codegen v2.8.2 and oapi-codegen.yaml;
// never edit chapi.gen.go by hand.
