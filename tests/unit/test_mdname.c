/* Tests for maildir/mdname: new names, parsing names that real Maildir
 * programs write (Dovecot, Courier, mutt, mbsync, offlineimap), the info
 * letter order, keywords, unknown letters kept across a rename, and names
 * that are refused. Every parser input sits at the end of a guard page
 * (guard_copy), so reading one byte past it crashes the test. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildir/mdname.h"
#include "testutil.h"

/* Parse len octets of s from a guarded copy. */
static int parse_n(const char *s, size_t len, struct mdname_info *r)
{
	char *g = guard_copy(s, len);
	int ret = mdname_parse(g, len, r);

	guard_free(g, len);
	return ret;
}

static int parse(const char *s, struct mdname_info *r)
{
	return parse_n(s, strlen(s), r);
}

/* Parse s, rewrite it with new flags/keywords (keeping its other letters),
 * and return the new name in out. */
static void rename_to(const char *s, unsigned flags, uint32_t keywords, char *out, size_t outlen)
{
	struct mdname_info r;

	ck_assert_int_eq(parse(s, &r), 0);
	ck_assert_int_ge(mdname_with_info(out, outlen, s, r.base_len, flags, keywords, r.other), 0);
}

START_TEST(test_new_name)
{
	struct mdname_unique u = { 1700000000, 20046, 2137, 3, "mail.example.org" };
	char out[MDNAME_MAX + 1];
	struct mdname_info r;
	int n = mdname_new(out, sizeof(out), &u, 1234, 1256);

	ck_assert_str_eq(out, "1700000000.M20046P2137Q3.mail.example.org,S=1234,W=1256");
	ck_assert_int_eq(n, (int)strlen(out));
	ck_assert_int_eq(parse(out, &r), 0);
	ck_assert_uint_eq(r.base_len, strlen(out));
	ck_assert_int_eq(r.info, MDNAME_INFO_NONE);
	ck_assert(r.has_size && r.has_vsize);
	ck_assert_uint_eq(r.size, 1234);
	ck_assert_uint_eq(r.vsize, 1256);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(r.keywords, 0);

	/* Extremes of every number still fit. */
	struct mdname_unique big = { UINT64_MAX, UINT32_MAX, UINT32_MAX, UINT64_MAX, "h" };
	ck_assert_int_gt(mdname_new(out, sizeof(out), &big, UINT64_MAX, UINT64_MAX), 0);
	ck_assert_int_eq(parse(out, &r), 0);
	ck_assert_uint_eq(r.size, UINT64_MAX);
	ck_assert_uint_eq(r.vsize, UINT64_MAX);

	/* No host: "localhost". */
	struct mdname_unique nohost = { 1, 2, 3, 4, NULL };
	mdname_new(out, sizeof(out), &nohost, 5, 6);
	ck_assert_str_eq(out, "1.M2P3Q4.localhost,S=5,W=6");
	nohost.host = "";
	mdname_new(out, sizeof(out), &nohost, 5, 6);
	ck_assert_str_eq(out, "1.M2P3Q4.localhost,S=5,W=6");
}
END_TEST

START_TEST(test_new_host_escaped)
{
	struct mdname_unique u = { 1700000000, 1, 2, 0, "a/b:c,d\\e f\x01\xc3\xa9" };
	char out[MDNAME_MAX + 1];
	struct mdname_info r;

	ck_assert_int_gt(mdname_new(out, sizeof(out), &u, 10, 11), 0);
	ck_assert_str_eq(out, "1700000000.M1P2Q0.a\\057b\\072c\\054d\\134e\\040f\\001\\303\\251,S=10,W=11");
	ck_assert_ptr_null(strchr(out, '/'));
	ck_assert_ptr_null(strchr(out, ':'));
	ck_assert_int_eq(parse(out, &r), 0);
	ck_assert(r.has_size && r.size == 10 && r.has_vsize && r.vsize == 11);
}
END_TEST

