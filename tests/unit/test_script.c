/*
 * Unit tests for the Lua sandbox (engine/script.c): what the sandbox refuses,
 * the instruction and memory limits (also against pcall), deep recursion,
 * filter verdicts and reasons, transforms that set fields and add, delete and
 * iterate segments, map() with each unmapped policy, log(), errors carrying
 * file:line, and reuse of one script across many messages (ASan checks the
 * leaks), including the example scripts under examples/scripts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "engine/script.h"

#define ORU_HEAD                                                                                   \
    "MSH|^~\\&|LAB|GHH LAB|EHR|GHH|20260115101500||ORU^R01^ORU_R01|CTRL-1|P|2.5.1\r"               \
    "PID|1||PATID1234^^^GHH^MR||EVERYWOMAN^EVE^E||19620320|F\r"                                    \
    "OBR|1|845439^GHH OE|1045813^GHH LAB|24331-1^Lipid panel^LN\r"

typedef struct log_sink {
    int count;
    script_log_level last_level;
    char last[256];
} log_sink;

static void collect(void *ud, const char *path, script_log_level level, const char *text,
                    size_t len)
{
    (void)path;
    log_sink *l = ud;
    l->count++;
    l->last_level = level;
    snprintf(l->last, sizeof(l->last), "%.*s", (int)len, text);
}

typedef struct fixture {
    codemap_registry *maps;
    log_sink log;
    script_host host;
    hl7_msg *msg;
    tbuf wire; /* the input f->msg borrows */
    tbuf out;  /* what wire() serializes into */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->maps = codemap_registry_new();
    codemap_error e;
    codemap *m;
    codemap_options warn = {.unmapped = CODEMAP_UNMAPPED_WARNING};
    assert_int_equal(codemap_load_file(TERN_SOURCE_DIR "/examples/maps/lab_loinc.csv", "lab-loinc",
                                       &warn, &m, &e),
                     CODEMAP_OK);
    assert_int_equal(codemap_registry_add(f->maps, m, &e), CODEMAP_OK);
    codemap_options strict = {.unmapped = CODEMAP_UNMAPPED_ERROR};
    const char *strict_csv = "source_code,target_code\nA,1\n";
    assert_int_equal(
        codemap_parse_csv(strict_csv, strlen(strict_csv), "s.csv", "strict", &strict, &m, &e),
        CODEMAP_OK);
    assert_int_equal(codemap_registry_add(f->maps, m, &e), CODEMAP_OK);
    codemap_options pass = {.unmapped = CODEMAP_UNMAPPED_PASS, .match = CODEMAP_MATCH_CASELESS};
    assert_int_equal(codemap_load_file(TERN_SOURCE_DIR "/examples/maps/medications_rxnorm.csv",
                                       "meds", &pass, &m, &e),
                     CODEMAP_OK);
    assert_int_equal(codemap_registry_add(f->maps, m, &e), CODEMAP_OK);
    f->host.maps = f->maps;
    f->host.log = collect;
    f->host.log_ud = &f->log;
    f->msg = hl7_msg_new(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    codemap_registry_free(f->maps);
    hl7_msg_free(f->msg);
    tbuf_free(&f->wire);
    tbuf_free(&f->out);
    free(f);
    return 0;
}

/* Builds an ORU with n OBX (local codes cycling through the example map). */
static void oru(fixture *f, int nobx)
{
    static const char *codes[] = {"GLU", "HGB", "CREA", "NA", "K", "ZZZ"};
    tbuf_reset(&f->wire);
    tbuf_puts(&f->wire, ORU_HEAD);
    for (int i = 0; i < nobx; i++)
        tbuf_printf(&f->wire, "OBX|%d|NM|%s^Local test^L||%d|mg/dL|||||F\r", i + 1, codes[i % 6],
                    100 + i);
    hl7_error e;
    assert_int_equal(hl7_parse(f->msg, f->wire.p, f->wire.len, &e), HL7_OK);
}

