/*
 * Fuzz the session driver with each protocol: arbitrary client bytes in
 * arbitrary chunks, effects performed as the glue would (STARTTLS becomes an
 * immediate "handshake done"). The first input byte picks the listener kind
 * and the chunk size.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/server.h"
#include "core/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	static int ready;

	if (!ready) {
		config_dev_setup(&cfg);
		cfg.smtp_line_max = 1000;
		cfg.imap_line_max = 1024;
		cfg.pop3_line_max = 255;
		ready = 1;
	}
	if (size < 1)
		return 0;
	enum listener_kind kind = (enum listener_kind)(data[0] % LISTENER_KIND_COUNT);
	size_t chunk = (size_t)(data[0] >> 3) + 1;
	data++;
	size--;

	struct session_params p = {
		.cfg = &cfg, .kind = kind, .id = 1, .peer = "127.0.0.1", .peer_loopback = true,
		.tls = listener_kind_implicit_tls(kind),
	};
	struct session *s = session_new(server_proto_for(kind), &p);
	session_start(s);
	for (size_t off = 0; off < size;) {
		size_t n = size - off < chunk ? size - off : chunk;
		enum session_effect e = session_feed(s, data + off, n);
		off += n;
		while (e == SESSION_EFFECT_STARTTLS)
			e = session_tls_started(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
		buf_reset(session_output(s));
		if (e == SESSION_EFFECT_CLOSE)
			break;
	}
	session_timeout(s);
	session_shutdown(s);
	session_free(&s);
	return 0;
}
