package lwm2m

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/lwm2m/content"
)

// Firmware configures /5 Firmware Update, in pull mode: the server writes a
// Package URI, the client downloads the image with package download (every
// scheme it supports, resumable across offline periods, address changes and
// restarts) and installs it when the server executes Update.
type Firmware struct {
	// Dir is where the image lands (Dir/firmware.bin, with its .part and
	// .part.state while it downloads). Required.
	Dir string
	// StateDir is where /5's state is kept (StateDir/firmware.json), so
	// that a restarted client resumes a download in State 1 where it
	// stopped; default Dir.
	StateDir string
	// Install installs an image when the server executes /5/0/2: nil
	// error is success (Update Result 1), anything else failure (8). It
	// runs on a goroutine of its own; ctx ends when the client stops.
	// Required.
	Install func(ctx context.Context, image string) error
	// Download is the template of every image download's options: DTLS
	// credentials for coaps (without them coaps is not offered in
	// /5/0/8), TLS roots, block size, GiveUpAfter (default 10 min here:
	// a download that makes no progress for that long online ends with
	// Result 4). NewSocket defaults to the client's.
	Download download.Options
}

// Firmware Update states (/5/0/3) and results (/5/0/5), LwM2M 1.1 E.6.
const (
	StateIdle        = 0
	StateDownloading = 1
	StateDownloaded  = 2
	StateUpdating    = 3

	ResultInitial             = 0
	ResultSuccess             = 1
	ResultNoStorage           = 2
	ResultOutOfMemory         = 3
	ResultConnectionLost      = 4
	ResultIntegrityFailure    = 5
	ResultUnsupportedPackage  = 6
	ResultInvalidURI          = 7
	ResultUpdateFailed        = 8
	ResultUnsupportedProtocol = 9
)

// Resources of /5.
const (
	resPackage    = 0
	resPackageURI = 1
	resUpdate     = 2
	resState      = 3
	resResult     = 5
	resPkgName    = 6
	resPkgVersion = 7
	resProtocols  = 8
	resDelivery   = 9
)

var firmwareResources = []ResourceDef{
	{ID: resPackage, Ops: OpWrite, Type: content.Opaque},
	{ID: resPackageURI, Ops: OpReadWrite, Type: content.String},
	{ID: resUpdate, Ops: OpExecute},
	{ID: resState, Ops: OpRead, Type: content.Integer},
	{ID: resResult, Ops: OpRead, Type: content.Integer},
	{ID: resPkgName, Ops: OpRead, Type: content.String},
	{ID: resPkgVersion, Ops: OpRead, Type: content.String},
	{ID: resProtocols, Ops: OpRead, Type: content.Integer, Multiple: true},
	{ID: resDelivery, Ops: OpRead, Type: content.Integer},
}

// fwState is /5's state as kept in Dir/firmware.json.
type fwState struct {
	State  int    `json:"state"`
	Result int    `json:"result"`
	URI    string `json:"uri,omitempty"`
}

// firmwareObject is /5 Firmware Update. Its state machine (E.6.1):
//
//	         write URI (scheme ok)            download ok
//	Idle(0) ─────────────────────▶ Downloading(1) ──────────▶ Downloaded(2)
//	  ▲  ▲  ◀── download failed: Result 4/5/7/2 ──┘               │  ▲
//	  │  └───────── write empty URI (any state but 3) ────────────┤  │ Install failed:
//	  │                                                  exec Update  │ Result 8
//	  └──────────── Install ok: Result 1 ◀──────────── Updating(3) ──┘
type firmwareObject struct {
	c         *Client
	cfg       Firmware
	image     string
	statePath string
	protocols []int64

	mu      sync.Mutex
	st      fwState
	ctx     context.Context // the client's Run
	dl      *download.Download
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	release func() // of the lock on Dir
}

func newFirmwareObject(c *Client, cfg *Firmware) (*firmwareObject, error) {
	if cfg.Dir == "" || cfg.Install == nil {
		return nil, fmt.Errorf("%w: firmware update needs Dir and Install", ErrConfig)
	}
	stateDir := cfg.StateDir
	if stateDir == "" {
		stateDir = cfg.Dir
	}
	for _, dir := range []string{cfg.Dir, stateDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("%w: firmware folder: %v", ErrConfig, err)
		}
	}
	release, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: firmware folder %s: %v (is another client using it?)", ErrConfig, cfg.Dir, err)
	}
	f := &firmwareObject{
		release: release,
		c:       c, cfg: *cfg,
		image:     filepath.Join(cfg.Dir, "firmware.bin"),
		statePath: filepath.Join(stateDir, "firmware.json"),
	}
	// /5/0/8: 0 CoAP, 1 CoAPS, 2 HTTP 1.1, 3 HTTPS 1.1, 4 CoAP/TCP,
	// 5 CoAP/TLS: what package download fetches with this configuration.
	f.protocols = []int64{0}
	if cfg.Download.DTLS != nil {
		f.protocols = append(f.protocols, 1)
	}
	f.protocols = append(f.protocols, 2, 3, 4, 5)
	b, err := os.ReadFile(f.statePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		release()
		return nil, fmt.Errorf("%w: firmware state: %v", ErrConfig, err)
	default:
		if err := json.Unmarshal(b, &f.st); err != nil || f.st.State < 0 || f.st.State > 3 {
			c.log.Warn("lwm2m: firmware state unreadable; starting from Idle", "path", f.statePath, "err", err)
			f.st = fwState{}
		}
	}
	if f.st.State == StateIdle {
		// Dir is ours (locked): a partial image an earlier run left has
		// no state to resume from, and would refuse the next Package URI.
		f.removeImage()
	}
	return f, nil
}