static script *load(fixture *f, const char *src, const script_limits *lim)
{
    script *s = NULL;
    script_error e;
    script_status st = script_load_buffer("t.lua", src, strlen(src), lim, &f->host, &s, &e);
    if (st != SCRIPT_OK) fprintf(stderr, "%s\n", e.text);
    assert_int_equal(st, SCRIPT_OK);
    return s;
}

static script_status transform(fixture *f, const char *src, script_error *e)
{
    script *s = load(f, src, NULL);
    script_status st = script_run_transform(s, f->msg, e);
    script_free(s);
    return st;
}

static void transform_ok(fixture *f, const char *src)
{
    script_error e;
    script_status st = transform(f, src, &e);
    if (st != SCRIPT_OK) fprintf(stderr, "%s\n", e.text);
    assert_int_equal(st, SCRIPT_OK);
}

static void transform_fails(fixture *f, const char *src, script_status want, const char *needle)
{
    script_error e;
    assert_int_equal(transform(f, src, &e), want);
    if (!strstr(e.text, needle)) fprintf(stderr, "got: %s\nwant: %s\n", e.text, needle);
    assert_non_null(strstr(e.text, needle));
}

static const char *wire(fixture *f)
{
    tbuf_reset(&f->out);
    hl7_serialize(f->msg, &f->out);
    return f->out.p;
}

static void test_sandbox_refuses(void **state)
{
    fixture *f = *state;
    oru(f, 1);
    transform_ok(f, "assert(io == nil and os == nil and require == nil and load == nil)\n"
                    "assert(loadfile == nil and dofile == nil and loadstring == nil)\n"
                    "assert(package == nil and debug == nil and collectgarbage == nil)\n"
                    "assert(string.dump == nil and (''):len() == 0 and ('x').dump == nil)\n"
                    "assert(getmetatable('') == false and getmetatable(msg) == false)\n"
                    "assert(coroutine == nil and print == nil and _G == nil)\n"
                    "assert(math.random(1, 3) >= 1 and utf8.char(72) == 'H')\n"
                    "assert(table.unpack == unpack and select('#', unpack({1, 2})) == 2)\n");
    transform_fails(f, "os.execute('touch /tmp/tern-pwned')", SCRIPT_ERR_RUNTIME,
                    "t.lua:1: attempt to index a nil value (global 'os')");
    transform_fails(f, "\nlocal f = io.open('/etc/passwd')", SCRIPT_ERR_RUNTIME,
                    "t.lua:2: attempt to index a nil value (global 'io')");
    transform_fails(f, "require('os')", SCRIPT_ERR_RUNTIME, "t.lua:1: attempt to call a nil value");
    transform_fails(f, "load('return 1')()", SCRIPT_ERR_RUNTIME, "global 'load'");
    transform_fails(f, "string.dump(function() end)", SCRIPT_ERR_RUNTIME, "field 'dump'");
    transform_fails(f, "debug.getregistry()", SCRIPT_ERR_RUNTIME, "global 'debug'");
    transform_fails(f, "string.upper = nil", SCRIPT_ERR_RUNTIME, "read-only");
    transform_fails(f, "setmetatable(string, {})", SCRIPT_ERR_RUNTIME, "protected metatable");
    transform_fails(f, "setmetatable({}, {__gc = function() while true do end end})",
                    SCRIPT_ERR_RUNTIME, "__gc metamethods are not allowed");
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    tbuf_put(ud, p, sz);
    return 0;
}

static void test_bytecode_refused(void **state)
{
    fixture *f = *state;
    lua_State *L = luaL_newstate();
    assert_int_equal(luaL_loadstring(L, "return true"), LUA_OK);
    tbuf code = TBUF_INIT;
    assert_int_equal(lua_dump(L, dump_writer, &code, 0), 0);
    lua_close(L);
    script *s = (script *)1;
    script_error e;
    assert_int_equal(script_load_buffer("compiled.luac", code.p, code.len, NULL, &f->host, &s, &e),
                     SCRIPT_ERR_SYNTAX);
    assert_null(s);
    assert_non_null(strstr(e.text, "compiled.luac: is precompiled Lua bytecode"));
    tbuf_free(&code);
}

