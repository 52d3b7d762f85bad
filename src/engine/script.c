/*
 * script: the Lua sandbox for filters and transforms (see script.h).
 *
 * One lua_State per script. Its extra space holds the script pointer, so
 * every C function reaches the run state without upvalues. The registry
 * keeps the compiled chunk and the metatable of the per-run environments;
 * the base environment (safe functions, read-only proxies of string, table,
 * math, utf8, plus msg, map and log) is that metatable's __index.
 *
 * Segment handles must survive inserts and deletes that shift positions, so
 * each run gives every segment a unique id: uids[i] is the id of segment i,
 * kept in step with the message by every Lua-side edit (invariant: nuids ==
 * hl7_seg_count(msg) during a run). A handle is a light userdata whose
 * value is the run generation and the uid (nothing to allocate or collect;
 * equal handles are equal values); all light userdata share the handles'
 * metatable, and no other light userdata reaches scripts. Handles of an
 * earlier run are refused.
 *
 * Limits: the allocator refuses growth past max_memory (Lua then raises a
 * memory error after an emergency collection); the count hook fires after
 * max_instructions and then re-arms itself at every instruction, so a pcall
 * inside the script cannot swallow the limit. __gc metamethods are refused
 * so that no script code runs outside a run.
 */
#include "engine/script.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "base/mem.h"

#define MSG_MT "tern.msg"
#define SEG_MT "tern.segment"
#define MSG_OBJ "tern.msg.object"
#define MIN_MEMORY (256u << 10)

struct script {
    lua_State *L;
    char *path;
    script_limits lim;
    const script_host *host; /* borrowed; may be NULL */
    size_t mem_used;
    bool mem_refused;   /* the allocator said no during this run */
    bool insn_exceeded; /* the count hook fired during this run */
    int chunk_ref, envmt_ref, seg_mt_ref;
    const void *msg_obj; /* the `msg` userdata, to recognise it cheaply */
    /* The handle keys as the state's interned strings (held by the registry,
     * so the same text is always the same pointer): seg_index() compares
     * pointers first. */
    const char *key_get, *key_set, *key_id, *key_index, *key_occurrence;
    const codemap *map_found; /* lua_map(): the map found last in this run (host->maps holds it) */
    /* run state */
    hl7_msg *msg; /* NULL between runs */
    bool read_only;
    uint32_t gen;
    uint32_t *uids;
    size_t nuids, uidcap;
    uint32_t next_uid;
    tbuf scratch;
    uint32_t last_uid, last_pos; /* uid_pos(): the uid found last and where */
};

/* A handle's value: generation and uid in 64 bits. */
_Static_assert(sizeof(uintptr_t) >= 8, "segment handles need 64-bit pointers");

static void *handle_value(uint32_t gen, uint32_t uid)
{
    return (void *)(uintptr_t)((uint64_t)gen << 32 | uid);
}

/* The snapshot a segments() loop walks: uid and position when it started. */
typedef struct seg_iter_item {
    uint32_t uid, hint;
} seg_iter_item;

typedef struct seg_iter {
    uint32_t gen, pos, n;
    seg_iter_item items[];
} seg_iter;

const char *script_strerror(script_status s)
{
    switch (s) {
    case SCRIPT_OK:
        return "ok";
    case SCRIPT_ERR_IO:
        return "cannot read the script";
    case SCRIPT_ERR_SYNTAX:
        return "script does not compile";
    case SCRIPT_ERR_RUNTIME:
        return "script error";
    case SCRIPT_ERR_INSTRUCTIONS:
        return "script exceeded its instruction limit";
    case SCRIPT_ERR_MEMORY:
        return "script exceeded its memory limit";
    case SCRIPT_ERR_RESULT:
        return "filter returned no boolean";
    case SCRIPT_ERR_LIMITS:
        return "unusable script limits";
    }
    return "unknown script status";
}

void script_limits_default(script_limits *lim)
{
    lim->max_instructions = SCRIPT_DEFAULT_MAX_INSTRUCTIONS;
    lim->max_memory = SCRIPT_DEFAULT_MAX_MEMORY;
}

