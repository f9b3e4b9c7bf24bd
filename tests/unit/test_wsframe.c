/* test_wsframe.c - the WebSocket server's frames: RFC 6455's own examples, headers at the
 * length boundaries, whole frames and close codes, and the client frames refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "blockpipe/error.h"
#include "util/buf.h"
#include "util/wsframe.h"

static void test_ws_accept_and_frames(void **state)
{
    (void)state;
    char accept[BP_WSFRAME_ACCEPT_LEN + 1];
    assert_int_equal(bp_wsframe_accept("dGhlIHNhbXBsZSBub25jZQ==", accept), 0);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 1.3 */
    assert_int_equal(bp_wsframe_accept("short", accept), BP_EINVAL);

    uint8_t hdr[BP_WSFRAME_HEADER_MAX];
    assert_int_equal(bp_wsframe_header(BP_WSFRAME_TEXT, 5, hdr), 2);
    assert_true(hdr[0] == 0x81 && hdr[1] == 5);
    assert_int_equal(bp_wsframe_header(BP_WSFRAME_TEXT, 300, hdr), 4);
    assert_true(hdr[1] == 126 && hdr[2] == 1 && hdr[3] == 44);
    assert_int_equal(bp_wsframe_header(BP_WSFRAME_PONG, 70000, hdr), 10);
    assert_true(hdr[0] == 0x8a && hdr[1] == 127 && hdr[7] == 1 && hdr[8] == 0x11);

    /* RFC 6455 5.7: a masked "Hello" */
    uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    bp_wsframe f;
    for (size_t n = 0; n < sizeof(hello); n++)
        assert_int_equal(bp_wsframe_parse(hello, n, 100, &f), 0);
    assert_int_equal(bp_wsframe_parse(hello, sizeof(hello), 100, &f), sizeof(hello));
    assert_int_equal(f.op, BP_WSFRAME_TEXT);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "Hello", 5);
    uint8_t unmasked[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    assert_int_equal(bp_wsframe_parse(unmasked, sizeof(unmasked), 100, &f), BP_EPARSE);
    uint8_t fragment[] = {0x01, 0x81, 0, 0, 0, 0, 'H'};
    assert_int_equal(bp_wsframe_parse(fragment, sizeof(fragment), 100, &f), BP_EPARSE);
    uint8_t big[] = {0x81, 0xfe, 0x01, 0x00, 0, 0, 0, 0};
    assert_int_equal(bp_wsframe_parse(big, sizeof(big), 255, &f), BP_ETOOBIG);
    uint8_t ping[] = {0x89, 0xfe, 0x00, 0x80, 0, 0, 0, 0};
    assert_int_equal(bp_wsframe_parse(ping, sizeof(ping), 1000, &f), BP_EPARSE);
}

static void test_append_and_close(void **state)
{
    (void)state;
    bp_buf b;
    bp_buf_init(&b, 0);
    assert_int_equal(bp_wsframe_append(&b, BP_WSFRAME_TEXT, "Hello", 5), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "\x81\x05Hello", 7);
    bp_buf_reset(&b);
    char big[300];
    memset(big, 'x', sizeof(big));
    assert_int_equal(bp_wsframe_append(&b, BP_WSFRAME_TEXT, big, sizeof(big)), 0);
    assert_int_equal(b.len, 4 + sizeof(big));
    assert_memory_equal(b.data, "\x81\x7e\x01\x2c", 4);
    bp_buf_reset(&b);
    assert_int_equal(bp_wsframe_append_close(&b, BP_WSFRAME_TOO_BIG), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "\x88\x02\x03\xf1", 4); /* 1009 */
    bp_buf_release(&b);

    /* Nothing of a frame that does not fit goes out: no header without its payload. */
    bp_buf_init(&b, 8);
    assert_int_equal(bp_wsframe_append(&b, BP_WSFRAME_TEXT, "1234567", 7), BP_ETOOBIG);
    assert_int_equal(b.len, 0);
    bp_buf_release(&b);

    assert_int_equal(bp_wsframe_close_code(BP_ETOOBIG), 1009);
    assert_int_equal(bp_wsframe_close_code(BP_EPARSE), 1002);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_accept_and_frames),
        cmocka_unit_test(test_append_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