static void test_syntax_and_io_errors(void **state)
{
    fixture *f = *state;
    script *s = (script *)1;
    script_error e;
    const char *src = "local x = 1\nif x then\n  x = 2\n";
    assert_int_equal(
        script_load_buffer("scripts/bad.lua", src, strlen(src), NULL, &f->host, &s, &e),
        SCRIPT_ERR_SYNTAX);
    assert_null(s);
    assert_non_null(strstr(e.text, "scripts/bad.lua:4: 'end' expected"));
    assert_int_equal(script_load("/nonexistent/x.lua", NULL, &f->host, &s, &e), SCRIPT_ERR_IO);
    assert_non_null(strstr(e.text, "/nonexistent/x.lua: cannot open"));
    script_limits lim = {.max_instructions = 0, .max_memory = 16u << 20};
    assert_int_equal(script_load_buffer("x.lua", "", 0, &lim, &f->host, &s, &e), SCRIPT_ERR_LIMITS);
    lim.max_instructions = 10;
    lim.max_memory = 1000;
    assert_int_equal(script_load_buffer("x.lua", "", 0, &lim, &f->host, &s, &e), SCRIPT_ERR_LIMITS);
}

static void test_instruction_limit(void **state)
{
    fixture *f = *state;
    oru(f, 1);
    transform_fails(f, "local n = 0\nwhile true do\n  n = n + 1\nend", SCRIPT_ERR_INSTRUCTIONS,
                    "t.lua:3: script exceeded its instruction limit (1000000 instructions)");
    /* pcall cannot swallow the limit */
    transform_fails(f,
                    "for i = 1, 10 do\n"
                    "  pcall(function() while true do end end)\n"
                    "end\n"
                    "while true do pcall(error, 'x') end",
                    SCRIPT_ERR_INSTRUCTIONS, "script exceeded its instruction limit");
    /* the limit is per run: a script just under it runs again and again */
    script_limits lim;
    script_limits_default(&lim);
    lim.max_instructions = 5000;
    script *s = load(f,
                     "local n = 0\n"
                     "for i = 1, tonumber(msg:get('OBX-5')) do n = n + i end\n"
                     "msg:set('ZZZ-1', tostring(n))",
                     &lim);
    script_error e;
    for (int i = 0; i < 20; i++)
        assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_OK);
    hl7_path p;
    hl7_error he;
    hl7_path_parse("OBX-5", &p, &he);
    assert_int_equal(hl7_set(f->msg, &p, "100000", 6, &he), HL7_OK);
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_ERR_INSTRUCTIONS);
    assert_int_equal(hl7_set(f->msg, &p, "10", 2, &he), HL7_OK);
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_OK);
    script_free(s);
}