static script_status fail(script_error *err, script_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static script_status fail(script_error *err, script_status code, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

static script *script_of(lua_State *L)
{
    return *(script **)lua_getextraspace(L);
}

/* --- limits ---------------------------------------------------------------- */

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    script *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->mem_used - old + nsize > s->lim.max_memory) {
        s->mem_refused = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    s->mem_used = s->mem_used - old + nsize;
    return p;
}

/* Current line of the innermost Lua function, or 0. */
static int current_line(lua_State *L)
{
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "l", &ar) && ar.currentline > 0) return ar.currentline;
    }
    return 0;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    script *s = script_of(L);
    s->insn_exceeded = true;
    /* Fire again at the next instruction, wherever a pcall lands. */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    lua_pushfstring(L, "%s:%d: script exceeded its instruction limit (%d instructions)", s->path,
                    current_line(L), (int)s->lim.max_instructions);
    lua_error(L);
}

/* Error handler of every run: makes sure the message is a string that
 * starts with the script's file name. */
static int error_handler(lua_State *L)
{
    script *s = script_of(L);
    const char *m = lua_tostring(L, 1);
    if (!m) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            m = lua_tostring(L, -1);
        else
            m = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (strncmp(m, s->path, strlen(s->path)) && strncmp(m, "...", 3)) {
        int line = current_line(L);
        if (line > 0)
            lua_pushfstring(L, "%s:%d: %s", s->path, line, m);
        else
            lua_pushfstring(L, "%s: %s", s->path, m);
    }
    return 1;
}

/* --- segment ids ------------------------------------------------------------ */

static void uids_reset(script *s)
{
    size_t n = hl7_seg_count(s->msg);
    s->uids = xgrow(s->uids, &s->uidcap, n + 1, sizeof(*s->uids));
    for (size_t i = 0; i < n; i++)
        s->uids[i] = (uint32_t)i + 1;
    s->nuids = n;
    s->next_uid = (uint32_t)n + 1;
}

static void uids_insert(script *s, size_t at, size_t count)
{
    s->uids = xgrow(s->uids, &s->uidcap, s->nuids + count, sizeof(*s->uids));
    memmove(&s->uids[at + count], &s->uids[at], (s->nuids - at) * sizeof(*s->uids));
    for (size_t i = 0; i < count; i++)
        s->uids[at + i] = s->next_uid++;
    s->nuids += count;
}

static void uids_remove(script *s, size_t at)
{
    memmove(&s->uids[at], &s->uids[at + 1], (s->nuids - at - 1) * sizeof(*s->uids));
    s->nuids--;
}

/* Position of uid now, or -1 when its segment was deleted. */
static long uid_find(script *s, uint32_t uid, uint32_t *hint)
{
    if (*hint < s->nuids && s->uids[*hint] == uid) return *hint;
    for (size_t i = 0; i < s->nuids; i++) {
        if (s->uids[i] == uid) {
            *hint = (uint32_t)i;
            return (long)i;
        }
    }
    return -1;
}

/* --- the msg object ------------------------------------------------------------ */

static script *check_run(lua_State *L)
{
    script *s = script_of(L);
    if (!s->msg) luaL_error(L, "msg can only be used while a message is processed");
    return s;
}

static script *check_msg(lua_State *L)
{
    script *s = check_run(L);
    if (lua_touserdata(L, 1) != s->msg_obj) luaL_typeerror(L, 1, "msg (call methods with ':')");
    return s;
}

/* A segment id argument: exactly three characters. */
static const char *check_seg_id(lua_State *L, int arg)
{
    size_t len;
    const char *id = luaL_checklstring(L, arg, &len);
    if (len != 3) luaL_error(L, "segment id '%s' must be three characters", id);
    return id;
}

static void check_writable(lua_State *L, script *s, const char *what)
{
    if (s->read_only)
        luaL_error(L, "%s: a filter cannot change the message (use a transform)", what);
}

static void parse_path(lua_State *L, const char *text, hl7_path *p)
{
    hl7_error e;
    if (hl7_path_parse(text, p, &e) != HL7_OK) luaL_error(L, "bad path '%s': %s", text, e.text);
}

/* Pushes the value at p in segment `index` (p->seg and p->seg_occ are not
 * used; the rest as hl7_get): nil when absent, "" when empty, '""' for the
 * HL7 null, else the decoded text. */
