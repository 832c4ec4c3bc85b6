/*
 * slack_json: a message payload (a jansson tree) to its bytes, as
 * json_dumps(j, JSON_COMPACT) writes them, byte for byte, in a fraction of
 * the time: jansson's writer checks and copies every character through a
 * callback, which was most of what rendering a message cost (bench/README.md,
 * "Templates"). Pure: no I/O, no logging, any thread.
 */
#ifndef FLUXRELAY_SLACK_JSON_H
#define FLUXRELAY_SLACK_JSON_H

#include <jansson.h>

#include "util.h"

/*
 * Append j's compact JSON to out: keys in the object's order, strings
 * escaped as jansson escapes them (\" \\ \b \f \n \r \t, other control
 * characters as \u00XX, nothing else). Returns 0, or -1 when json_dumps
 * would fail (a string that is not UTF-8, a NaN or infinite real); out then
 * holds part of the text and its length is to be reset by the caller.
 */
int slack_json_dump(struct util_buf *out, const json_t *j);

/* j's compact JSON as a new string (caller frees), NULL when json_dumps
 * would fail or j is NULL. */
char *slack_json_string(const json_t *j);

#endif
