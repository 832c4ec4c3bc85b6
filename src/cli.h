/*
 * cli: the one-shot subcommands of SPEC §2, one file each: `fluxrelay match`
 * (match.c), `fluxrelay queue` (cli_queue.c) and `fluxrelay incidents`
 * (cli_incidents.c). Main thread only.
 */
#ifndef FLUXRELAY_CLI_H
#define FLUXRELAY_CLI_H

#include "conf.h"

/* fluxrelay match [EVENT.json ...]: exit 0 when at least one alert matched, else 1. */
int cli_match(const struct conf *c, int argc, char **argv);
/* fluxrelay queue list|retry|purge ...: exit code. */
int cli_queue(const struct conf *c, int argc, char **argv);
/* fluxrelay incidents [list] [--json] | close ID...|--all: exit code. */
int cli_incidents(const struct conf *c, int argc, char **argv);

#endif