static int push_value(lua_State *L, script *s, long index, const hl7_path *p)
{
    hl7_span v;
    hl7_presence pr = HL7_ABSENT;
    if (index >= 0)
        pr = hl7_raw(s->msg, (uint32_t)index, p->field, p->field ? (p->rep ? p->rep : 1) : 0,
                     p->comp, p->comp ? p->sub : 0, &v);
    switch (pr) {
    case HL7_ABSENT:
        lua_pushnil(L);
        break;
    case HL7_EMPTY:
        lua_pushliteral(L, "");
        break;
    case HL7_NULL_VALUE:
        lua_pushliteral(L, "\"\"");
        break;
    case HL7_VALUE:
        if (p->field <= 2 && !strcmp(hl7_seg_at(s->msg, (uint32_t)index)->id, "MSH")) {
            lua_pushlstring(L, v.p, v.len); /* the delimiters, never unescaped */
            break;
        }
        if (hl7_plain_prefix(v.p, v.len, hl7_delims_of(s->msg)->esc) == v.len) {
            /* decoding changes nothing */
            lua_pushlstring(L, v.p, v.len);
            break;
        }
        tbuf_reset(&s->scratch);
        hl7_unescape(hl7_delims_of(s->msg), hl7_charset_of(s->msg), v.p, v.len, &s->scratch);
        lua_pushlstring(L, s->scratch.p ? s->scratch.p : "", s->scratch.len);
        break;
    }
    return 1;
}

static const char *check_value(lua_State *L, int arg, const char *path, size_t *len)
{
    int t = lua_type(L, arg);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "value for %s is %s; give a string (\"\" to clear it)", path,
                   luaL_typename(L, arg));
    return lua_tolstring(L, arg, len);
}

/* hl7_set, keeping uids in step with the segments it may create: they go
 * after the last segment of that id, or at the end. */
static void set_tracked(lua_State *L, script *s, const hl7_path *p, const char *v, size_t vlen)
{
    size_t before = hl7_seg_count(s->msg);
    uint32_t have = hl7_seg_occurrences(s->msg, p->seg);
    long last = have ? hl7_seg_find(s->msg, p->seg, have) : -1;
    hl7_error e;
    if (hl7_set(s->msg, p, v, vlen, &e) != HL7_OK) {
        char shown[80];
        luaL_error(L, "cannot set %s: %s", hl7_path_format(p, shown, sizeof(shown)), e.text);
    }
    size_t added = hl7_seg_count(s->msg) - before;
    if (added) uids_insert(s, last >= 0 ? (size_t)last + 1 : before, added);
}

static int msg_get(lua_State *L)
{
    script *s = check_msg(L);
    hl7_path p;
    parse_path(L, luaL_checkstring(L, 2), &p);
    return push_value(L, s, hl7_seg_find(s->msg, p.seg, p.seg_occ ? p.seg_occ : 1), &p);
}

static int msg_set(lua_State *L)
{
    script *s = check_msg(L);
    check_writable(L, s, "msg:set");
    const char *path = luaL_checkstring(L, 2);
    hl7_path p;
    parse_path(L, path, &p);
    size_t len;
    const char *v = check_value(L, 3, path, &len);
    set_tracked(L, s, &p, v, len);
    return 0;
}

static int msg_count(lua_State *L)
{
    script *s = check_msg(L);
    if (lua_isnoneornil(L, 2))
        lua_pushinteger(L, (lua_Integer)hl7_seg_count(s->msg));
    else
        lua_pushinteger(L, (lua_Integer)hl7_seg_occurrences(s->msg, check_seg_id(L, 2)));
    return 1;
}

static int msg_type(lua_State *L)
{
    script *s = check_msg(L);
    hl7_path p = {.seg = "MSH", .seg_occ = 1, .field = 9, .rep = 1, .comp = 1};
    tbuf_reset(&s->scratch);
    hl7_get(s->msg, &p, &s->scratch);
    size_t first = s->scratch.len;
    tbuf_putc(&s->scratch, '^');
    p.comp = 2;
    if (hl7_get(s->msg, &p, &s->scratch) != HL7_VALUE) s->scratch.len = first;
    lua_pushlstring(L, s->scratch.p, s->scratch.len);
    return 1;
}

static int msg_raw(lua_State *L)
{
    script *s = check_msg(L);
    tbuf_reset(&s->scratch);
    hl7_serialize(s->msg, &s->scratch);
    lua_pushlstring(L, s->scratch.p ? s->scratch.p : "", s->scratch.len);
    return 1;
}