START_TEST(test_new_host_truncated)
{
	char host[200], out[MDNAME_MAX + 1], *h, *comma;
	struct mdname_unique u = { 1, 2, 3, 4, host };

	/* Plain host: cut at MDNAME_HOST_MAX octets. */
	memset(host, 'x', 150);
	host[150] = '\0';
	ck_assert_int_gt(mdname_new(out, sizeof(out), &u, 1, 1), 0);
	h = strchr(out, 'x');
	comma = strchr(out, ',');
	ck_assert_int_eq(comma - h, MDNAME_HOST_MAX);

	/* Escapes are never cut in half: 62 plain + one escape would be 66. */
	memset(host, 'y', 62);
	host[62] = '/';
	host[63] = '\0';
	mdname_new(out, sizeof(out), &u, 1, 1);
	ck_assert_ptr_null(strstr(out, "\\0"));
	ck_assert_int_eq(strchr(out, ',') - strchr(out, 'y'), 62);

	/* Only escapes: 16 of them make exactly 64. */
	memset(host, '/', 40);
	host[40] = '\0';
	mdname_new(out, sizeof(out), &u, 1, 1);
	h = strchr(out, '\\');
	ck_assert_int_eq(strchr(out, ',') - h, 64);
}
END_TEST

START_TEST(test_new_does_not_fit)
{
	struct mdname_unique u = { 1700000000, 20046, 2137, 3, "host" };
	char out[64];
	const char *want = "1700000000.M20046P2137Q3.host,S=1,W=2";
	size_t wlen = strlen(want);

	ck_assert_int_eq(mdname_new(out, wlen + 1, &u, 1, 2), (int)wlen);
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(mdname_new(out, wlen, &u, 1, 2), -1);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(mdname_new(out, 0, &u, 1, 2), -1);
}
END_TEST

START_TEST(test_parse_dovecot)
{
	const char *name = "1700000000.M20046P2137.host,S=1234,W=1256:2,Sa";
	struct mdname_info r;

	ck_assert_int_eq(parse(name, &r), 0);
	ck_assert_uint_eq(r.base_len, strlen("1700000000.M20046P2137.host,S=1234,W=1256"));
	ck_assert_int_eq(r.info, MDNAME_INFO_2);
	ck_assert(r.has_size && r.size == 1234);
	ck_assert(r.has_vsize && r.vsize == 1256);
	ck_assert_uint_eq(r.flags, MDNAME_SEEN);
	ck_assert_uint_eq(r.keywords, 1u << 0);
	ck_assert_str_eq(r.other, "");
	ck_assert(!r.other_overflow);
}
END_TEST

START_TEST(test_parse_mutt)
{
	struct mdname_info r;

	ck_assert_int_eq(parse("1700000000.12345_0.host:2,RS", &r), 0);
	ck_assert_uint_eq(r.base_len, strlen("1700000000.12345_0.host"));
	ck_assert(!r.has_size && !r.has_vsize);
	ck_assert_uint_eq(r.flags, MDNAME_ANSWERED | MDNAME_SEEN);
	ck_assert_uint_eq(r.keywords, 0);
}
END_TEST

START_TEST(test_parse_courier)
{
	const char *name = "1700000000.M123456P7890V0000000000000803I00000000001A2B3C_0.mail.example.com"
			   ",S=2345:2,FS";
	struct mdname_info r;

	ck_assert_int_eq(parse(name, &r), 0);
	ck_assert_uint_eq(r.base_len, strchr(name, ':') - name);
	ck_assert(r.has_size && r.size == 2345);
	ck_assert(!r.has_vsize);
	ck_assert_uint_eq(r.flags, MDNAME_FLAGGED | MDNAME_SEEN);
}
END_TEST

