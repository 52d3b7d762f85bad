/*
 * quality_config: a channel's `validation:` configuration (config.h) turned
 * into a ready validator (validate.h) with its user tables loaded.
 *
 * config_load builds one to check the configuration (so `tern config check`
 * reports unknown rules, datatypes, tables and bad segment structures with
 * their line), and the engine and `tern validate` build the one they use.
 */
#ifndef TERN_QUALITY_CONFIG_H
#define TERN_QUALITY_CONFIG_H

#include "base/tbuf.h"
#include "engine/config.h"
#include "quality/validate.h"

typedef struct quality_set quality_set;

/* Builds the validator for cv. NULL with the reason in err and the line of
 * the configuration it concerns in *line (0 when unknown). */
quality_set *quality_build(const config_validation *cv, tbuf *err, unsigned *line);
void quality_free(quality_set *q);
const validator *quality_validator(const quality_set *q);

#endif
