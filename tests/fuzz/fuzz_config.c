/* Fuzz target for core/config: any bytes go to config_parse(); a success
 * must describe a usable config, a failure must leave nothing behind and
 * say where. The parse helpers for durations and sizes get the input too. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_zero(const struct config *cfg)
{
	static const struct config zero;
	return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char *err = NULL;

	if (config_parse("fuzz.conf", (const char *)data, size, &cfg, &err) == 0) {
		CHECK(err == NULL);
		CHECK(cfg.path != NULL && strcmp(cfg.path, "fuzz.conf") == 0);
		CHECK(cfg.hostname != NULL && cfg.data_dir != NULL && cfg.log_facility != NULL);
		CHECK(cfg.n_domains > 0 && cfg.n_listens > 0);
		CHECK((cfg.tls_cert == NULL) == (cfg.tls_key == NULL));
		for (size_t i = 0; i < cfg.n_domains; i++)
			CHECK(cfg.domains[i] != NULL && cfg.domains[i][0] != '\0');
		for (size_t i = 0; i < cfg.n_listens; i++) {
			CHECK(cfg.listens[i].host != NULL);
			CHECK(cfg.listens[i].port >= 1 && cfg.listens[i].port <= 65535);
			CHECK((unsigned)cfg.listens[i].kind < LISTENER_KIND_COUNT);
		}
		CHECK(cfg.smtp_line_max >= 1000 && cfg.pop3_line_max >= 255 && cfg.imap_line_max >= 1024);
		CHECK(cfg.max_connections > 0 && cfg.max_connections_per_ip > 0 && cfg.max_bad_commands > 0);
	} else {
		CHECK(err != NULL && strncmp(err, "fuzz.conf", 9) == 0);
		CHECK(strlen(err) < 1024); /* user text in errors is cut short */
		CHECK(is_zero(&cfg));
		free(err);
	}
	config_free(&cfg);
	CHECK(is_zero(&cfg));
	config_free(&cfg); /* twice is safe */

	if (size < 64) {
		char text[64];
		uint64_t n;
		memcpy(text, data, size);
		text[size] = '\0';
		if (config_parse_duration(text, &n) == 0)
			CHECK(n % 1000 == 0);
		(void)config_parse_size(text, &n);
	}
	return 0;
}
