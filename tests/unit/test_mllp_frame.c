/*
 * Unit tests for the MLLP framer (src/net/mllp_frame.c): frames split at
 * every byte position and fed one byte at a time, garbage between frames,
 * oversized frames, back-to-back and empty frames, the forgiveness rules
 * (missing CR, 0x1C inside a frame, a new start block inside a frame), and
 * that steady-state framing reuses one buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/mllp_frame.h"

/* Feeds data in chunks of the sizes given cyclically by `sizes` (0 ends the
 * list; NULL means all at once) and renders what came out as text:
 * "F[payload]" per frame, "O[head]" per oversized frame, with control bytes
 * written as <0b>, <1c>, <0d>. */
static void run(mllp_framer *f, const char *data, size_t len, const size_t *sizes, tbuf *out)
{
    size_t pos = 0, si = 0;
    while (pos < len) {
        size_t n = len - pos;
        if (sizes) {
            if (sizes[si] == 0) si = 0;
            if (sizes[si] < n) n = sizes[si];
            si++;
        }
        const char *chunk = data + pos;
        size_t left = n;
        for (;;) {
            mllp_frame fr;
            size_t used;
            mllp_frame_kind k = mllp_framer_feed(f, chunk, left, &used, &fr);
            assert_true(used <= left);
            chunk += used;
            left -= used;
            if (k == MLLP_FRAME_NONE) {
                assert_int_equal(left, 0);
                break;
            }
            tbuf_puts(out, k == MLLP_FRAME_OK ? "F[" : "O[");
            for (size_t i = 0; i < fr.len; i++) {
                unsigned char c = (unsigned char)fr.data[i];
                if (c < 0x20)
                    tbuf_printf(out, "<%02x>", c);
                else
                    tbuf_putc(out, (char)c);
            }
            tbuf_putc(out, ']');
        }
        pos += n;
    }
}

static char *frames_of(size_t max, const char *data, size_t len, const size_t *sizes,
                       mllp_framer_stats *st)
{
    mllp_framer *f = mllp_framer_new(max);
    tbuf out = TBUF_INIT;
    tbuf_puts(&out, "");
    run(f, data, len, sizes, &out);
    if (st) mllp_framer_stats_get(f, st);
    mllp_framer_free(f);
    return tbuf_detach(&out, NULL);
}

/* The result must not depend on how the input is cut: two chunks split at
 * every position, and one byte at a time. */
static void check_all_splits(size_t max, const char *data, size_t len, const char *want)
{
    char *got = frames_of(max, data, len, NULL, NULL);
    assert_string_equal(got, want);
    free(got);
    mllp_framer_stats whole;
    free(frames_of(max, data, len, NULL, &whole));
    for (size_t k = 0; k <= len; k++) {
        mllp_framer *f = mllp_framer_new(max);
        tbuf out = TBUF_INIT;
        tbuf_puts(&out, "");
        run(f, data, k, NULL, &out);
        run(f, data + k, len - k, NULL, &out);
        if (strcmp(out.p, want) != 0) fail_msg("split at %zu: got %s, want %s", k, out.p, want);
        mllp_framer_stats st;
        mllp_framer_stats_get(f, &st);
        assert_int_equal(st.bytes, len);
        assert_int_equal(st.garbage, whole.garbage);
        assert_int_equal(st.frames, whole.frames);
        assert_int_equal(st.oversized, whole.oversized);
        mllp_framer_free(f);
        tbuf_free(&out);
    }
    static const size_t ones[] = {1, 0};
    static const size_t odd[] = {3, 1, 7, 2, 0};
    got = frames_of(max, data, len, ones, NULL);
    assert_string_equal(got, want);
    free(got);
    got = frames_of(max, data, len, odd, NULL);
    assert_string_equal(got, want);
    free(got);
}

#define S(lit) lit, sizeof(lit) - 1

static void test_single_frame_in_place(void **state)
{
    (void)state;
    static const char in[] = "\013MSH|^~\\&|A\rPID|1\r\034\r";
    mllp_framer *f = mllp_framer_new(0);
    mllp_frame fr;
    size_t used;
    assert_int_equal(mllp_framer_feed(f, in, sizeof(in) - 1, &used, &fr), MLLP_FRAME_OK);
    assert_int_equal(used, sizeof(in) - 1);
    assert_ptr_equal(fr.data, in + 1); /* no copy when the frame is in one chunk */
    assert_int_equal(fr.len, sizeof(in) - 4);
    assert_false(mllp_framer_in_frame(f));
    assert_int_equal(mllp_framer_feed(f, in, 0, &used, &fr), MLLP_FRAME_NONE);
    assert_int_equal(used, 0);
    mllp_framer_free(f);
}

static void test_back_to_back(void **state)
{
    (void)state;
    check_all_splits(0, S("\013A1\r\034\r\013B2\r\034\r\013C3\r\034\r"),
                     "F[A1<0d>]F[B2<0d>]F[C3<0d>]");
}

static void test_garbage_between_frames(void **state)
{
    (void)state;
    static const char in[] = "junk\013A\034\r\r\nxy\034\r\013B\034\r\n";
    check_all_splits(0, in, sizeof(in) - 1, "F[A]F[B]");
    mllp_framer_stats st;
    free(frames_of(0, in, sizeof(in) - 1, NULL, &st));
    /* "junk", "xy" and the stray 0x1C count; CR and LF do not */
    assert_int_equal(st.garbage, 7);
    assert_int_equal(st.frames, 2);
}