// schemes maps a Package URI scheme to its /5/0/8 protocol number.
var schemes = map[string]int64{"coap": 0, "coaps": 1, "http": 2, "https": 3, "coap+tcp": 4, "coaps+tcp": 5}

func (f *firmwareObject) ID() uint16                     { return 5 }
func (f *firmwareObject) Version() string                { return "" }
func (f *firmwareObject) Instances() []uint16            { return []uint16{0} }
func (f *firmwareObject) Resources(uint16) []ResourceDef { return firmwareResources }

// start picks up where a previous run stopped: a download in State 1
// resumes; an Update the process did not live to see the end of counts as
// failed.
func (f *firmwareObject) start(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctx = ctx
	switch f.st.State {
	case StateDownloading:
		f.c.emit(Event{Kind: "firmware", Detail: "resuming the download of " + f.st.URI})
		f.startDownload()
	case StateDownloaded:
		if _, err := os.Stat(f.image); err != nil {
			f.set(StateIdle, ResultIntegrityFailure, "")
		}
	case StateUpdating:
		f.set(StateDownloaded, ResultUpdateFailed, f.st.URI)
	}
}

// stop ends a download in flight (its state stays on disk, to resume) and
// waits for the object's goroutines.
func (f *firmwareObject) stop() {
	f.mu.Lock()
	if f.cancel != nil {
		f.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.release()
}

func (f *firmwareObject) Read(inst, res uint16) ([]content.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := content.ResourcePath(5, inst, res)
	one := func(v content.Value) ([]content.Record, error) { return []content.Record{{Path: p, Value: v}}, nil }
	switch res {
	case resPackageURI:
		return one(content.StringValue(f.st.URI))
	case resState:
		return one(content.IntValue(int64(f.st.State)))
	case resResult:
		return one(content.IntValue(int64(f.st.Result)))
	case resPkgName, resPkgVersion:
		return one(content.StringValue(""))
	case resDelivery:
		return one(content.IntValue(0)) // pull only
	case resProtocols:
		recs := make([]content.Record, len(f.protocols))
		for i, n := range f.protocols {
			recs[i] = content.Record{Path: content.ResourceInstancePath(5, inst, res, uint16(i)), Value: content.IntValue(n)}
		}
		return recs, nil
	}
	return nil, ErrMethodNotAllowed
}

func (f *firmwareObject) Write(inst, res uint16, recs []content.Record) error {
	if len(recs) != 1 {
		return ErrBadRequest
	}
	v := recs[0].Value
	f.mu.Lock()
	defer f.mu.Unlock()
	switch res {
	case resPackage:
		if len(v.Bytes) > 0 {
			return ErrMethodNotAllowed // pull only: no push of the image itself
		}
		return f.reset()
	case resPackageURI:
		uri := string(v.Bytes)
		if uri == "" {
			return f.reset()
		}
		if f.st.State != StateIdle {
			return fmt.Errorf("%w: Package URI written in state %d", ErrBadRequest, f.st.State)
		}
		u, err := url.Parse(uri)
		if err != nil || len(uri) > 255 || u.Host == "" {
			f.set(StateIdle, ResultInvalidURI, "")
			return fmt.Errorf("%w: invalid Package URI", ErrBadRequest)
		}
		if n, ok := schemes[u.Scheme]; !ok || (n == 1 && f.cfg.Download.DTLS == nil) {
			f.set(StateIdle, ResultUnsupportedProtocol, "")
			return fmt.Errorf("%w: unsupported protocol %q", ErrBadRequest, u.Scheme)
		}
		f.set(StateDownloading, ResultInitial, uri)
		f.startDownload()
		return nil
	}
	return ErrMethodNotAllowed
}

func (f *firmwareObject) Execute(inst, res uint16, _ []byte) error {
	if res != resUpdate {
		return ErrMethodNotAllowed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.State != StateDownloaded {
		return fmt.Errorf("%w: Update in state %d", ErrMethodNotAllowed, f.st.State)
	}
	f.set(StateUpdating, f.st.Result, f.st.URI)
	ctx := f.ctx
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.c.emit(Event{Kind: "firmware", Detail: "installing " + f.image})
		err := f.cfg.Install(ctx, f.image)
		f.mu.Lock()
		defer f.mu.Unlock()
		if err != nil {
			f.c.emit(Event{Kind: "firmware", Detail: "install failed: " + err.Error()})
			f.set(StateDownloaded, ResultUpdateFailed, f.st.URI)
			return
		}
		f.c.emit(Event{Kind: "firmware", Detail: "installed"})
		_ = os.Remove(f.image)
		f.set(StateIdle, ResultSuccess, "")
	}()
	return nil
}

// reset is the write of an empty Package URI (or Package): the download
// stops, the image and its partial state are deleted, State 0, Result 0.
// Not while Updating (4.05).
func (f *firmwareObject) reset() error {
	if f.st.State == StateUpdating {
		return fmt.Errorf("%w: reset while Updating", ErrMethodNotAllowed)
	}
	if f.cancel != nil {
		f.cancel()
		f.cancel = nil
		if d := f.dl; d != nil {
			f.mu.Unlock()
			<-d.Done()
			f.mu.Lock()
		}
		f.dl = nil
	}
	f.removeImage()
	f.set(StateIdle, ResultInitial, "")
	return nil
}

func (f *firmwareObject) removeImage() {
	for _, p := range []string{f.image, f.image + ".part", f.image + ".part.state"} {
		_ = os.Remove(p)
	}
}

// startDownload starts the download of f.st.URI, with f.mu held.
func (f *firmwareObject) startDownload() {
	opts := f.cfg.Download
	if opts.NewSocket == nil && f.c.cfg.NewSocket != nil {
		opts.NewSocket = f.c.cfg.NewSocket
	}
	if opts.GiveUpAfter == 0 {
		opts.GiveUpAfter = 10 * time.Minute
	}
	opts.Logger = f.c.log
	opts.Progress = nil
	ctx, cancel := context.WithCancel(f.ctx)
	d, err := f.c.dl.ToFile(ctx, f.st.URI, f.image, &opts)
	if err != nil {
		cancel()
		f.c.emit(Event{Kind: "firmware", Detail: "download failed to start: " + err.Error()})
		f.set(StateIdle, downloadResult(err), "")
		return // ToFile leaves nothing of its own; what is there is not ours to remove
	}
	f.dl, f.cancel = d, cancel
	f.c.emit(Event{Kind: "firmware", Detail: "downloading " + f.st.URI})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		err := d.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.dl != d {
			return // reset, or replaced
		}
		f.dl, f.cancel = nil, nil
		stopped := ctx.Err() != nil // the client stopped, before this download's own end
		cancel()
		switch {
		case err == nil:
			f.c.emit(Event{Kind: "firmware", Detail: "downloaded"})
			f.set(StateDownloaded, ResultInitial, f.st.URI)
		case stopped:
			// The client stopped: State 1 stays on disk, to resume.
		default:
			f.c.emit(Event{Kind: "firmware", Detail: "download failed: " + err.Error()})
			f.removeImage()
			f.set(StateIdle, downloadResult(err), "")
		}
	}()
}

