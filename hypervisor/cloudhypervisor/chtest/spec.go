package chtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi/chspec"
)

// specChecker validates requests against Cloud Hypervisor's OpenAPI spec.
type specChecker struct {
	router routers.Router
}

var (
	errNoRoute          = errors.New("no such endpoint")
	errMethodNotAllowed = errors.New("method not allowed")
)

func newSpecChecker() (*specChecker, error) {
	doc, err := chspec.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		return nil, fmt.Errorf("spec router: %w", err)
	}
	return &specChecker{router: router}, nil
}

// check validates r, whose body was already read into body, and reports
// whether the operation declares a request body.
func (c *specChecker) check(ctx context.Context, r *http.Request, body []byte) (hasBody bool, err error) {
	req := r.Clone(ctx)
	// The router matches the spec's server URL, http://localhost/api/v1.
	req.URL.Scheme, req.URL.Host = "http", "localhost"
	req.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		var re *routers.RouteError
		if errors.As(err, &re) && re.Reason == routers.ErrMethodNotAllowed.Error() {
			return false, errMethodNotAllowed
		}
		return false, errNoRoute
	}
	opts := &openapi3filter.Options{MultiError: true, SkipSettingDefaults: true}
	// The schema dump of the default message buries the one useful line.
	opts.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return fmt.Sprintf("%s: %s", "/"+strings.Join(err.JSONPointer(), "/"), err.Reason)
	})
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	return route.Operation.RequestBody != nil, openapi3filter.ValidateRequest(ctx, in)
}