static void push_handle(lua_State *L, script *s, uint32_t uid)
{
    lua_pushlightuserdata(L, handle_value(s->gen, uid));
}

/* The uid of the segment handle at arg (checked to be of this run), or a
 * Lua error. */
static uint32_t to_handle(lua_State *L, int arg, script *s)
{
    if (lua_type(L, arg) != LUA_TLIGHTUSERDATA) luaL_typeerror(L, arg, "segment");
    uint64_t v = (uintptr_t)lua_touserdata(L, arg);
    if ((uint32_t)(v >> 32) != s->gen)
        luaL_error(L, "segment handle belongs to an earlier message; handles live for one run");
    return (uint32_t)v;
}

/* Position of uid now, or -1 when its segment was deleted: where it was
 * found last, where it started (uids begin as positions + 1), else a scan. */
static long uid_pos(script *s, uint32_t uid)
{
    if (uid == s->last_uid && s->last_pos < s->nuids && s->uids[s->last_pos] == uid)
        return s->last_pos;
    uint32_t hint = uid - 1;
    long pos = uid_find(s, uid, &hint);
    if (pos >= 0) {
        s->last_uid = uid;
        s->last_pos = (uint32_t)pos;
    }
    return pos;
}

/* Position of the handle at arg, or a Lua error. */
static size_t check_handle(lua_State *L, int arg, script *s)
{
    long pos = uid_pos(s, to_handle(L, arg, s));
    if (pos < 0) luaL_error(L, "segment handle refers to a deleted segment");
    return (size_t)pos;
}

static int seg_iter_next(lua_State *L)
{
    script *s = check_run(L);
    seg_iter *it = lua_touserdata(L, lua_upvalueindex(1));
    if (it->gen != s->gen) return luaL_error(L, "segment iterator belongs to an earlier message");
    while (it->pos < it->n) {
        seg_iter_item *item = &it->items[it->pos++];
        long pos = uid_find(s, item->uid, &item->hint);
        if (pos < 0) continue; /* deleted while iterating */
        s->last_uid = item->uid;
        s->last_pos = (uint32_t)pos;
        push_handle(L, s, item->uid);
        return 1;
    }
    return 0;
}

/* Iterates over the segments (of one id) present when the loop starts;
 * segments added meanwhile are not visited, deleted ones are skipped. */
static int msg_segments(lua_State *L)
{
    script *s = check_msg(L);
    const char *id = lua_isnoneornil(L, 2) ? NULL : check_seg_id(L, 2);
    size_t n = id ? hl7_seg_occurrences(s->msg, id) : s->nuids;
    seg_iter *it = lua_newuserdatauv(L, sizeof(*it) + n * sizeof(seg_iter_item), 0);
    it->gen = s->gen;
    it->pos = 0;
    it->n = 0;
    for (size_t i = 0; i < s->nuids; i++) {
        if (id && memcmp(hl7_seg_at(s->msg, (uint32_t)i)->id, id, 4)) continue;
        it->items[it->n].uid = s->uids[i];
        it->items[it->n++].hint = (uint32_t)i;
    }
    lua_pushcclosure(L, seg_iter_next, 1);
    return 1;
}

/* msg:add_segment("NTE" or "NTE|1||text" [, after]) -> handle. The text is
 * wire text, stored as is; set fields afterwards to have them escaped. */
static int msg_add_segment(lua_State *L)
{
    script *s = check_msg(L);
    check_writable(L, s, "msg:add_segment");
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    size_t at = lua_isnoneornil(L, 3) ? s->nuids : check_handle(L, 3, s) + 1;
    hl7_error e;
    if (hl7_seg_insert(s->msg, (uint32_t)at, text, len, &e) != HL7_OK)
        return luaL_error(L, "cannot add segment '%s': %s", text, e.text);
    uids_insert(s, at, 1);
    push_handle(L, s, s->uids[at]);
    return 1;
}

static int msg_delete_segment(lua_State *L)
{
    script *s = check_msg(L);
    check_writable(L, s, "msg:delete_segment");
    size_t at = check_handle(L, 2, s);
    hl7_error e;
    if (hl7_seg_remove(s->msg, (uint32_t)at, &e) != HL7_OK)
        return luaL_error(L, "cannot delete segment: %s", e.text);
    uids_remove(s, at);
    return 0;
}

/* --- segment handles ------------------------------------------------------------ */

