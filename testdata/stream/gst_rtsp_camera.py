#!/usr/bin/python3
"""A third-party RTSP camera for tests: GStreamer's RTSP server with Digest auth.

usage: gst_rtsp_camera.py PORT USER MOUNT [TRACKS]   (the password is read
from stdin, so it never appears in argv). Prints READY once listening on
127.0.0.1:PORT. TRACKS joins presets with "+" (default "h264"), e.g.
"h265+aac": one media per preset, each a real encoder and payloader.
"""
import struct
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


# Small pictures and low rates: x265 on a shared 2-core box must stay cheap.
V = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 ! "
A = "audiotestsrc is-live=true wave=ticks ! "
PRESETS = {
    # The original camera: 640x360 H.264 at 25 fps.
    "h264": "videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=500 "
    "! rtph264pay name=pay{n} pt={pt} config-interval=1",
    # B-frames: RTP timestamps (PTS) are not monotonic.
    "h264b": V + "x264enc speed-preset=ultrafast bframes=2 b-adapt=false key-int-max=10 bitrate=300 "
    "! video/x-h264,profile=main ! rtph264pay name=pay{n} pt={pt} config-interval=1",
    "h265": V + "x265enc speed-preset=ultrafast tune=zerolatency key-int-max=10 bitrate=300 "
    "! rtph265pay name=pay{n} pt={pt} config-interval=1",
    # Packets far above 1472 bytes: single NAL units up to 16000 bytes.
    "h265big": "videotestsrc is-live=true pattern=snow ! video/x-raw,width=320,height=240,framerate=10/1 "
    "! x265enc speed-preset=ultrafast tune=zerolatency key-int-max=10 bitrate=2000 "
    "! rtph265pay name=pay{n} pt={pt} config-interval=1 mtu=16000",
    "h264big": "videotestsrc is-live=true pattern=snow ! video/x-raw,width=320,height=240,framerate=10/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=2000 "
    "! rtph264pay name=pay{n} pt={pt} config-interval=1 mtu=16000",
    # Switches from 320x240 to 480x272 three seconds in: x265 sends new VPS/SPS/PPS in-band.
    "h265switch": "videotestsrc is-live=true ! video/x-raw,framerate=10/1 ! videoscale "
    "! capsfilter name=switchcaps caps=video/x-raw,width=320,height=240 "
    "! x265enc speed-preset=ultrafast tune=zerolatency key-int-max=10 bitrate=300 "
    "! rtph265pay name=pay{n} pt={pt} config-interval=1",
    "mjpeg": "videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=5/1 "
    "! jpegenc quality=50 ! rtpjpegpay name=pay{n} pt=26",
    "aac": A + "audio/x-raw,rate=16000,channels=1 ! audioconvert ! avenc_aac "
    "! rtpmp4gpay name=pay{n} pt={pt}",
    "latm": A + "audio/x-raw,rate=16000,channels=1 ! audioconvert ! avenc_aac "
    "! rtpmp4apay name=pay{n} pt={pt}",
    "pcmu": A + "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay{n}",
    "pcma": A + "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay{n}",
    "g722": A + "audio/x-raw,rate=16000,channels=1 ! avenc_g722 ! rtpg722pay name=pay{n}",
    "g726": A + "audio/x-raw,rate=8000,channels=1 ! avenc_g726 bitrate=32000 ! rtpg726pay name=pay{n} pt={pt}",
    "opus": A + "audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=32000 ! rtpopuspay name=pay{n} pt={pt}",
    "l16": A + "audio/x-raw,format=S16BE,rate=16000,channels=1,layout=interleaved ! rtpL16pay name=pay{n} pt={pt}",
    # ONVIF metadata (no GStreamer payloader ships here): an appsrc named like
    # a payloader, fed RTP packets carrying tt:MetadataStream XML (see feed_metadata).
    "onvif": "appsrc name=pay{n} is-live=true do-timestamp=true format=time "
    "caps=\"application/x-rtp,media=application,clock-rate=90000,"
    "encoding-name=VND.ONVIF.METADATA,payload={pt}\"",
}

METADATA = (
    '<?xml version="1.0" encoding="UTF-8"?><tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema">'
    '<tt:Event><wsnt:NotificationMessage xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2">'
    '<wsnt:Message><tt:Message UtcTime="2026-12-02T12:00:{sec:02d}Z"><tt:Data>'
    '<tt:SimpleItem Name="IsMotion" Value="{motion}"/></tt:Data></tt:Message></wsnt:Message>'
    "</wsnt:NotificationMessage></tt:Event></tt:MetadataStream>"
)


def feed_metadata(media):
    """Pushes one RTP packet of metadata XML every 200 ms into each onvif appsrc."""
    element = media.get_element()
    for n in range(8):
        src = element.get_by_name("pay%d" % n)
        if src is None or src.get_factory().get_name() != "appsrc":
            continue
        pt = 96 + n
        state = {"seq": 1, "n": 0}

        def push(src=src, pt=pt, state=state):
            body = METADATA.format(sec=state["n"] % 60, motion="true" if state["n"] % 2 else "false").encode()
            ts = (state["n"] * 18000) & 0xFFFFFFFF
            hdr = struct.pack("!BBHII", 0x80, 0x80 | pt, state["seq"] & 0xFFFF, ts, 0x0F0F0F0F)
            state["seq"] += 1
            state["n"] += 1
            return src.emit("push-buffer", Gst.Buffer.new_wrapped(hdr + body)) == Gst.FlowReturn.OK

        GLib.timeout_add(200, push)


def schedule_switch(media):
    caps = media.get_element().get_by_name("switchcaps")
    if caps is None:
        return

    def switch():
        caps.set_property("caps", Gst.Caps.from_string("video/x-raw,width=480,height=272"))
        return False

    GLib.timeout_add_seconds(3, switch)


def launch(tracks):
    parts = []
    for n, name in enumerate(tracks.split("+")):
        parts.append(PRESETS[name].format(n=n, pt=96 + n))
    return "( " + "  ".join(parts) + " )"


def main():
    port, user, mount = sys.argv[1], sys.argv[2], sys.argv[3]
    tracks = sys.argv[4] if len(sys.argv) > 4 else "h264"
    password = sys.stdin.readline().rstrip("\n")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)

    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, user)
    auth.add_digest(user, password, token)
    server.set_auth(auth)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch(tracks))
    if "onvif" in tracks.split("+"):
        factory.connect("media-configure", lambda _f, media: feed_metadata(media))
    if "h265switch" in tracks.split("+"):
        factory.connect("media-configure", lambda _f, media: schedule_switch(media))
    factory.set_shared(False)  # one pipeline per client: no shared-media 503s
    factory.add_role_from_structure(
        Gst.Structure.from_string(
            "%s, media.factory.access=(boolean)true, media.factory.construct=(boolean)true" % user
        )[0]
    )
    server.get_mount_points().add_factory("/" + mount, factory)
    if server.attach(None) == 0:
        print("ATTACH FAILED", flush=True)
        sys.exit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