static void test_memory_limit(void **state)
{
    fixture *f = *state;
    oru(f, 1);
    script_limits lim;
    script_limits_default(&lim);
    lim.max_memory = 4u << 20;
    const char *cases[] = {
        "local t = {}\nfor i = 1, 1e9 do t[i] = ('x'):rep(64) .. i end",
        "local s = ('x'):rep(1e9)",
        "local s = 'x'\nwhile true do s = s .. s end",
        "local t = {}\nwhile true do pcall(function() t[#t + 1] = ('y'):rep(1000) .. #t end) end",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        script *s = load(f, cases[i], &lim);
        script_error e;
        script_status st = script_run_transform(s, f->msg, &e);
        if (st != SCRIPT_ERR_MEMORY) fprintf(stderr, "case %zu: %s\n", i, e.text);
        /* the pcall case may also run into the instruction limit first */
        assert_true(st == SCRIPT_ERR_MEMORY || (i == 3 && st == SCRIPT_ERR_INSTRUCTIONS));
        if (st == SCRIPT_ERR_MEMORY)
            assert_non_null(strstr(e.text, "t.lua: script exceeded its memory limit"));
        assert_true(script_memory_used(s) <= lim.max_memory);
        /* the state stays usable */
        script_free(s);
    }
    script *s = load(f, "if msg:get('ZZZ-1') then local s = ('x'):rep(8e6) end", &lim);
    script_error e;
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_OK);
    hl7_path p;
    hl7_error he;
    hl7_path_parse("ZZZ-1", &p, &he);
    assert_int_equal(hl7_set(f->msg, &p, "big", 3, &he), HL7_OK);
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_ERR_MEMORY);
    assert_int_equal(hl7_seg_remove(f->msg, hl7_seg_count(f->msg) - 1, &he), HL7_OK);
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_OK);
    script_free(s);
}

static void test_deep_recursion(void **state)
{
    fixture *f = *state;
    oru(f, 1);
    script_error e;
    script_status st = transform(f, "local function f(n) return f(n + 1) + 1 end\nf(1)", &e);
    assert_int_not_equal(st, SCRIPT_OK);
    assert_non_null(strstr(e.text, "t.lua"));
    /* recursion through C (metamethods) hits Lua's C-stack limit */
    transform_fails(f,
                    "local t = setmetatable({}, {__index = function(t, k) return t[k] end})\n"
                    "return t.x",
                    SCRIPT_ERR_RUNTIME, "t.lua:1:");
    transform_fails(f, "local s = string.rep('(', 1e5)\nreturn s:find(s)", SCRIPT_ERR_RUNTIME,
                    "t.lua:2:");
}

static void test_filter(void **state)
{
    fixture *f = *state;
    oru(f, 2);
    script *s = load(f,
                     "local fam = msg:get('PID-5.1')\n"
                     "if fam == 'TEST' then return false, 'test patient' end\n"
                     "if fam == 'QUIET' then return false end\n"
                     "if fam == 'NONE' then return end\n"
                     "if fam == 'WRITE' then msg:set('PID-5.1', 'X') end\n"
                     "return fam == 'EVERYWOMAN'",
                     NULL);
    bool pass = false;
    tbuf reason = TBUF_INIT;
    script_error e;
    assert_int_equal(script_run_filter(s, f->msg, &pass, &reason, &e), SCRIPT_OK);
    assert_true(pass);
    assert_int_equal(reason.len, 0);

    hl7_path p;
    hl7_error he;
    hl7_path_parse("PID-5.1", &p, &he);
    hl7_set(f->msg, &p, "TEST", 4, &he);
    assert_int_equal(script_run_filter(s, f->msg, &pass, &reason, &e), SCRIPT_OK);
    assert_false(pass);
    assert_string_equal(tbuf_cstr(&reason), "test patient");

    tbuf_reset(&reason);
    hl7_set(f->msg, &p, "QUIET", 5, &he);
    assert_int_equal(script_run_filter(s, f->msg, &pass, &reason, &e), SCRIPT_OK);
    assert_false(pass);
    assert_int_equal(reason.len, 0);

    hl7_set(f->msg, &p, "NONE", 4, &he);
    assert_int_equal(script_run_filter(s, f->msg, &pass, &reason, &e), SCRIPT_ERR_RESULT);
    assert_non_null(strstr(e.text, "t.lua: a filter must return true (pass) or false"));

    hl7_set(f->msg, &p, "WRITE", 5, &he);
    assert_int_equal(script_run_filter(s, f->msg, &pass, &reason, &e), SCRIPT_ERR_RUNTIME);
    assert_non_null(strstr(e.text, "t.lua:5: msg:set: a filter cannot change the message"));
    script_free(s);
    tbuf_free(&reason);
}

