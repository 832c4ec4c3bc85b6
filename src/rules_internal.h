/*
 * rules_internal: rules' entry points for its unit test
 * (tests/unit/test_rules.c), not part of its interface (rules.h). Pure; any
 * thread.
 */
#ifndef FLUXRELAY_RULES_INTERNAL_H
#define FLUXRELAY_RULES_INTERNAL_H

#include "rules.h"

/* The conf r was compiled from (borrowed: it outlives r). */
const struct conf *rules_conf(const struct rules *r);

#endif