/* Occurrence number (OBX[3] -> 3) of the segment at pos. */
static uint32_t seg_occurrence(script *s, size_t pos)
{
    const char *id = hl7_seg_at(s->msg, (uint32_t)pos)->id;
    uint32_t occ = 1;
    for (size_t i = 0; i < pos; i++)
        if (!memcmp(hl7_seg_at(s->msg, (uint32_t)i)->id, id, 4)) occ++;
    return occ;
}

/* Parses field path `fp` ("5.1", "3[2]") within the segment at pos; the
 * occurrence is filled only when `with_occurrence` (hl7_set needs it). */
/* A number of read_field_path(): 1 to 99999, at most 6 digits read. */
static bool path_num(const char **s, uint32_t *out)
{
    const char *p = *s;
    uint32_t v = 0;
    while (*p >= '0' && *p <= '9' && p - *s < 6)
        v = v * 10 + (uint32_t)(*p++ - '0');
    if (p == *s || v == 0 || v > 99999 || (*p >= '0' && *p <= '9')) return false;
    *s = p;
    *out = v;
    return true;
}

/* "F[r].C.S" as hl7_path_parse() reads it after "SEG-", for the paths
 * that parse; false for any other text (the caller then lets
 * hl7_path_parse() say what is wrong). */
static bool read_field_path(const char *fp, hl7_path *p)
{
    p->rep = 1;
    p->comp = p->sub = 0;
    if (!path_num(&fp, &p->field)) return false;
    if (*fp == '[') {
        fp++;
        if (!path_num(&fp, &p->rep) || *fp != ']') return false;
        fp++;
    }
    if (*fp == '\0') return true;
    if (*fp++ != '.' || !path_num(&fp, &p->comp)) return false;
    if (*fp == '\0') return true;
    if (*fp++ != '.' || !path_num(&fp, &p->sub)) return false;
    return *fp == '\0';
}

static void seg_path(lua_State *L, script *s, size_t pos, const char *fp, bool with_occurrence,
                     hl7_path *p)
{
    char text[64];
    size_t n = strlen(fp);
    if (n > sizeof(text) - 5) luaL_error(L, "bad field path '%s': too long", fp);
    const char *id = hl7_seg_at(s->msg, (uint32_t)pos)->id;
    if (read_field_path(fp, p)) {
        memcpy(p->seg, id, 4);
        p->seg_occ = 1;
    } else {
        memcpy(text, id, 3);
        text[3] = '-';
        memcpy(text + 4, fp, n + 1);
        parse_path(L, text, p);
    }
    if (with_occurrence) p->seg_occ = seg_occurrence(s, pos);
}

static int seg_get(lua_State *L)
{
    script *s = check_run(L);
    size_t pos = check_handle(L, 1, s);
    hl7_path p;
    seg_path(L, s, pos, luaL_checkstring(L, 2), false, &p);
    return push_value(L, s, (long)pos, &p);
}

static int seg_set(lua_State *L)
{
    script *s = check_run(L);
    check_writable(L, s, "seg:set");
    size_t pos = check_handle(L, 1, s);
    const char *fp = luaL_checkstring(L, 2);
    hl7_path p;
    seg_path(L, s, pos, fp, true, &p);
    size_t len;
    const char *v = check_value(L, 3, fp, &len);
    set_tracked(L, s, &p, v, len);
    return 0;
}

static int seg_index(lua_State *L)
{
    script *s = check_run(L);
    size_t pos = check_handle(L, 1, s);
    const char *key = luaL_checkstring(L, 2);
    if (key == s->key_get) {
        lua_pushcfunction(L, seg_get);
        return 1;
    }
    if (key == s->key_set) {
        lua_pushcfunction(L, seg_set);
        return 1;
    }
    const hl7_seg *seg = hl7_seg_at(s->msg, (uint32_t)pos);
    if (!strcmp(key, "id"))
        lua_pushstring(L, seg->id);
    else if (!strcmp(key, "index"))
        lua_pushinteger(L, (lua_Integer)pos + 1);
    else if (!strcmp(key, "occurrence"))
        lua_pushinteger(L, seg_occurrence(s, pos));
    else if (!strcmp(key, "get"))
        lua_pushcfunction(L, seg_get);
    else if (!strcmp(key, "set"))
        lua_pushcfunction(L, seg_set);
    else
        lua_pushnil(L);
    return 1;
}