static void test_example_filter(void **state)
{
    fixture *f = *state;
    script *s;
    script_error e;
    assert_int_equal(script_load(TERN_SOURCE_DIR "/examples/scripts/drop_test_patients.lua", NULL,
                                 &f->host, &s, &e),
                     SCRIPT_OK);
    oru(f, 3);
    bool pass;
    tbuf reason = TBUF_INIT;
    assert_int_equal(script_run_filter(s, f->msg, &pass, &reason, &e), SCRIPT_OK);
    assert_true(pass);
    hl7_path p;
    hl7_error he;
    hl7_path_parse("PID-3.1", &p, &he);
    hl7_set(f->msg, &p, "TST0042", 7, &he);
    assert_int_equal(script_run_filter(s, f->msg, &pass, &reason, &e), SCRIPT_OK);
    assert_false(pass);
    assert_string_equal(tbuf_cstr(&reason), "test patient (MRN TST0042)");
    script_free(s);
    tbuf_free(&reason);
}

static void test_get_set(void **state)
{
    fixture *f = *state;
    oru(f, 2);
    transform_ok(f, "assert(msg:get('PID-5.2') == 'EVE')\n"
                    "assert(msg:get('PID-5.9') == nil)\n"
                    "assert(msg:get('ZZZ-1') == nil)\n"
                    "assert(msg:get('PID-2') == '')\n"
                    "assert(msg:get('OBX[2]-3.1') == 'HGB')\n"
                    "assert(msg:type() == 'ORU^R01')\n"
                    "assert(msg:count('OBX') == 2 and msg:count() == 5)\n"
                    "msg:set('PID-5.1', 'O|Brien^x')\n"
                    "msg:set('PID-13', 42)\n"
                    "msg:set('OBX[2]-5', '7.5')\n"
                    "msg:set('ZPI-2', 'new')\n"
                    "assert(msg:get('PID-5.1') == 'O|Brien^x')\n"
                    "assert(msg:raw():find('ZPI||new', 1, true))\n");
    const char *w = wire(f);
    assert_non_null(
        strstr(w, "PID|1||PATID1234^^^GHH^MR||O\\F\\Brien\\S\\x^EVE^E||19620320|F|||||42\r"));
    assert_non_null(strstr(w, "OBX|2|NM|HGB^Local test^L||7.5|"));
    assert_non_null(strstr(w, "\rZPI||new"));
    transform_fails(f, "msg:set('PID-', 'x')", SCRIPT_ERR_RUNTIME, "t.lua:1: bad path 'PID-'");
    transform_fails(f, "\nmsg:get('nonsense')", SCRIPT_ERR_RUNTIME, "t.lua:2: bad path 'nonsense'");
    transform_fails(f, "msg:set('PID-5', nil)", SCRIPT_ERR_RUNTIME,
                    "t.lua:1: value for PID-5 is nil; give a string");
    transform_fails(f, "msg:set('MSH-1', 'x')", SCRIPT_ERR_RUNTIME, "t.lua:1: cannot set MSH-1");
}

