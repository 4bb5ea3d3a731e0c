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
	"github.com/tether-iot/tether/internal/durable"
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

// fwState is /5's state as kept in StateDir/firmware.json.
type fwState struct {
	State  FirmwareState `json:"state"`
	Result UpdateResult  `json:"result"`
	URI    string        `json:"uri,omitempty"`
}

// firmwareObject is /5 Firmware Update; fwMoves (fwstate.go) is its
// machine. Its methods never wait: a download winds down, and its files
// are removed, on the download's own goroutine, and the next download
// starts only once the last one has let go of the image. Events are
// emitted once f.mu is released.
type firmwareObject struct {
	c         *Client
	cfg       Firmware
	image     string
	statePath string
	protocols []int64
	release   func() // of the lock on Dir

	// writeState saves the state durably; tests make it fail as a full
	// disk does.
	writeState func(path string, b []byte, perm os.FileMode) error

	mu      sync.Mutex
	st      fwState
	ctx     context.Context    // the client's Run
	gen     int                // counts downloads started and resets: a download's goroutine acts only while gen is its own
	cancel  context.CancelFunc // of the download in flight
	settled chan struct{}      // closed once the last download (or removal) let go of the image; nil: none ever ran
	wg      sync.WaitGroup
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
		image:      filepath.Join(cfg.Dir, "firmware.bin"),
		statePath:  filepath.Join(stateDir, "firmware.json"),
		writeState: durable.WriteFile,
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
		if err := json.Unmarshal(b, &f.st); err != nil || f.st.State < StateIdle || f.st.State > StateUpdating {
			// Written durably, so not a torn write of ours: a file someone
			// else left. A device that cannot start is worse than one
			// that starts from Idle.
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

// tell is what a firmware step tells once f.mu is released.
type tell []Event

func (t *tell) add(detail string) { *t = append(*t, Event{Kind: "firmware", Detail: detail}) }

// emit reports the events; f.mu is not held.
func (f *firmwareObject) emit(t tell) {
	for _, ev := range t {
		f.c.emit(ev)
	}
}

// start picks up where a previous run stopped: a download in State 1
// resumes; an Update the process did not live to see the end of counts as
// failed.
func (f *firmwareObject) start(ctx context.Context) {
	var t tell
	f.mu.Lock()
	f.ctx = ctx
	switch f.st.State {
	case StateDownloading:
		t.add("resuming the download of " + f.st.URI)
		f.startDownloadLocked(&t)
	case StateDownloaded:
		if _, err := os.Stat(f.image); err != nil {
			f.moveLocked(fwImageLost, ResultIntegrityFailure, "", &t)
		}
	case StateUpdating:
		f.moveLocked(fwInstallFailed, ResultUpdateFailed, f.st.URI, &t)
	}
	f.mu.Unlock()
	f.emit(t)
}

// stop ends a download in flight (its state stays on disk, to resume),
// waits for the object's goroutines, and lets go of Dir.
func (f *firmwareObject) stop() {
	f.mu.Lock()
	if f.cancel != nil {
		f.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.release()
}

// settle waits until every download and removal started so far has let
// go of the image (for tests).
func (f *firmwareObject) settle() {
	f.mu.Lock()
	ch := f.settled
	f.mu.Unlock()
	if ch != nil {
		<-ch
	}
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
	var t tell
	f.mu.Lock()
	err := f.writeLocked(res, v, &t)
	f.mu.Unlock()
	f.emit(t)
	return err
}

func (f *firmwareObject) writeLocked(res uint16, v content.Value, t *tell) error {
	switch res {
	case resPackage:
		if len(v.Bytes) > 0 {
			return ErrMethodNotAllowed // pull only: no push of the image itself
		}
		return f.resetLocked(t)
	case resPackageURI:
		uri := string(v.Bytes)
		if uri == "" {
			return f.resetLocked(t)
		}
		if _, err := fwNext(f.st.State, fwWriteURI); err != nil {
			return err
		}
		u, err := url.Parse(uri)
		if err != nil || len(uri) > 255 || u.Host == "" {
			f.moveLocked(fwRefuseURI, ResultInvalidURI, "", t)
			return fmt.Errorf("%w: invalid Package URI", ErrBadRequest)
		}
		if n, ok := schemes[u.Scheme]; !ok || (n == 1 && f.cfg.Download.DTLS == nil) {
			f.moveLocked(fwRefuseURI, ResultUnsupportedProtocol, "", t)
			return fmt.Errorf("%w: unsupported protocol %q", ErrBadRequest, u.Scheme)
		}
		if err := f.moveLocked(fwWriteURI, ResultInitial, uri, t); err != nil {
			// The state cannot be saved: the download does not start,
			// and Result says why (the write itself succeeded, as
			// Anjay answers it).
			f.moveLocked(fwRefuseURI, ResultNoStorage, "", t)
			return nil
		}
		f.startDownloadLocked(t)
		return nil
	}
	return ErrMethodNotAllowed
}

func (f *firmwareObject) Execute(inst, res uint16, _ []byte) error {
	if res != resUpdate {
		return ErrMethodNotAllowed
	}
	var t tell
	f.mu.Lock()
	err := f.moveLocked(fwUpdate, f.st.Result, f.st.URI, &t)
	if err == nil {
		ctx := f.ctx
		f.wg.Add(1)
		go f.install(ctx)
	}
	f.mu.Unlock()
	f.emit(t)
	return err
}

// install runs Install on its own goroutine, with no lock held.
func (f *firmwareObject) install(ctx context.Context) {
	defer f.wg.Done()
	f.c.emit(Event{Kind: "firmware", Detail: "installing " + f.image})
	err := f.cfg.Install(ctx, f.image)
	var t tell
	f.mu.Lock()
	if err != nil {
		t.add("install failed: " + err.Error())
		f.moveLocked(fwInstallFailed, ResultUpdateFailed, f.st.URI, &t)
	} else {
		t.add("installed")
		_ = os.Remove(f.image)
		f.moveLocked(fwInstalled, ResultSuccess, "", &t)
	}
	f.mu.Unlock()
	f.emit(t)
	if err == nil {
		// The device runs another version now: observers of /3/0/3 hear
		// it (read again, through Device.FirmwareVersionFunc).
		f.c.Changed(content.ResourcePath(3, 0, resFirmwareVersion))
	}
}

// resetLocked is the write of an empty Package URI (or Package): State 0,
// Result 0; the download stops and its files are removed once it has let
// go of them, on a goroutine: the request is answered at once. Not while
// Updating (4.05).
func (f *firmwareObject) resetLocked(t *tell) error {
	if _, err := fwNext(f.st.State, fwReset); err != nil {
		return err
	}
	f.gen++
	if f.cancel != nil {
		f.cancel()
		f.cancel = nil
	}
	prev := f.settled
	done := make(chan struct{})
	f.settled = done
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		f.removeImage()
	}()
	return f.moveLocked(fwReset, ResultInitial, "", t)
}

func (f *firmwareObject) removeImage() {
	for _, p := range []string{f.image, f.image + ".part", f.image + ".part.state"} {
		_ = os.Remove(p)
	}
}

// startDownloadLocked starts the download of f.st.URI on a goroutine,
// which first waits for the last download to let go of the image.
func (f *firmwareObject) startDownloadLocked(t *tell) {
	opts := f.cfg.Download
	if opts.NewSocket == nil && f.c.cfg.NewSocket != nil {
		opts.NewSocket = f.c.cfg.NewSocket
	}
	if opts.GiveUpAfter == 0 {
		opts.GiveUpAfter = 10 * time.Minute
	}
	opts.Logger = f.c.log
	opts.Progress = nil
	f.gen++
	gen, uri := f.gen, f.st.URI
	ctx, cancel := context.WithCancel(f.ctx)
	f.cancel = cancel
	prev := f.settled
	done := make(chan struct{})
	f.settled = done
	t.add("downloading " + uri)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		defer cancel()
		if prev != nil {
			<-prev
		}
		d, err := f.c.dl.ToFile(ctx, uri, f.image, &opts)
		if err == nil {
			err = d.Wait()
		}
		f.downloadEnded(gen, ctx, err)
	}()
}

// downloadEnded moves /5 on the end of download gen, unless a reset or
// the client's stop came first.
func (f *firmwareObject) downloadEnded(gen int, ctx context.Context, err error) {
	var t tell
	f.mu.Lock()
	defer func() { f.mu.Unlock(); f.emit(t) }()
	if f.gen != gen {
		return // reset: the reset's removal follows
	}
	f.cancel = nil
	switch {
	case err == nil:
		t.add("downloaded")
		if f.moveLocked(fwDownloaded, ResultInitial, f.st.URI, &t) != nil {
			// Downloaded cannot be saved: a restart would find State 1
			// and download again what the server was told is here.
			f.removeImage()
			f.moveLocked(fwDownloadFailed, ResultNoStorage, "", &t)
		}
	case ctx.Err() != nil:
		// The client stopped: State 1 stays on disk, to resume.
	default:
		t.add("download failed: " + err.Error())
		f.removeImage()
		f.moveLocked(fwDownloadFailed, downloadResult(err), "", &t)
	}
}

// downloadResult maps a failed download to its Update Result.
func downloadResult(err error) UpdateResult {
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

// errNotSaved refuses a move whose state cannot be saved.
var errNotSaved = errors.New("lwm2m: firmware state not saved")

// moveLocked moves /5 on event e, through fwMoves, with its new Result
// and URI: saved durably first, then notified to observers. A move the
// table refuses returns the error to answer the server with. A state that
// cannot be saved (a full disk) is handled so that what a restart finds
// agrees with what the server was told: Idle is saved by removing the
// file (no file is Idle), a failed install leaves Updating on disk (which
// a restart reads as a failed install), and any other move is refused
// with errNotSaved, the state unchanged. f.mu is held; what to tell goes
// to t.
func (f *firmwareObject) moveLocked(e fwEvent, result UpdateResult, uri string, t *tell) error {
	from := f.st.State
	to, err := fwNext(from, e)
	if err != nil {
		if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrMethodNotAllowed) {
			// Not a server's operation refused: a bug.
			f.c.log.Error(err.Error())
			if f.c.onFwMove != nil {
				f.c.onFwMove(from, from, false)
			}
		}
		return err
	}
	next := fwState{State: to, Result: result, URI: uri}
	b, _ := json.Marshal(next)
	if serr := f.writeState(f.statePath, b, 0o600); serr != nil {
		*t = append(*t, Event{Kind: "error", Op: "firmware", Detail: "saving the state: " + serr.Error()})
		switch {
		case to == StateIdle:
			if rerr := durable.Remove(f.statePath); rerr != nil {
				*t = append(*t, Event{Kind: "error", Op: "firmware", Detail: "removing the state: " + rerr.Error()})
			}
		case e == fwInstallFailed:
		default:
			return fmt.Errorf("%w: %v", errNotSaved, serr)
		}
	}
	old := f.st
	f.st = next
	if f.c.onFwMove != nil {
		f.c.onFwMove(from, to, true)
	}
	*t = append(*t, Event{Kind: "firmware", Path: "/5/0", Detail: fmt.Sprintf("state %d result %d", to, result)})
	// Observers see each value as it was set, even one that lasts an
	// instant (State 3 on a quick install). changedTo is the client's own
	// code (it takes obsMu and wakes the loop), never the user's.
	if old.State != to {
		f.c.changedTo(content.ResourcePath(5, 0, resState), content.IntValue(int64(to)))
	}
	if old.Result != result {
		f.c.changedTo(content.ResourcePath(5, 0, resResult), content.IntValue(int64(result)))
	}
	if old.URI != uri {
		f.c.changedTo(content.ResourcePath(5, 0, resPackageURI), content.StringValue(uri))
	}
	return nil
}