static int seg_tostring(lua_State *L)
{
    script *s = check_run(L);
    size_t pos = check_handle(L, 1, s);
    lua_pushfstring(L, "segment %s (#%d)", hl7_seg_at(s->msg, (uint32_t)pos)->id, (int)pos + 1);
    return 1;
}

/* --- map() and log() ------------------------------------------------------------ */

/* lua_pushstring() without its cache of C string addresses, which a map's
 * many different texts would only churn. */
static void push_text(lua_State *L, const char *text)
{
    if (text)
        lua_pushlstring(L, text, strlen(text));
    else
        lua_pushnil(L);
}

/* map(name, code [, system]) -> target_code, display, target_system; nil
 * when the code is nil/"" or unmapped under policy warning/pass; an error
 * under policy error. */
static int lua_map(lua_State *L)
{
    script *s = script_of(L);
    const char *name = luaL_checkstring(L, 1);
    const codemap *cm = s->map_found; /* scripts call map() on one map, over and over */
    if (!cm || strcmp(name, codemap_name(cm)) != 0) {
        cm = s->host && s->host->maps ? codemap_registry_get(s->host->maps, name) : NULL;
        s->map_found = cm;
    }
    if (!cm) return luaL_error(L, "map '%s' is not loaded (check the maps: section)", name);
    if (lua_isnoneornil(L, 2)) return 0;
    size_t len;
    const char *code = luaL_checklstring(L, 2, &len);
    if (len == 0) return 0;
    codemap_result r;
    if (codemap_lookup(cm, luaL_optstring(L, 3, NULL), code, len, &r)) {
        push_text(L, r.target_code);
        push_text(L, r.target_display);
        push_text(L, r.target_system);
        return 3;
    }
    if (r.unmapped == CODEMAP_UNMAPPED_ERROR)
        return luaL_error(L, "map '%s' has no entry for code '%s'", name, code);
    if (r.unmapped == CODEMAP_UNMAPPED_WARNING && s->host && s->host->log) {
        luaL_where(L, 1);
        const char *w = lua_pushfstring(L, "%smap '%s' has no entry for code '%s'",
                                        lua_tostring(L, -1), name, code);
        s->host->log(s->host->log_ud, s->path, SCRIPT_LOG_WARNING, w, strlen(w));
    }
    return 0;
}

static int lua_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warning", "error", "warn", NULL};
    script *s = script_of(L);
    int level = luaL_checkoption(L, 1, NULL, levels);
    if (level == 4) level = SCRIPT_LOG_WARNING;
    size_t len;
    const char *text = luaL_tolstring(L, 2, &len);
    if (s->host && s->host->log) s->host->log(s->host->log_ud, s->path, level, text, len);
    return 0;
}

/* --- the sandbox ------------------------------------------------------------------- */

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "the standard library tables are read-only in scripts");
}

static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE && lua_getfield(L, 2, "__gc") != LUA_TNIL)
        return luaL_error(L, "setmetatable: __gc metamethods are not allowed in scripts");
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* Sets base[name] to a read-only proxy of the library table at the top of
 * the stack (popped). base is at index `base`. */
static void add_readonly(lua_State *L, int base, const char *name)
{
    lua_newtable(L);          /* proxy */
    lua_createtable(L, 0, 3); /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, base, name);
    lua_pop(L, 1);
}

static void open_lib(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 0);
}