static void test_segments(void **state)
{
    fixture *f = *state;
    oru(f, 4);
    transform_ok(f, "local ids = {}\n"
                    "for seg in msg:segments() do ids[#ids + 1] = seg.id .. seg.index end\n"
                    "assert(table.concat(ids, ',') == 'MSH1,PID2,OBR3,OBX4,OBX5,OBX6,OBX7', "
                    "table.concat(ids, ','))\n"
                    "local n = 0\n"
                    "for obx in msg:segments('OBX') do\n"
                    "  n = n + 1\n"
                    "  assert(obx:get('1') == tostring(n))\n"
                    "  assert(obx.occurrence == (n > 2 and n - 1 or n))\n"
                    "  if n == 2 then msg:delete_segment(obx) end\n"
                    "  if n % 2 == 1 then\n"
                    "    local nte = msg:add_segment('NTE', obx)\n"
                    "    nte:set('3', 'after ' .. obx:get('3.1'))\n"
                    "  end\n"
                    "end\n"
                    "assert(n == 4 and msg:count('NTE') == 2 and msg:count('OBX') == 3)\n"
                    "local pid = nil\n"
                    "for s in msg:segments('PID') do pid = s end\n"
                    "local z = msg:add_segment('ZPD|1|x', pid)\n"
                    "assert(z.index == 3 and z.id == 'ZPD' and z:get('2') == 'x')\n"
                    "local tail = msg:add_segment('ZTL')\n"
                    "assert(tail.index == msg:count())\n"
                    "msg:set('OBX[3]-8', 'H')\n"
                    "assert(tail:get('1') == nil)\n"
                    "msg:delete_segment(z)\n");
    assert_string_equal(wire(f), ORU_HEAD "OBX|1|NM|GLU^Local test^L||100|mg/dL|||||F\r"
                                          "NTE|||after GLU\r"
                                          "OBX|3|NM|CREA^Local test^L||102|mg/dL|||||F\r"
                                          "NTE|||after CREA\r"
                                          "OBX|4|NM|NA^Local test^L||103|mg/dL||H|||F\r"
                                          "ZTL\r");
    transform_fails(
        f,
        "msg:set('ZNE-1', 'x')\nlocal a = msg:add_segment('ZAA')\nmsg:delete_segment(a)\n"
        "msg:delete_segment(a)",
        SCRIPT_ERR_RUNTIME, "t.lua:4: segment handle refers to a deleted segment");
    transform_fails(f, "for s in msg:segments('MSH') do msg:delete_segment(s) end",
                    SCRIPT_ERR_RUNTIME, "t.lua:1: cannot delete segment: MSH cannot be removed");
    transform_fails(f, "msg:add_segment('bad')", SCRIPT_ERR_RUNTIME, "cannot add segment 'bad'");
    transform_fails(f, "msg:delete_segment({})", SCRIPT_ERR_RUNTIME, "segment expected");
}

/* Handles are values: two handles to one segment are equal (also as table
 * keys), handles to two segments are not; they print their segment; a
 * handle of a moved segment still finds it. */
static void test_handle_values(void **state)
{
    fixture *f = *state;
    oru(f, 3);
    transform_ok(f, "local first, seen = nil, {}\n"
                    "for obx in msg:segments('OBX') do first = first or obx; seen[obx] = true end\n"
                    "local again = nil\n"
                    "for obx in msg:segments('OBX') do again = again or obx end\n"
                    "assert(first == again and rawequal(first, again) and seen[again])\n"
                    "local n = 0\n"
                    "for _ in pairs(seen) do n = n + 1 end\n"
                    "assert(n == 3)\n"
                    "assert(type(first) == 'userdata' and getmetatable(first) == false)\n"
                    "assert(tostring(first) == 'segment OBX (#4)', tostring(first))\n"
                    "msg:add_segment('ZZ1', msg:add_segment('ZZ0'))\n"
                    "local z = msg:add_segment('NTE|1', first)\n"
                    "assert(first.index == 4 and z.index == 5 and first ~= z)\n"
                    "msg:delete_segment(z)\n"
                    "assert(first:get('1') == '1' and first.occurrence == 1)\n");
    transform_fails(f,
                    "local h = nil\nfor s in msg:segments('OBX') do h = s end\n"
                    "msg:delete_segment(h)\nlocal x = h.id",
                    SCRIPT_ERR_RUNTIME, "t.lua:4: segment handle refers to a deleted segment");
    transform_fails(f, "msg:delete_segment(msg)", SCRIPT_ERR_RUNTIME, "segment expected");
    transform_fails(f, "msg:delete_segment(42)", SCRIPT_ERR_RUNTIME, "segment expected");
}