START_TEST(test_parse_mbsync_offlineimap)
{
	struct mdname_info r;

	/* mbsync: ",U=<uid>" in the base. */
	ck_assert_int_eq(parse("1700000000.12345_1.host,U=42:2,S", &r), 0);
	ck_assert(!r.has_size && !r.has_vsize);
	ck_assert_uint_eq(r.flags, MDNAME_SEEN);

	/* offlineimap: ",U=..,FMD5=.." and a size after them. */
	ck_assert_int_eq(parse("1700000000_0.12345.host,U=123,FMD5=0123abcd,S=77:2,RS", &r), 0);
	ck_assert(r.has_size && r.size == 77);
	ck_assert_uint_eq(r.flags, MDNAME_ANSWERED | MDNAME_SEEN);
}
END_TEST

START_TEST(test_parse_info_kinds)
{
	struct mdname_info r;

	ck_assert_int_eq(parse("1700000000.M1P2.host,S=10", &r), 0);
	ck_assert_int_eq(r.info, MDNAME_INFO_NONE);
	ck_assert_uint_eq(r.base_len, 25);

	ck_assert_int_eq(parse("1700000000.M1P2.host:1,something", &r), 0);
	ck_assert_int_eq(r.info, MDNAME_INFO_1);
	ck_assert_uint_eq(r.base_len, 20);
	ck_assert_uint_eq(r.flags, 0);

	ck_assert_int_eq(parse("1700000000.M1P2.host:2,", &r), 0);
	ck_assert_int_eq(r.info, MDNAME_INFO_2);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(r.keywords, 0);

	/* The base ends at the first ':' (as Dovecot reads it). */
	ck_assert_int_eq(parse("abc:x:2,S", &r), 0);
	ck_assert_int_eq(r.info, MDNAME_INFO_OTHER);
	ck_assert_uint_eq(r.base_len, 3);
	ck_assert_uint_eq(r.flags, 0);

	ck_assert_int_eq(parse("abc:", &r), 0);
	ck_assert_int_eq(r.info, MDNAME_INFO_OTHER);
	ck_assert_int_eq(parse("abc:2", &r), 0);
	ck_assert_int_eq(r.info, MDNAME_INFO_OTHER);
}
END_TEST

START_TEST(test_parse_all_letters)
{
	struct mdname_info r;

	ck_assert_int_eq(parse("x:2,DFPRSTabcdefghijklmnopqrstuvwxyz", &r), 0);
	ck_assert_uint_eq(r.flags, MDNAME_FLAGS_ALL);
	ck_assert_uint_eq(r.keywords, MDNAME_KEYWORDS_ALL);
	ck_assert_str_eq(r.other, "");

	/* Out of order and repeated letters count once. */
	ck_assert_int_eq(parse("x:2,zSSaTa", &r), 0);
	ck_assert_uint_eq(r.flags, MDNAME_SEEN | MDNAME_DELETED);
	ck_assert_uint_eq(r.keywords, (1u << 25) | 1u);
}
END_TEST

START_TEST(test_letter_order)
{
	char out[MDNAME_MAX + 1];
	int n;

	/* D F P R S T, keywords a..z after them, unknown letters in byte order. */
	n = mdname_with_info(out, sizeof(out), "base", 4, MDNAME_FLAGS_ALL, (1u << 25) | 1u, "~0");
	ck_assert_str_eq(out, "base:2,0DFPRSTaz~");
	ck_assert_int_eq(n, (int)strlen(out));

	mdname_with_info(out, sizeof(out), "base", 4, MDNAME_SEEN | MDNAME_ANSWERED, 0, NULL);
	ck_assert_str_eq(out, "base:2,RS");
	mdname_with_info(out, sizeof(out), "base", 4, MDNAME_DELETED | MDNAME_DRAFT | MDNAME_FLAGGED, 1u << 2, "");
	ck_assert_str_eq(out, "base:2,DFTc");
	mdname_with_info(out, sizeof(out), "base", 4, 0, 0, NULL);
	ck_assert_str_eq(out, "base:2,");

	/* Bits beyond the known flags and keywords are ignored. */
	mdname_with_info(out, sizeof(out), "base", 4, 0xffffffffu, 0xffffffffu, NULL);
	ck_assert_str_eq(out, "base:2,DFPRSTabcdefghijklmnopqrstuvwxyz");
}
END_TEST