static void test_empty_frames(void **state)
{
    (void)state;
    static const char in[] = "\013\034\r\013A\034\r\013\034\r";
    check_all_splits(0, in, sizeof(in) - 1, "F[]F[A]F[]");
    mllp_framer_stats st;
    free(frames_of(0, in, sizeof(in) - 1, NULL, &st));
    assert_int_equal(st.empty, 2);
}

static void test_missing_cr_tolerated(void **state)
{
    (void)state;
    static const char in[] = "\013A\034\013B\034\r";
    check_all_splits(0, in, sizeof(in) - 1, "F[A]F[B]");
    mllp_framer_stats st;
    free(frames_of(0, in, sizeof(in) - 1, NULL, &st));
    assert_int_equal(st.missing_cr, 1);
}

static void test_end_block_as_payload(void **state)
{
    (void)state;
    /* 0x1C not followed by CR or 0x0B is payload, never a cut */
    check_all_splits(0, S("\013ab\034cd\034\r"), "F[ab<1c>cd]");
    check_all_splits(0, S("\013ab\034\034\r"), "F[ab<1c>]");
    check_all_splits(0, S("\013\034\034\034\r"), "F[<1c><1c>]");
}

static void test_restart_inside_frame(void **state)
{
    (void)state;
    static const char in[] = "\013partial\013whole\034\r";
    check_all_splits(0, in, sizeof(in) - 1, "F[whole]");
    mllp_framer_stats st;
    free(frames_of(0, in, sizeof(in) - 1, NULL, &st));
    assert_int_equal(st.restarted, 1);
}

static void test_oversized(void **state)
{
    (void)state;
    /* max 8: a 20-byte frame is reported with its first 8 bytes, skipped, and
     * the next frame comes through */
    check_all_splits(8, S("\0130123456789abcdefghij\034\r\013ok\034\r"), "O[01234567]F[ok]");
    /* exactly max is fine, max + 1 is not */
    check_all_splits(8, S("\01301234567\034\r"), "F[01234567]");
    check_all_splits(8, S("\013012345678\034\r"), "O[01234567]");
    /* the oversized frame holds a 0x1C as payload: still skipped as a whole */
    check_all_splits(4, S("\013abcdef\034ghi\034\rxx\013ok\034\r"), "O[abcd]F[ok]");
    /* the oversized frame is abandoned by a new start block */
    check_all_splits(4, S("\013abcdefgh\013ok\034\r"), "O[abcd]F[ok]");
    /* the oversized frame's missing CR */
    check_all_splits(4, S("\013abcdefgh\034\013ok\034\r"), "O[abcd]F[ok]");
    /* a 0x1C as payload pushes the frame over the limit */
    check_all_splits(4, S("\013abcd\034e\034\r\013ok\034\r"), "O[abcd]F[ok]");
    mllp_framer_stats st;
    free(frames_of(8, S("\0130123456789\034\r\0130123456789\034\r\013ok\034\r"), NULL, &st));
    assert_int_equal(st.oversized, 2);
    assert_int_equal(st.frames, 1);
}

static void test_buffer_reused(void **state)
{
    (void)state;
    /* frames that span chunks are assembled in one buffer that is reused */
    mllp_framer *f = mllp_framer_new(0);
    const char *first = NULL;
    for (int i = 0; i < 100; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof(msg), "\013MSH|^~\\&|%d\r\034\r", i);
        mllp_frame fr;
        size_t used;
        assert_int_equal(mllp_framer_feed(f, msg, 5, &used, &fr), MLLP_FRAME_NONE);
        assert_int_equal(mllp_framer_feed(f, msg + 5, (size_t)n - 5, &used, &fr), MLLP_FRAME_OK);
        if (!first) first = fr.data;
        assert_ptr_equal(fr.data, first);
        assert_int_equal(fr.len, (size_t)n - 3);
        assert_memory_equal(fr.data, msg + 1, fr.len);
    }
    mllp_framer_free(f);
}

static void test_in_frame_and_reset(void **state)
{
    (void)state;
    mllp_framer *f = mllp_framer_new(0);
    mllp_frame fr;
    size_t used;
    assert_int_equal(mllp_framer_feed(f, S("\013half"), &used, &fr), MLLP_FRAME_NONE);
    assert_true(mllp_framer_in_frame(f));
    mllp_framer_reset(f);
    assert_false(mllp_framer_in_frame(f));
    /* after the reset, the rest of the old frame is garbage */
    assert_int_equal(mllp_framer_feed(f, S("tail\034\r\013new\034\r"), &used, &fr), MLLP_FRAME_OK);
    assert_int_equal(fr.len, 3);
    assert_memory_equal(fr.data, "new", 3);
    mllp_framer_free(f);
}

static void test_wrap_round_trip(void **state)
{
    (void)state;
    tbuf b = TBUF_INIT;
    mllp_frame_wrap(&b, "MSH|x\r", 6);
    mllp_frame_wrap(&b, "", 0);
    assert_int_equal(b.len, 9 + 3);
    char *got = frames_of(0, b.p, b.len, NULL, NULL);
    assert_string_equal(got, "F[MSH|x<0d>]F[]");
    free(got);
    tbuf_free(&b);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int s = MLLP_OK; s <= MLLP_ERR_CANCELLED; s++)
        assert_true(strlen(mllp_strerror((mllp_status)s)) > 0);
    assert_string_equal(mllp_strerror((mllp_status)999), "unknown MLLP status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_frame_in_place),  cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_garbage_between_frames), cmocka_unit_test(test_empty_frames),
        cmocka_unit_test(test_missing_cr_tolerated),   cmocka_unit_test(test_end_block_as_payload),
        cmocka_unit_test(test_restart_inside_frame),   cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_buffer_reused),          cmocka_unit_test(test_in_frame_and_reset),
        cmocka_unit_test(test_wrap_round_trip),        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
