/*
 * script: user-written Lua 5.4 filters and transforms, run in a sandbox.
 *
 * A script is one Lua source file compiled once into its own lua_State and
 * run per message, many times. The chunk itself is the per-message code: it
 * sees the message as the global `msg` (and as `...`). A filter returns true
 * (the message passes) or false, optionally followed by a reason string; a
 * transform edits the message in place through `msg` (docs/scripting.md has
 * the whole Lua API).
 *
 * Sandbox: the chunk runs in a fresh global table per run whose __index is a
 * read-only base environment with only safe functions (no io, os, require,
 * load*, dofile, package, debug, collectgarbage, string.dump); source text
 * only, bytecode is refused. Each run is bounded by an instruction count
 * (count hook) and the whole state by a memory limit (custom allocator); both
 * end the run with a clean error that pcall inside the script cannot swallow.
 * Globals a run sets are dropped before the next run.
 *
 * Errors carry the script's file name and line ("scripts/fix.lua:12: ...").
 * A script is not thread-safe: one script object per thread.
 */
#ifndef TERN_SCRIPT_H
#define TERN_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/tbuf.h"
#include "hl7/hl7.h"
#include "term/codemap.h"

typedef enum script_status {
    SCRIPT_OK = 0,
    SCRIPT_ERR_IO,           /* the file cannot be read */
    SCRIPT_ERR_SYNTAX,       /* the file does not compile, or is bytecode */
    SCRIPT_ERR_RUNTIME,      /* the script raised an error (bad path, nil index, ...) */
    SCRIPT_ERR_INSTRUCTIONS, /* the run exceeded its instruction limit */
    SCRIPT_ERR_MEMORY,       /* the script exceeded its memory limit */
    SCRIPT_ERR_RESULT,       /* a filter returned something other than a boolean */
    SCRIPT_ERR_LIMITS,       /* the configured limits are unusable */
} script_status;

/* Returns a static name for a status; never NULL. */
const char *script_strerror(script_status s);

/* `text` is what to put on the error queue: "path:line: what happened"
 * (the line is missing only for memory-limit errors and I/O errors). */
typedef struct script_error {
    script_status code;
    char text[512];
} script_error;

typedef struct script_limits {
    uint32_t max_instructions; /* Lua VM instructions per run, 1..INT32_MAX */
    size_t max_memory;         /* bytes for the whole Lua state, >= 256 KiB */
} script_limits;

#define SCRIPT_DEFAULT_MAX_INSTRUCTIONS 1000000u
#define SCRIPT_DEFAULT_MAX_MEMORY (16u << 20)

void script_limits_default(script_limits *lim);

typedef enum script_log_level {
    SCRIPT_LOG_DEBUG = 0,
    SCRIPT_LOG_INFO,
    SCRIPT_LOG_WARNING,
    SCRIPT_LOG_ERROR,
} script_log_level;

/* Called for every log(level, text) in a script and for warnings of map()
 * on unmapped codes (policy warning). text is NUL-terminated, valid only
 * during the call. */
typedef void (*script_log_fn)(void *ud, const char *script_path, script_log_level level,
                              const char *text, size_t len);

/* What the host offers the scripts. Borrowed by script_load until
 * script_free and read at every run, so the host may change `log_ud` (e.g.
 * to the current message's context) between runs. Every member may be NULL:
 * without maps, map() raises an error; without log, log() discards. */
typedef struct script_host {
    const codemap_registry *maps;
    script_log_fn log;
    void *log_ud;
} script_host;

typedef struct script script;

/* Reads and compiles the Lua source file at path. lim NULL means defaults;
 * host NULL means no maps and no log. On failure *out is NULL and err says
 * why (syntax errors as "path:line: ..."). */
script_status script_load(const char *path, const script_limits *lim, const script_host *host,
                          script **out, script_error *err);
/* The same from a buffer; `name` stands for the file name in errors. */
script_status script_load_buffer(const char *name, const char *src, size_t len,
                                 const script_limits *lim, const script_host *host, script **out,
                                 script_error *err);
void script_free(script *s);

/* The file name given to script_load (borrowed, never NULL). */
const char *script_path(const script *s);

/* Runs s as a filter on m, which it may read but not change. *pass is the
 * verdict; when the script returns false plus a string, the string is
 * appended to `reason` (may be NULL). A script that returns nothing or a
 * non-boolean is SCRIPT_ERR_RESULT. */
script_status script_run_filter(script *s, hl7_msg *m, bool *pass, tbuf *reason, script_error *err);

/* Runs s as a transform: the script edits m in place. On error m may hold
 * some of the script's edits; the caller sends the original on. */
script_status script_run_transform(script *s, hl7_msg *m, script_error *err);

/* Bytes the Lua state holds now (for tests and metrics). */
size_t script_memory_used(const script *s);

#endif