static void test_stale_handles(void **state)
{
    fixture *f = *state;
    oru(f, 2);
    /* rawset on a library proxy is the one way to keep a value across runs */
    script *s = load(f,
                     "if string.saved then return string.saved:get('1') end\n"
                     "for seg in msg:segments('OBX') do rawset(string, 'saved', seg) end\n"
                     "counter = (counter or 0) + 1\n"
                     "msg:set('ZCN-1', tostring(counter))",
                     NULL);
    script_error e;
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_OK);
    assert_non_null(strstr(wire(f), "ZCN|1"));
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_ERR_RUNTIME);
    assert_non_null(strstr(e.text, "t.lua:1: segment handle belongs to an earlier message"));
    script_free(s);

    s = load(f, "counter = (counter or 0) + 1\nmsg:set('ZCN-1', tostring(counter))", NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_OK);
    assert_non_null(strstr(wire(f), "ZCN|1")); /* globals reset per run */
    script_free(s);
}

static void test_map_and_log(void **state)
{
    fixture *f = *state;
    oru(f, 1);
    f->log.count = 0;
    transform_ok(f, "local c, d, s = map('lab-loinc', 'GLU')\n"
                    "assert(c == '2345-7' and s == 'http://loinc.org', c)\n"
                    "assert(d == 'Glucose [Mass/volume] in Serum or Plasma')\n"
                    "assert(map('lab-loinc', 'GLU', 'urn:tern:example:lab') == '2345-7')\n"
                    "assert(map('lab-loinc', 'GLU', 'urn:other') == nil)\n"
                    "assert(map('lab-loinc', nil) == nil and map('lab-loinc', '') == nil)\n"
                    "assert(map('meds', '  advil ') == '5640')\n"
                    "assert(map('meds', 'unknown drug') == nil)\n"
                    "log('debug', 'checked')\n");
    assert_int_equal(f->log.count, 2); /* the warning for urn:other and the debug line */
    assert_int_equal(f->log.last_level, SCRIPT_LOG_DEBUG);
    assert_string_equal(f->log.last, "checked");
    transform_ok(f, "\nassert(map('lab-loinc', 'NOPE') == nil)");
    assert_int_equal(f->log.last_level, SCRIPT_LOG_WARNING);
    assert_string_equal(f->log.last, "t.lua:2: map 'lab-loinc' has no entry for code 'NOPE'");
    transform_ok(f, "log('warn', 'w')\nlog('error', {})\nlog('info', 12)");
    assert_int_equal(f->log.last_level, SCRIPT_LOG_INFO);
    assert_string_equal(f->log.last, "12");
    transform_fails(f, "\n\nmap('strict', 'B')", SCRIPT_ERR_RUNTIME,
                    "t.lua:3: map 'strict' has no entry for code 'B'");
    transform_fails(f, "map('missing', 'B')", SCRIPT_ERR_RUNTIME, "map 'missing' is not loaded");
    transform_fails(f, "log('loud', 'x')", SCRIPT_ERR_RUNTIME, "invalid option 'loud'");

    /* no host: no maps, log discarded */
    script *s = NULL;
    script_error e;
    const char *src = "log('info', 'x')\nmap('lab-loinc', 'GLU')";
    assert_int_equal(script_load_buffer("n.lua", src, strlen(src), NULL, NULL, &s, &e), SCRIPT_OK);
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_ERR_RUNTIME);
    assert_non_null(strstr(e.text, "n.lua:2: map 'lab-loinc' is not loaded"));
    script_free(s);
}

static void test_error_messages(void **state)
{
    fixture *f = *state;
    oru(f, 1);
    transform_fails(f, "local a = 1\nlocal x = nil\nreturn x.field", SCRIPT_ERR_RUNTIME,
                    "t.lua:3: attempt to index a nil value (local 'x')");
    transform_fails(f, "error('custom failure')", SCRIPT_ERR_RUNTIME, "t.lua:1: custom failure");
    transform_fails(f, "\nerror('no position', 0)", SCRIPT_ERR_RUNTIME, "t.lua:2: no position");
    transform_fails(f, "error({code = 1})", SCRIPT_ERR_RUNTIME,
                    "t.lua:1: (error object is a table value)");
    transform_fails(f, "local ok, err = pcall(error, 'inner')\nerror(err .. ' rethrown')",
                    SCRIPT_ERR_RUNTIME, "inner rethrown");
}

