// WS-Discovery check for camsim's Go tests (run inside a private network
// namespace): npm onvif@0.8.3's Discovery.probe multicasts a Probe and
// collects ProbeMatches for 1.5 s; prints them as one JSON array.
'use strict';
const { Discovery } = require('onvif');

Discovery.on('error', (err) => process.stderr.write('discovery error: ' + err + '\n'));
Discovery.probe({ timeout: 1500, resolve: false }, (err, matches) => {
	if (err) {
		process.stderr.write('probe errors: ' + JSON.stringify(String(err)) + '\n');
	}
	const out = (matches || []).map((m) => {
		const pm = m.probeMatches.probeMatch;
		return {
			urn: pm.endpointReference.address,
			xaddrs: pm.XAddrs,
			types: pm.types,
			scopes: pm.scopes,
		};
	});
	process.stdout.write(JSON.stringify(out) + '\n');
});