// downloadResult maps a failed download to its Update Result.
func downloadResult(err error) int {
	var re *client.ResponseError
	var he *download.HTTPError
	switch {
	case errors.Is(err, download.ErrBadURL),
		errors.As(err, &re) && re.Code == coap.NotFound,
		errors.As(err, &he) && he.Code == 404:
		return ResultInvalidURI
	case errors.Is(err, download.ErrVerify), errors.Is(err, download.ErrResourceChanged), errors.Is(err, download.ErrUnverified),
		errors.Is(err, client.ErrETagChanged), errors.Is(err, client.ErrSizeMismatch):
		return ResultIntegrityFailure
	case errors.Is(err, download.ErrTooLarge), errors.Is(err, syscall.ENOSPC):
		return ResultNoStorage
	}
	return ResultConnectionLost
}

// set changes the state, saves it, and notifies observers of what
// changed; f.mu is held.
func (f *firmwareObject) set(state, result int, uri string) {
	old := f.st
	f.st = fwState{State: state, Result: result, URI: uri}
	if err := f.save(); err != nil {
		f.c.emit(Event{Kind: "error", Op: "firmware", Detail: "saving the state: " + err.Error()})
	}
	f.c.emit(Event{Kind: "firmware", Path: "/5/0", Detail: fmt.Sprintf("state %d result %d", state, result)})
	// Observers see each value as it was set, even one that lasts an
	// instant (State 3 on a quick install).
	if old.State != state {
		f.c.changedTo(content.ResourcePath(5, 0, resState), content.IntValue(int64(state)))
	}
	if old.Result != result {
		f.c.changedTo(content.ResourcePath(5, 0, resResult), content.IntValue(int64(result)))
	}
	if old.URI != uri {
		f.c.changedTo(content.ResourcePath(5, 0, resPackageURI), content.StringValue(uri))
	}
}

// save writes the state atomically.
func (f *firmwareObject) save() error {
	b, _ := json.Marshal(f.st)
	tmp := f.statePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.statePath)
}
