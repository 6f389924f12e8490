#!/usr/bin/python3
"""A third-party RTSP camera for tests: GStreamer's RTSP server with Digest auth.

usage: gst_rtsp_camera.py PORT USER MOUNT   (the password is read from stdin,
so it never appears in argv). Prints READY once listening on 127.0.0.1:PORT.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    port, user, mount = sys.argv[1], sys.argv[2], sys.argv[3]
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
    factory.set_launch(
        "( videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=500 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
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
