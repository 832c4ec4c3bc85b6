/*
 * fuzz_import: libFuzzer harness for `fluxrelay import`'s conversion,
 * import_map_convert() (YAML bytes -> config text), run twice per input:
 * with secrets referenced as *_env variables and with a secrets directory.
 *
 * Checked properties (abort() when one breaks), besides ASan/UBSan/LSan:
 *   - the status is 0, 1 (nothing imported) or 65 (invalid YAML);
 *   - messages are '\n'-terminated lines, each starting with the input's
 *     name and holding no control character (they go to a terminal);
 *   - a config is returned exactly when the status is 0, and secret files
 *     only then, and only with a directory; file names have no '/' and are
 *     never "." or "..";
 *   - the config is valid libconfig, its providers and alerts lists have as
 *     many entries as the result counts, each with a name conf accepts.
 * Pure: nothing is written anywhere. Single-threaded.
 */
#include <libconfig.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import_map.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_IMPORT_NAME "fuzz.yaml"

static void
fuzz_import_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_import: property violated: %s\n%s%s", what, detail ? detail : "",
	    detail && *detail && detail[strlen(detail) - 1] != '\n' ? "\n" : "");
	abort();
}

static void
fuzz_import_check_messages(const char *m)
{
	size_t nlen = strlen(FUZZ_IMPORT_NAME);
	if (m == NULL)
		fuzz_import_fail("no messages", NULL);
	if (*m != '\0' && m[strlen(m) - 1] != '\n')
		fuzz_import_fail("messages do not end in a newline", m);
	for (const char *line = m; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		if (strncmp(line, FUZZ_IMPORT_NAME, nlen) != 0 || line[nlen] != ':')
			fuzz_import_fail("a message does not start with the input's name", m);
		for (const char *p = line; p < nl; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				fuzz_import_fail("a control character in a message", m);
		line = nl + 1;
	}
}

static void
fuzz_import_check_list(const config_t *cfg, const char *path, size_t want, const char *text)
{
	const config_setting_t *l = config_lookup(cfg, path);
	if (l == NULL || !config_setting_is_list(l) || (size_t)config_setting_length(l) != want)
		fuzz_import_fail("a list does not hold the imported entries", text);
	for (size_t i = 0; i < want; i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const char *name = NULL;
		if (!config_setting_lookup_string(e, "name", &name) || !import_map_name_ok(name))
			fuzz_import_fail("an entry without a valid name", text);
	}
}

static void
fuzz_import_once(const uint8_t *data, size_t size, const char *dir)
{
	struct import_map_input in = { FUZZ_IMPORT_NAME, (const char *)data, size };
	struct import_map_result r;
	int rc = import_map_convert(&in, 1, dir, &r);
	if (rc != 0 && rc != IMPORT_MAP_EXIT_NOTHING && rc != IMPORT_MAP_EXIT_DATAERR)
		fuzz_import_fail("unexpected status", NULL);
	fuzz_import_check_messages(r.messages);
	if ((rc == 0) != (r.config != NULL))
		fuzz_import_fail("a config without success, or success without a config", r.messages);
	if (r.nsecrets > 0 && (rc != 0 || dir == NULL))
		fuzz_import_fail("secret files without success or without a directory", r.messages);
	for (size_t i = 0; i < r.nsecrets; i++) {
		const char *f = r.secrets[i].file;
		if (*f == '\0' || strchr(f, '/') != NULL || strcmp(f, ".") == 0 || strcmp(f, "..") == 0)
			fuzz_import_fail("a secret file name that is not a plain name", f);
	}
	if (rc == 0) {
		if (r.nalerts == 0 || r.nproviders == 0)
			fuzz_import_fail("success with no alert or provider", r.config);
		config_t cfg;
		config_init(&cfg);
		if (config_read_string(&cfg, r.config) != CONFIG_TRUE) {
			fprintf(stderr, "line %d: %s\n", config_error_line(&cfg), config_error_text(&cfg));
			fuzz_import_fail("the config is not valid libconfig", r.config);
		}
		fuzz_import_check_list(&cfg, "providers", r.nproviders, r.config);
		fuzz_import_check_list(&cfg, "alerts", r.nalerts, r.config);
		config_destroy(&cfg);
	}
	import_map_result_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_import_once(data, size, NULL);
	fuzz_import_once(data, size, "/run/fuzz \"secrets\"\\dir");
	return 0;
}