static void make_msg_object(lua_State *L, int base)
{
    static const luaL_Reg methods[] = {
        {"get", msg_get},
        {"set", msg_set},
        {"count", msg_count},
        {"segments", msg_segments},
        {"add_segment", msg_add_segment},
        {"delete_segment", msg_delete_segment},
        {"type", msg_type},
        {"raw", msg_raw},
        {NULL, NULL},
    };
    luaL_newmetatable(L, MSG_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    script_of(L)->msg_obj = lua_newuserdatauv(L, 0, 0);
    luaL_setmetatable(L, MSG_MT);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, MSG_OBJ);
    lua_setfield(L, base, "msg");

    /* The metatable of every light userdata: the handles (== compares their
     * values: same generation and uid, same segment). */
    luaL_newmetatable(L, SEG_MT);
    lua_pushcfunction(L, seg_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, seg_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushlightuserdata(L, NULL);
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    script_of(L)->seg_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    script *s = script_of(L);
    const char **keys[] = {&s->key_get, &s->key_set, &s->key_id, &s->key_index, &s->key_occurrence};
    const char *texts[] = {"get", "set", "id", "index", "occurrence"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        *keys[i] = lua_pushstring(L, texts[i]);
        luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

/* Builds the base environment and the per-run environment metatable (its
 * registry reference is returned as an integer). Runs under lua_pcall. */
static int sandbox_setup(lua_State *L)
{
    static const char *const base_funcs[] = {
        "assert",   "error", "ipairs",   "pairs",  "next",   "pcall",  "select",       "tonumber",
        "tostring", "type",  "rawequal", "rawget", "rawset", "rawlen", "getmetatable", NULL,
    };
    static const char *const unsafe[] = {
        "load", "loadfile", "dofile", "collectgarbage", "require", "print", NULL,
    };
    open_lib(L, LUA_GNAME, luaopen_base);
    int g = lua_gettop(L);
    lua_newtable(L);
    int base = lua_gettop(L);
    for (int i = 0; base_funcs[i]; i++) {
        lua_getfield(L, g, base_funcs[i]);
        lua_setfield(L, base, base_funcs[i]);
    }
    lua_getfield(L, g, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setfield(L, base, "setmetatable");
    lua_pushliteral(L, LUA_VERSION);
    lua_setfield(L, base, "_VERSION");
    for (int i = 0; unsafe[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, g, unsafe[i]);
    }

    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1); /* the string metatable: hide it */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    add_readonly(L, base, "string");

    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    lua_getfield(L, -1, "unpack");
    lua_setfield(L, base, "unpack");
    add_readonly(L, base, "table");
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    add_readonly(L, base, "math");
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
    add_readonly(L, base, "utf8");

    make_msg_object(L, base);
    lua_pushcfunction(L, lua_map);
    lua_setfield(L, base, "map");
    lua_pushcfunction(L, lua_log);
    lua_setfield(L, base, "log");

    lua_createtable(L, 0, 2); /* metatable of the per-run environments */
    lua_pushvalue(L, base);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    return 1;
}

static bool limits_ok(const script_limits *lim, script_error *err)
{
    if (lim->max_instructions == 0 || lim->max_instructions > INT_MAX) {
        fail(err, SCRIPT_ERR_LIMITS, "max_instructions must be between 1 and %d", INT_MAX);
        return false;
    }
    if (lim->max_memory < MIN_MEMORY) {
        fail(err, SCRIPT_ERR_LIMITS, "max_memory must be at least %u bytes", MIN_MEMORY);
        return false;
    }
    return true;
}

script_status script_load_buffer(const char *name, const char *src, size_t len,
                                 const script_limits *lim, const script_host *host, script **out,
                                 script_error *err)
{
    *out = NULL;
    script *s = xcalloc(1, sizeof(*s));
    s->path = xstrdup(name);
    s->host = host;
    if (lim)
        s->lim = *lim;
    else
        script_limits_default(&s->lim);
    s->chunk_ref = s->envmt_ref = s->seg_mt_ref = LUA_NOREF;
    script_status st = SCRIPT_OK;
    if (!limits_ok(&s->lim, err)) {
        st = SCRIPT_ERR_LIMITS;
        goto fail;
    }
    if (len > 0 && src[0] == LUA_SIGNATURE[0]) {
        st = fail(err, SCRIPT_ERR_SYNTAX,
                  "%s: is precompiled Lua bytecode; only Lua source text is accepted", name);
        goto fail;
    }
    s->L = lua_newstate(limited_alloc, s);
    if (!s->L) {
        st = fail(err, SCRIPT_ERR_MEMORY, "%s: cannot create a Lua state", name);
        goto fail;
    }
    *(script **)lua_getextraspace(s->L) = s;
    lua_gc(s->L, LUA_GCGEN, 0, 0);
    lua_pushcfunction(s->L, sandbox_setup);
    if (lua_pcall(s->L, 0, 1, 0) != LUA_OK) {
        st = fail(err, SCRIPT_ERR_MEMORY, "%s: cannot set up the sandbox: %s (raise max_memory)",
                  name, lua_tostring(s->L, -1));
        goto fail;
    }
    s->envmt_ref = (int)lua_tointeger(s->L, -1);
    lua_settop(s->L, 0);
    char chunkname[1024];
    snprintf(chunkname, sizeof(chunkname), "@%s", name);
    int rc = luaL_loadbufferx(s->L, src, len, chunkname, "t");
    if (rc != LUA_OK) {
        st = fail(err, rc == LUA_ERRMEM ? SCRIPT_ERR_MEMORY : SCRIPT_ERR_SYNTAX, "%s",
                  lua_tostring(s->L, -1));
        goto fail;
    }
    s->chunk_ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
    *out = s;
    return SCRIPT_OK;
fail:
    script_free(s);
    return st;
}

script_status script_load(const char *path, const script_limits *lim, const script_host *host,
                          script **out, script_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, SCRIPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    tbuf src = TBUF_INIT;
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        tbuf_put(&src, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    script_status st;
    if (bad)
        st = fail(err, SCRIPT_ERR_IO, "%s: read error", path);
    else
        st = script_load_buffer(path, src.p ? src.p : "", src.len, lim, host, out, err);
    tbuf_free(&src);
    return st;
}

void script_free(script *s)
{
    if (!s) return;
    if (s->L) lua_close(s->L);
    free(s->path);
    free(s->uids);
    tbuf_free(&s->scratch);
    free(s);
}

const char *script_path(const script *s)
{
    return s->path;
}

size_t script_memory_used(const script *s)
{
    return s->mem_used;
}

/* --- running -------------------------------------------------------------------------- */

static script_status run_error(script *s, int rc, script_error *err)
{
    const char *m = lua_tostring(s->L, -1);
    if (!m) m = "(no error message)";
    if (s->insn_exceeded) return fail(err, SCRIPT_ERR_INSTRUCTIONS, "%s", m);
    if (rc == LUA_ERRMEM || (s->mem_refused && strstr(m, "not enough memory")))
        return fail(err, SCRIPT_ERR_MEMORY, "%s: script exceeded its memory limit (%zu bytes)",
                    s->path, s->lim.max_memory);
    return fail(err, SCRIPT_ERR_RUNTIME, "%s", m);
}

/* Calls the chunk on m in a fresh environment; leaves its results on the
 * stack above the error handler (stack index 1) and returns their count, or
 * -1 with err filled. */
static int run_chunk(script *s, hl7_msg *m, bool read_only, script_error *err, script_status *st)
{
    lua_State *L = s->L;
    lua_settop(L, 0);
    s->msg = m;
    s->read_only = read_only;
    s->gen++;
    s->insn_exceeded = false;
    s->mem_refused = false;
    s->map_found = NULL; /* the host may have changed its maps between runs */
    s->last_uid = 0;
    uids_reset(s);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, (int)s->lim.max_instructions);
    lua_pushcfunction(L, error_handler);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->chunk_ref);
    lua_createtable(L, 0, 4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->envmt_ref);
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);                    /* _ENV */
    lua_getfield(L, LUA_REGISTRYINDEX, MSG_OBJ); /* also the chunk's `...` */
    int rc = lua_pcall(L, 1, LUA_MULTRET, 1);
    s->msg = NULL;
    if (rc != LUA_OK) {
        *st = run_error(s, rc, err);
        lua_settop(L, 0);
        return -1;
    }
    *st = SCRIPT_OK;
    return lua_gettop(L) - 1;
}

script_status script_run_filter(script *s, hl7_msg *m, bool *pass, tbuf *reason, script_error *err)
{
    script_status st;
    *pass = false;
    int n = run_chunk(s, m, true, err, &st);
    if (n < 0) return st;
    lua_State *L = s->L;
    if (n == 0 || lua_type(L, 2) != LUA_TBOOLEAN) {
        st = fail(err, SCRIPT_ERR_RESULT,
                  "%s: a filter must return true (pass) or false (filter out), it returned %s",
                  s->path, n == 0 ? "nothing" : luaL_typename(L, 2));
    } else {
        *pass = lua_toboolean(L, 2);
        if (!*pass && n >= 2 && reason && lua_type(L, 3) == LUA_TSTRING) {
            size_t len;
            const char *r = lua_tolstring(L, 3, &len);
            tbuf_put(reason, r, len);
        }
    }
    lua_settop(L, 0);
    return st;
}

script_status script_run_transform(script *s, hl7_msg *m, script_error *err)
{
    script_status st;
    if (run_chunk(s, m, false, err, &st) >= 0) lua_settop(s->L, 0);
    return st;
}
