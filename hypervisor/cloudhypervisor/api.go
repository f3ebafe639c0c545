package cloudhypervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
)

// baseURL is the API root on the unix socket. The trailing slash matters: the
// generated request builders resolve "./vm.create" against it.
const baseURL = "http://localhost/api/v1/"

// maxResponseBytes caps what is read from the VMM. The API client is trusted
// by Cloud Hypervisor, but a VMM taken over by its guest is not trusted by us.
const maxResponseBytes = 1 << 20

// vmmAPI is the part of Cloud Hypervisor's REST API the driver uses.
type vmmAPI interface {
	Ping(ctx context.Context) (chapi.VmmPingResponse, error)
	CreateVM(ctx context.Context, cfg chapi.VmConfig) error
	// AddNet hands the VMM a NIC backed by already-open taps, one fd per
	// queue pair.
	AddNet(ctx context.Context, cfg chapi.NetConfig, taps []*os.File) error
	BootVM(ctx context.Context) error
	Info(ctx context.Context) (chapi.VmInfo, error)
	AddDisk(ctx context.Context, cfg chapi.DiskConfig) error
	RemoveDevice(ctx context.Context, id string) error
	ShutdownVM(ctx context.Context) error
	ShutdownVMM(ctx context.Context) error
}

var _ vmmAPI = (*apiClient)(nil)

// apiClient talks to one VMM's API socket.
type apiClient struct {
	socket string
	c      *chapi.ClientWithResponses
}

func newAPIClient(socket string) (*apiClient, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		// One connection per call: calls are rare, and a connection kept
		// idle across a VMM restart or a seccomp kill is a stale one.
		DisableKeepAlives: true,
	}
	hc := &http.Client{Transport: limitedTransport{tr}}
	c, err := chapi.NewClientWithResponses(baseURL, chapi.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	return &apiClient{socket: socket, c: c}, nil
}

func (a *apiClient) Ping(ctx context.Context) (chapi.VmmPingResponse, error) {
	r, err := a.c.GetVmmPingWithResponse(ctx)
	if err != nil {
		return chapi.VmmPingResponse{}, fmt.Errorf("vmm.ping: %w", err)
	}
	if err := checkStatus("vmm.ping", r.HTTPResponse, r.Body); err != nil {
		return chapi.VmmPingResponse{}, err
	}
	if r.JSON200 == nil {
		return chapi.VmmPingResponse{}, fmt.Errorf("vmm.ping: no JSON body")
	}
	return *r.JSON200, nil
}

func (a *apiClient) CreateVM(ctx context.Context, cfg chapi.VmConfig) error {
	r, err := a.c.CreateVMWithResponse(ctx, cfg)
	if err != nil {
		return fmt.Errorf("vm.create: %w", err)
	}
	return checkStatus("vm.create", r.HTTPResponse, r.Body)
}

func (a *apiClient) BootVM(ctx context.Context) error {
	r, err := a.c.BootVMWithResponse(ctx)
	if err != nil {
		return fmt.Errorf("vm.boot: %w", err)
	}
	return checkStatus("vm.boot", r.HTTPResponse, r.Body)
}

func (a *apiClient) Info(ctx context.Context) (chapi.VmInfo, error) {
	r, err := a.c.GetVmInfoWithResponse(ctx)
	if err != nil {
		return chapi.VmInfo{}, fmt.Errorf("vm.info: %w", err)
	}
	if err := checkStatus("vm.info", r.HTTPResponse, r.Body); err != nil {
		return chapi.VmInfo{}, err
	}
	if r.JSON200 == nil {
		return chapi.VmInfo{}, fmt.Errorf("vm.info: no JSON body")
	}
	return *r.JSON200, nil
}

func (a *apiClient) AddDisk(ctx context.Context, cfg chapi.DiskConfig) error {
	r, err := a.c.PutVmAddDiskWithResponse(ctx, cfg)
	if err != nil {
		return fmt.Errorf("vm.add-disk: %w", err)
	}
	return checkStatus("vm.add-disk", r.HTTPResponse, r.Body)
}

func (a *apiClient) RemoveDevice(ctx context.Context, id string) error {
	r, err := a.c.PutVmRemoveDeviceWithResponse(ctx, chapi.VmRemoveDevice{Id: &id})
	if err != nil {
		return fmt.Errorf("vm.remove-device: %w", err)
	}
	return checkStatus("vm.remove-device", r.HTTPResponse, r.Body)
}

func (a *apiClient) ShutdownVM(ctx context.Context) error {
	r, err := a.c.ShutdownVMWithResponse(ctx)
	if err != nil {
		return fmt.Errorf("vm.shutdown: %w", err)
	}
	return checkStatus("vm.shutdown", r.HTTPResponse, r.Body)
}

func (a *apiClient) ShutdownVMM(ctx context.Context) error {
	r, err := a.c.ShutdownVMMWithResponse(ctx)
	if err != nil {
		return fmt.Errorf("vmm.shutdown: %w", err)
	}
	return checkStatus("vmm.shutdown", r.HTTPResponse, r.Body)
}

// APIError is a non-2xx reply from the VMM. A 400 (the VMM rejected the
// configuration) matches hypervisor.ErrInvalidConfig with errors.Is.
type APIError struct {
	Op     string // endpoint, e.g. "vm.boot"
	Status int    // HTTP status code
	Detail string // the VMM's error chain, shortened
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.Detail)
}

func (e *APIError) Unwrap() error {
	if e.Status == http.StatusBadRequest {
		return hypervisor.ErrInvalidConfig
	}
	return nil
}

// maxDetail bounds the VMM's error text kept in an APIError.
const maxDetail = 512

// checkStatus turns a non-2xx reply into an *APIError. Cloud Hypervisor
// answers errors with a JSON array of messages, outermost first; the spec
// promises 204 where the VMM sometimes sends 200, so any 2xx is success.
func checkStatus(op string, r *http.Response, body []byte) error {
	if r.StatusCode >= 200 && r.StatusCode < 300 {
		return nil
	}
	detail := strings.TrimSpace(string(body))
	var chain []string
	if json.Unmarshal(body, &chain) == nil && len(chain) > 0 {
		detail = strings.Join(chain, ": ")
	}
	if detail == "" {
		detail = http.StatusText(r.StatusCode)
	}
	if len(detail) > maxDetail {
		detail = detail[:maxDetail] + "…"
	}
	return &APIError{Op: op, Status: r.StatusCode, Detail: detail}
}

// limitedTransport caps every response body at maxResponseBytes.
type limitedTransport struct{ base http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitBody(resp.Body)
	return resp, nil
}

func limitBody(rc io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, maxResponseBytes), rc}
}
