package media

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

func TestBitWriterExpGolomb(t *testing.T) {
	var w bitWriter
	w.ue(0)  // 1
	w.ue(1)  // 010
	w.ue(2)  // 011
	w.ue(3)  // 00100
	w.se(-1) // ue(2) = 011
	w.se(1)  // ue(1) = 010
	// 1 010 011 00100 011 010 + trailing 1 + pad: 1010 0110 0100 0110 1010 0000
	got := w.trailing()
	want := []byte{0xa6, 0x46, 0xa0}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestEmulationPrevention(t *testing.T) {
	for _, tc := range []struct{ in, out []byte }{
		{[]byte{0, 0, 0}, []byte{0, 0, 3, 0}},
		{[]byte{0, 0, 1, 0, 0, 2}, []byte{0, 0, 3, 1, 0, 0, 3, 2}},
		{[]byte{0, 0, 4}, []byte{0, 0, 4}},
		{[]byte{0, 0, 3}, []byte{0, 0, 3, 3}},
		{[]byte{1, 0, 0}, []byte{1, 0, 0}},
	} {
		got := emulationPreventionAdd(tc.in)
		if !bytes.Equal(got, tc.out) {
			t.Errorf("add(% x) = % x, want % x", tc.in, got, tc.out)
		}
		if back := emulationPreventionRemove(got); !bytes.Equal(back, tc.in) {
			t.Errorf("remove(% x) = % x, want % x", got, back, tc.in)
		}
	}
}

func TestSPSParsesWithConfiguredSize(t *testing.T) {
	for _, tc := range []struct{ w, h, fps, kbps int }{
		{1920, 1080, 25, 4000}, {640, 360, 25, 500}, {1280, 720, 30, 2000}, {176, 144, 10, 64}, {650, 362, 15, 300},
	} {
		e, err := newH264Encoder(tc.w, tc.h, tc.fps, tc.kbps, 0)
		if err != nil {
			t.Fatal(err)
		}
		var sps h264.SPS
		if err := sps.Unmarshal(e.sps); err != nil {
			t.Fatalf("%dx%d: SPS does not parse: %v", tc.w, tc.h, err)
		}
		if sps.Width() != tc.w || sps.Height() != tc.h {
			t.Errorf("SPS gives %dx%d, want %dx%d", sps.Width(), sps.Height(), tc.w, tc.h)
		}
		if sps.ProfileIdc != 66 {
			t.Errorf("profile_idc %d, want 66", sps.ProfileIdc)
		}
		if fps := sps.FPS(); fps != float64(tc.fps) {
			t.Errorf("SPS fps %v, want %d", fps, tc.fps)
		}
	}
}

func TestLevelFor(t *testing.T) {
	if l := levelFor(120*68, 25, 4000); l != 40 {
		t.Errorf("1080p25: level %d, want 40", l)
	}
	if l := levelFor(40*23, 25, 500); l != 30 {
		t.Errorf("360p25: level %d, want 30", l)
	}
}

// annexB encodes frames pictures (IDR every gop) into an Annex-B byte stream.
func annexB(t *testing.T, e *h264Encoder, frames, gop int) []byte {
	t.Helper()
	var out bytes.Buffer
	for i := range frames {
		idr := i%gop == 0
		au := [][]byte{timestampSEI(time.Now())}
		if idr {
			au = append(au, e.sps, e.pps)
		}
		slices := e.encodePicture(idr)
		if e.maxSliceBytes > 0 && idr && len(slices) < 2 {
			t.Fatalf("IDR in %d slice(s) despite a %d-byte limit", len(slices), e.maxSliceBytes)
		}
		for _, s := range slices {
			if e.maxSliceBytes > 0 && len(s) > e.maxSliceBytes {
				t.Fatalf("slice of %d bytes exceeds limit %d", len(s), e.maxSliceBytes)
			}
		}
		au = append(au, slices...)
		au = append(au, fillerNALs(3000, maxPayload)...)
		for _, n := range au {
			out.Write([]byte{0, 0, 0, 1})
			out.Write(n)
		}
	}
	return out.Bytes()
}

// decodeRaw decodes an Annex-B stream with ffmpeg into yuv420p frames and fails on any decoder
// message at level error.
func decodeRaw(t *testing.T, stream []byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.h264")
	if err := os.WriteFile(path, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-f", "h264", "-i", path,
		"-f", "rawvideo", "-pix_fmt", "yuv420p", "-")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg decode: %v: %s", err, stderr.String())
	}
	return stdout.Bytes()
}

// TestEncoderDecodesToThePicture decodes with ffmpeg and checks pixels: the background is grey,
// the square is where the encoder put it, and the trail it left is grey again.
func TestEncoderDecodesToThePicture(t *testing.T) {
	for _, tc := range []struct {
		name          string
		w, h          int
		maxSliceBytes int
	}{
		{"640x360 one slice", 640, 360, 0},
		{"1920x1080 one slice", 1920, 1080, 0},
		{"1920x1080 slices for mode 0", 1920, 1080, maxPayload},
		{"176x144 slices", 176, 144, 600},
		{"650x362 cropped", 650, 362, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := newH264Encoder(tc.w, tc.h, 25, 1000, tc.maxSliceBytes)
			if err != nil {
				t.Fatal(err)
			}
			const frames, gop = 12, 5
			raw := decodeRaw(t, annexB(t, e, frames, gop))
			fsize := tc.w * tc.h * 3 / 2
			if len(raw) != frames*fsize {
				t.Fatalf("decoded %d bytes, want %d frames of %d", len(raw), frames, fsize)
			}
			side := max(1, ((tc.w+15)/16)/30)
			wMBs, hMBs := (tc.w+15)/16, (tc.h+15)/16
			for i := range frames {
				f := raw[i*fsize : (i+1)*fsize]
				luma := func(x, y int) byte { return f[y*tc.w+x] }
				span := wMBs - side + 1
				sx, sy := (i%span)*16, ((hMBs-side)/2)*16
				if got := luma(sx+side*8, sy+side*8); got != 170 {
					t.Fatalf("frame %d: square centre luma %d, want 170", i, got)
				}
				if got := luma(0, 0); got != grey {
					t.Fatalf("frame %d: corner luma %d, want %d", i, got, grey)
				}
				if i > 0 && sx > 0 {
					if got := luma(sx-8, sy+8); got != grey {
						t.Fatalf("frame %d: trail luma %d, want %d", i, got, grey)
					}
				}
				if got := luma(tc.w-1, tc.h-1); got != grey {
					t.Fatalf("frame %d: bottom-right luma %d, want %d", i, got, grey)
				}
			}
		})
	}
}

func TestFillerNALs(t *testing.T) {
	total := 0
	for _, n := range fillerNALs(5000, 1400) {
		if len(n) > 1400 || n[0] != nalFiller || n[len(n)-1] != 0x80 {
			t.Fatalf("bad filler NAL: len %d header %x", len(n), n[0])
		}
		total += len(n)
	}
	if total < 4997 || total > 5000 {
		t.Fatalf("filler total %d, want about 5000", total)
	}
	if fillerNALs(2, 1400) != nil {
		t.Fatal("fillers for 2 bytes")
	}
}

func BenchmarkEncode1080p(b *testing.B) {
	e, err := newH264Encoder(1920, 1080, 25, 4000, 0)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		e.encodePicture(i%50 == 0)
	}
}