START_TEST(test_rename_keeps_base_and_other_letters)
{
	const char *name = "1700000000.M20046P2137.host,S=1234,W=1256:2,ISZa";
	char out[MDNAME_MAX + 1];
	struct mdname_info r;

	ck_assert_int_eq(parse(name, &r), 0);
	ck_assert_uint_eq(r.flags, MDNAME_SEEN);
	ck_assert_uint_eq(r.keywords, 1u);
	ck_assert_str_eq(r.other, "IZ");

	/* Mark it a draft, drop \Seen, swap keyword a for b: I and Z stay. */
	rename_to(name, MDNAME_DRAFT, 1u << 1, out, sizeof(out));
	ck_assert_str_eq(out, "1700000000.M20046P2137.host,S=1234,W=1256:2,DIZb");

	/* Digits and punctuation are other letters too. */
	ck_assert_int_eq(parse("x:2,S1,!", &r), 0);
	ck_assert_str_eq(r.other, "!,1");
	rename_to("x:2,S1,!", MDNAME_FLAGGED, 0, out, sizeof(out));
	ck_assert_str_eq(out, "x:2,!,1F");

	/* A ":1," info is replaced by ":2,". */
	rename_to("x:1,foo", MDNAME_SEEN, 0, out, sizeof(out));
	ck_assert_str_eq(out, "x:2,S");
	/* No info yet (a file moving from new/ to cur/). */
	rename_to("1700000000.M1P2.host,S=5,W=6", MDNAME_SEEN, 0, out, sizeof(out));
	ck_assert_str_eq(out, "1700000000.M1P2.host,S=5,W=6:2,S");
}
END_TEST

START_TEST(test_other_overflow)
{
	struct mdname_info r;

	/* 16 distinct unknown letters fit... */
	ck_assert_int_eq(parse("x:2,ABCEGHIJKLMNOQUV", &r), 0);
	ck_assert_str_eq(r.other, "ABCEGHIJKLMNOQUV");
	ck_assert(!r.other_overflow);
	/* ...a 17th does not: the lowest 16 are kept and the caller is told. */
	ck_assert_int_eq(parse("x:2,ZABCEGHIJKLMNOQUV", &r), 0);
	ck_assert_str_eq(r.other, "ABCEGHIJKLMNOQUV");
	ck_assert(r.other_overflow);
	/* Repeats do not count twice. */
	ck_assert_int_eq(parse("x:2,AAAAAAAAAAAAAAAAAAAAAAAAA", &r), 0);
	ck_assert_str_eq(r.other, "A");
	ck_assert(!r.other_overflow);
}
END_TEST

START_TEST(test_sizes)
{
	struct mdname_info r;

	ck_assert_int_eq(parse("x,S=18446744073709551615,W=0", &r), 0);
	ck_assert(r.has_size && r.size == UINT64_MAX);
	ck_assert(r.has_vsize && r.vsize == 0);

	/* Overflow, junk and empty values are not sizes; the name is fine. */
	ck_assert_int_eq(parse("x,S=18446744073709551616,W=99999999999999999999", &r), 0);
	ck_assert(!r.has_size && !r.has_vsize);
	ck_assert_uint_eq(r.size, 0);
	ck_assert_int_eq(parse("x,S=12a,W=", &r), 0);
	ck_assert(!r.has_size && !r.has_vsize);
	ck_assert_int_eq(parse("x,S=-1,W=+5", &r), 0);
	ck_assert(!r.has_size && !r.has_vsize);

	/* The first S= counts; the fields end at ':' and ','. */
	ck_assert_int_eq(parse("x,S=1,S=2:2,S", &r), 0);
	ck_assert(r.has_size && r.size == 1);
	ck_assert_int_eq(parse("x,W=7,S=8", &r), 0);
	ck_assert(r.size == 8 && r.vsize == 7);
	ck_assert_int_eq(parse("x,XS=1,SW=2", &r), 0);
	ck_assert(!r.has_size && !r.has_vsize);
	/* S= in the info is not a size. */
	ck_assert_int_eq(parse("x:2,S=5", &r), 0);
	ck_assert(!r.has_size);
	/* ",S=" without a host before it still parses. */
	ck_assert_int_eq(parse("1,S=3", &r), 0);
	ck_assert(r.has_size && r.size == 3);
}
END_TEST