static void test_example_transform_20_obx(void **state)
{
    fixture *f = *state;
    script *s;
    script_error e;
    assert_int_equal(script_load(TERN_SOURCE_DIR "/examples/scripts/normalize_lab_codes.lua", NULL,
                                 &f->host, &s, &e),
                     SCRIPT_OK);
    oru(f, 20);
    f->log.count = 0;
    assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_OK);
    const char *w = wire(f);
    assert_non_null(strstr(w, "OBX|1|NM|2345-7^Glucose [Mass/volume] in Serum or Plasma^LN||100|"));
    assert_non_null(strstr(w, "OBX|6|NM|ZZZ^Local test^L||105|")); /* unmapped: unchanged */
    assert_non_null(strstr(w, "OBX|20|NM|718-7^Hemoglobin [Mass/volume] in Blood^LN||119|"));
    assert_non_null(strstr(w, "|F\rNTE|1||17 code(s) normalised to LOINC by Tern\r"));
    assert_string_equal(f->log.last, "normalised 17 OBX code(s)");
    assert_int_equal(f->log.count, 3 + 1); /* 3 unmapped warnings + info */
    assert_string_equal(script_path(s),
                        TERN_SOURCE_DIR "/examples/scripts/normalize_lab_codes.lua");
    script_free(s);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One script, many messages: no leaks (ASan), bounded memory, and timing. */
static void test_reuse_many_messages(void **state)
{
    fixture *f = *state;
    script *s = load(f,
                     "for obx in msg:segments('OBX') do\n"
                     "  local code = map('lab-loinc', obx:get('3.1'))\n"
                     "  if code then obx:set('3.1', code) end\n"
                     "  if obx:get('6') == 'mg/dL' then obx:set('6', 'mg/dl') end\n"
                     "end\n"
                     "msg:set('MSH-3', 'TERN')\n",
                     NULL);
    script *flt = load(f, "return msg:get('PID-5.1') ~= 'TEST', 'test'", NULL);
    oru(f, 20);
    script_error e;
    size_t after_warmup = 0;
    enum { RUNS = 5000 };
    double t0 = 0;
    for (int i = 0; i < RUNS; i++) {
        if (i == 100) {
            after_warmup = script_memory_used(s);
            t0 = now_s();
        }
        hl7_error he;
        assert_int_equal(hl7_parse(f->msg, f->wire.p, f->wire.len, &he), HL7_OK);
        bool pass;
        assert_int_equal(script_run_filter(flt, f->msg, &pass, NULL, &e), SCRIPT_OK);
        assert_true(pass);
        assert_int_equal(script_run_transform(s, f->msg, &e), SCRIPT_OK);
    }
    double per = (now_s() - t0) / (RUNS - 100);
    fprintf(stderr, "20-OBX transform + filter: %.1f us per message, Lua state %zu bytes\n",
            per * 1e6, script_memory_used(s));
    assert_true(script_memory_used(s) < after_warmup + (1u << 20));
    tbuf out = TBUF_INIT;
    hl7_serialize(f->msg, &out);
    assert_non_null(strstr(out.p, "MSH|^~\\&|TERN|"));
    assert_non_null(strstr(out.p, "OBX|20|NM|718-7^Local test^L||119|mg/dl|"));
    tbuf_free(&out);
    script_free(s);
    script_free(flt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sandbox_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytecode_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_and_io_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instruction_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_recursion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handle_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_and_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_transform_20_obx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse_many_messages, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
