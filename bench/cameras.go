package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// CamerasResult is the many-cameras scenario: many camsim cameras, each
// read by a few raw readers, through one daemon.
type CamerasResult struct {
	Cameras          int `json:"cameras"`
	KbpsPerCamera    int `json:"kbps_per_camera"`
	ReadersPerCamera int `json:"readers_per_camera"`
	// Fanout holds the window's figures over all readers (Readers is the total).
	Fanout FanoutResult `json:"fanout"`
	// Per camera: the daemon's cores and RSS above the daemon with no
	// camera, divided by the cameras.
	CoresPerCamera float64 `json:"cores_per_camera"`
	RSSPerCameraKB float64 `json:"rss_per_camera_kb"`
	EmptyRSSKB     int64   `json:"empty_rss_kb"` // the daemon before any camera
	Error          string  `json:"error,omitempty"`
}

// runCameras starts its own camsim with o.Cameras cameras at
// o.CameraKbps, adds them all to a fresh daemon and reads each with
// o.CameraReaders raw readers.
func runCameras(ctx context.Context, o *Options) (res CamerasResult) {
	res.Cameras, res.KbpsPerCamera, res.ReadersPerCamera = o.Cameras, o.CameraKbps, o.CameraReaders
	fail := func(err error) CamerasResult {
		res.Error = err.Error()
		return res
	}
	dir, err := os.MkdirTemp(o.WorkDir, "cameras-")
	if err != nil {
		return fail(err)
	}
	cam, err := startCamsim(ctx, o.BinDir, dir, o.Cameras, "admin", o.cameraPassword,
		"--discovery-interfaces", "none", "--discovery-port", "0", "--main-kbps", fmt.Sprint(o.CameraKbps))
	if err != nil {
		return fail(err)
	}
	defer cam.stop()
	pw := secret()
	keyFile, err := prepareState(ctx, dir, []readerUser{{"viewer", pw, "*"}})
	if err != nil {
		return fail(err)
	}
	d, err := startDaemon(ctx, o.BinDir, dir, "--key-file", keyFile)
	if err != nil {
		return fail(err)
	}
	defer d.stop()
	empty, err := settledRSS(ctx, d.pid())
	if err != nil {
		return fail(err)
	}
	res.EmptyRSSKB = empty.RSSKB
	var paths []string
	for i := range o.Cameras {
		name := fmt.Sprintf("cam%02d", i)
		if err := d.addCamera(ctx, name, cam.main[i], "admin", o.cameraPassword); err != nil {
			return fail(err)
		}
		paths = append(paths, name+"/main")
	}
	f := FanoutResult{Readers: o.Cameras * o.CameraReaders, Client: "raw", Server: "camwarden"}
	f = measureFanoutPaths(ctx, o, f, d.pid(), d.metrics, cam, d.rtsp, strings.Join(paths, ","), "viewer", pw)
	res.Fanout = f
	if f.Error != "" {
		return fail(fmt.Errorf("%s", f.Error))
	}
	res.CoresPerCamera = f.DaemonCores / float64(o.Cameras)
	res.RSSPerCameraKB = float64(f.RSSKB-empty.RSSKB) / float64(o.Cameras)
	return res
}
