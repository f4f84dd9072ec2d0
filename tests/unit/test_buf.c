#include <string.h>

#include "core/buf.h"
#include "core/trace.h"
#include "testutil.h"

START_TEST(append_respects_max)
{
	struct buf b;
	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, "hello", 5), 0);
	ck_assert_int_eq(buf_append(&b, "world!", 6), -1);
	ck_assert_uint_eq(buf_len(&b), 5); /* unchanged after a refused append */
	ck_assert_int_eq(buf_append(&b, "world", 5), 0);
	ck_assert_uint_eq(buf_room(&b), 0);
	ck_assert(memcmp(buf_ptr(&b), "helloworld", 10) == 0);
	buf_consume(&b, 5);
	ck_assert_uint_eq(buf_room(&b), 5);
	ck_assert_int_eq(buf_append(&b, "12345", 5), 0); /* compacts */
	ck_assert(memcmp(buf_ptr(&b), "world12345", 10) == 0);
	ck_assert_int_eq(buf_printf(&b, "x"), -1);
	buf_reset(&b);
	ck_assert_int_eq(buf_printf(&b, "%d-%s", 42, "ok"), 0);
	ck_assert(memcmp(buf_ptr(&b), "42-ok", 5) == 0);
	buf_free(&b);
}
END_TEST

START_TEST(printf_long)
{
	struct buf b;
	char big[3000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_init(&b, 4096);
	ck_assert_int_eq(buf_printf(&b, "<%s>", big), 0);
	ck_assert_uint_eq(buf_len(&b), sizeof(big) + 1);
	ck_assert_int_eq(buf_printf(&b, "%s", big), -1);
	buf_free(&b);
}
END_TEST

START_TEST(shrink_gives_back_storage)
{
	struct buf b;
	char big[5000];
	memset(big, 'x', sizeof(big));
	buf_init(&b, 1 << 20);
	ck_assert_int_eq(buf_append(&b, big, sizeof(big)), 0);
	ck_assert_uint_ge(b.cap, sizeof(big));
	buf_shrink(&b, 1024);
	ck_assert_uint_ge(b.cap, sizeof(big)); /* holds data that needs it */

	buf_consume(&b, sizeof(big) - 10);
	buf_shrink(&b, 1024);
	ck_assert_uint_le(b.cap, 1024);
	ck_assert_uint_eq(buf_len(&b), 10);
	ck_assert(memcmp(buf_ptr(&b), big, 10) == 0);
	ck_assert_int_eq(buf_append(&b, "tail", 4), 0);
	ck_assert(memcmp(buf_ptr(&b) + 10, "tail", 4) == 0);

	buf_reset(&b);
	buf_shrink(&b, 0);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_int_eq(buf_append(&b, "again", 5), 0); /* usable afterwards */
	ck_assert(memcmp(buf_ptr(&b), "again", 5) == 0);
	buf_shrink(&b, 4096);                            /* small: kept */
	ck_assert_ptr_nonnull(b.data);
	buf_free(&b);
}
END_TEST

START_TEST(trace_escape_controls)
{
	char out[64];
	trace_escape("a\r\n\t\\\x01\xff", 7, out, sizeof(out));
	ck_assert_str_eq(out, "a\\r\\n\\t\\\\\\x01\\xff");
	char small[8];
	trace_escape("0123456789", 10, small, sizeof(small));
	ck_assert_str_eq(small, "0123...");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, append_respects_max);
	tcase_add_test(tc, printf_long);
	tcase_add_test(tc, shrink_gives_back_storage);
	tcase_add_test(tc, trace_escape_controls);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
