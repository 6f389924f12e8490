// Third-party ONVIF client check for camsim's Go tests: npm onvif@0.8.3's Cam
// connects (GetSystemDateAndTime, GetServices/GetCapabilities, GetProfiles,
// GetVideoSources), then reads device information and every profile's stream
// URI, and prints one JSON object on stdout. The connection settings, with
// the password, arrive as JSON on stdin so they never show in argv.
'use strict';
const { Cam } = require('onvif');

function fail(stage, err) {
	process.stdout.write(JSON.stringify({ error: String(err && err.message || err), stage }) + '\n');
	process.exit(1);
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
	const cfg = JSON.parse(input);
	const timer = setTimeout(() => fail('timeout', 'no answer within 20s'), 20000);
	const cam = new Cam({
		hostname: cfg.host, port: cfg.port, username: cfg.username, password: cfg.password,
		timeout: 10000,
	}, function(err) {
		if (err) { return fail('connect', err); }
		this.getDeviceInformation((err, info) => {
			if (err) { return fail('getDeviceInformation', err); }
			const profiles = (this.profiles || []).map((p) => ({
				token: p.$.token,
				name: p.name,
				encoding: p.videoEncoderConfiguration.encoding,
				width: Number(p.videoEncoderConfiguration.resolution.width),
				height: Number(p.videoEncoderConfiguration.resolution.height),
				fps: Number(p.videoEncoderConfiguration.rateControl.frameRateLimit),
				bitrate: Number(p.videoEncoderConfiguration.rateControl.bitrateLimit),
				sourceToken: p.videoSourceConfiguration.sourceToken,
			}));
			const uris = {};
			let pending = profiles.length;
			const done = () => {
				clearTimeout(timer);
				process.stdout.write(JSON.stringify({
					deviceInformation: info,
					profiles,
					streamUris: uris,
					mediaXAddr: this.uri && this.uri.media ? this.uri.media.href : '',
					activeSource: this.activeSource || null,
				}) + '\n');
			};
			if (pending === 0) { return done(); }
			profiles.forEach((p) => {
				this.getStreamUri({ protocol: 'RTSP', profileToken: p.token }, (err, res) => {
					if (err) { return fail('getStreamUri', err); }
					uris[p.token] = res.uri;
					if (--pending === 0) { done(); }
				});
			});
		});
	});
	cam.on('warning', (w) => process.stderr.write('onvif warning: ' + w + '\n'));
});