START_TEST(test_garbage_rejected)
{
	static const char *const bad[] = {
		"", ".", "..", ".hidden", ".1700000000.M1P2.host:2,S", "a/b", "cur/1700000000.M1P2.host",
		":2,S", ":", "abc\ndef", "abc\r", "x:2,S\n", "x:2,S/",
	};
	struct mdname_info r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(bad[i], &r) == -1, "accepted \"%s\"", bad[i]);
	ck_assert_int_eq(parse_n("ab\0c", 4, &r), -1);

	/* Length: 255 is a file name, 256 is not. */
	char longname[MDNAME_MAX + 2];
	memset(longname, 'n', sizeof(longname));
	ck_assert_int_eq(parse_n(longname, MDNAME_MAX, &r), 0);
	ck_assert_uint_eq(r.base_len, MDNAME_MAX);
	ck_assert_int_eq(parse_n(longname, MDNAME_MAX + 1, &r), -1);
}
END_TEST

START_TEST(test_host_escape_names_from_others)
{
	struct mdname_info r;

	/* Another server's name with an escaped host parses as usual. */
	ck_assert_int_eq(parse("1700000000.M1P2.my\\057host\\072x,S=3,W=4:2,T", &r), 0);
	ck_assert(r.size == 3 && r.vsize == 4);
	ck_assert_uint_eq(r.flags, MDNAME_DELETED);
}
END_TEST

START_TEST(test_with_info_limits)
{
	char out[MDNAME_MAX + 1];
	char big[MDNAME_MAX + 1];

	/* Exactly enough room, then one octet short. */
	ck_assert_int_eq(mdname_with_info(out, 10, "base", 4, MDNAME_SEEN | MDNAME_FLAGGED, 0, NULL), 9);
	ck_assert_str_eq(out, "base:2,FS");
	ck_assert_int_eq(mdname_with_info(out, 9, "base", 4, MDNAME_SEEN | MDNAME_FLAGGED, 0, NULL), -1);
	ck_assert_str_eq(out, "");

	/* Never longer than a file name may be. */
	memset(big, 'b', sizeof(big));
	ck_assert_int_eq(mdname_with_info(out, sizeof(out), big, MDNAME_MAX - 3, 0, 0, NULL), MDNAME_MAX);
	ck_assert_int_eq(mdname_with_info(out, sizeof(out), big, MDNAME_MAX - 3, MDNAME_SEEN, 0, NULL), -1);

	/* The base must be a base. */
	ck_assert_int_eq(mdname_with_info(out, sizeof(out), "base", 0, 0, 0, NULL), -1);
	ck_assert_int_eq(mdname_with_info(out, sizeof(out), "ba:se", 5, 0, 0, NULL), -1);
	ck_assert_int_eq(mdname_with_info(out, sizeof(out), "ba/se", 5, 0, 0, NULL), -1);

	/* Only base_len octets of name are used: the old info goes. */
	ck_assert_int_eq(mdname_with_info(out, sizeof(out), "base:2,RS", 4, MDNAME_DRAFT, 0, NULL), 8);
	ck_assert_str_eq(out, "base:2,D");

	/* '/', CR and LF in other are dropped; they cannot be in a name. */
	mdname_with_info(out, sizeof(out), "base", 4, 0, 0, "A/\r\nB");
	ck_assert_str_eq(out, "base:2,AB");
}
END_TEST

START_TEST(test_with_info_in_place)
{
	char buf[MDNAME_MAX + 1] = "1700000000.M1P2.host:2,S";

	ck_assert_int_eq(mdname_with_info(buf, sizeof(buf), buf, 20, MDNAME_SEEN | MDNAME_ANSWERED, 1u << 3, NULL),
			 (int)strlen("1700000000.M1P2.host:2,RSd"));
	ck_assert_str_eq(buf, "1700000000.M1P2.host:2,RSd");
}
END_TEST

START_TEST(test_flag_chars)
{
	char out[8];

	ck_assert_uint_eq(mdname_flags_from_chars("SRFTDP", 6), MDNAME_FLAGS_ALL);
	ck_assert_uint_eq(mdname_flags_from_chars("xyzSabc", 7), MDNAME_SEEN);
	ck_assert_uint_eq(mdname_flags_from_chars("S", 0), 0);
	ck_assert_uint_eq(mdname_flags_from_chars("s", 1), 0);

	ck_assert_uint_eq(mdname_flags_to_chars(MDNAME_FLAGS_ALL, out), 6);
	ck_assert_str_eq(out, "DFPRST");
	ck_assert_uint_eq(mdname_flags_to_chars(0, out), 0);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(mdname_flags_to_chars(MDNAME_SEEN | MDNAME_PASSED, out), 2);
	ck_assert_str_eq(out, "PS");

	/* Each flag alone, both ways. */
	for (unsigned f = 1; f <= MDNAME_PASSED; f <<= 1) {
		ck_assert_uint_eq(mdname_flags_to_chars(f, out), 1);
		ck_assert_uint_eq(mdname_flags_from_chars(out, 1), f);
	}
}
END_TEST

START_TEST(test_round_trip_all_flag_sets)
{
	char out[MDNAME_MAX + 1];
	struct mdname_info r;

	for (unsigned flags = 0; flags <= MDNAME_FLAGS_ALL; flags++) {
		uint32_t kw = (flags * 2654435761u) & MDNAME_KEYWORDS_ALL;
		int n = mdname_with_info(out, sizeof(out), "1700000000.M1P2.h,S=1,W=2", 25, flags, kw, "Q");

		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(parse(out, &r), 0);
		ck_assert_uint_eq(r.base_len, 25);
		ck_assert_uint_eq(r.flags, flags);
		ck_assert_uint_eq(r.keywords, kw);
		ck_assert_str_eq(r.other, "Q");
		ck_assert(r.size == 1 && r.vsize == 2);
	}
}
END_TEST

/* Every prefix of a real name parses or fails cleanly, without reading
 * past its end. */
START_TEST(test_every_prefix)
{
	const char *name = "1700000000.M20046P2137.host,S=1234,W=1256:2,DFIRSTabz";
	struct mdname_info r;

	for (size_t len = 0; len <= strlen(name); len++) {
		int ret = parse_n(name, len, &r);
		ck_assert_int_eq(ret, len == 0 ? -1 : 0);
		if (ret == 0)
			ck_assert_uint_le(r.base_len, len);
	}
}
END_TEST

static Suite *mdname_suite(void)
{
	Suite *s = suite_create("mdname");
	TCase *tc = tcase_create("new");

	tcase_add_test(tc, test_new_name);
	tcase_add_test(tc, test_new_host_escaped);
	tcase_add_test(tc, test_new_host_truncated);
	tcase_add_test(tc, test_new_does_not_fit);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_dovecot);
	tcase_add_test(tc, test_parse_mutt);
	tcase_add_test(tc, test_parse_courier);
	tcase_add_test(tc, test_parse_mbsync_offlineimap);
	tcase_add_test(tc, test_parse_info_kinds);
	tcase_add_test(tc, test_parse_all_letters);
	tcase_add_test(tc, test_other_overflow);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_garbage_rejected);
	tcase_add_test(tc, test_host_escape_names_from_others);
	tcase_add_test(tc, test_every_prefix);
	suite_add_tcase(s, tc);

	tc = tcase_create("info");
	tcase_add_test(tc, test_letter_order);
	tcase_add_test(tc, test_rename_keeps_base_and_other_letters);
	tcase_add_test(tc, test_with_info_limits);
	tcase_add_test(tc, test_with_info_in_place);
	tcase_add_test(tc, test_flag_chars);
	tcase_add_test(tc, test_round_trip_all_flag_sets);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(mdname_suite());
}
