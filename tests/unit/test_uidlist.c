/* Tests for maildir/uidlist: Dovecot's dovecot-uidlist, versions 3 and 1,
 * as Dovecot and Courier leave them (lines appended past the header's N,
 * extension fields we do not use, old entries that still carry their
 * info); errors naming their line; write -> read round trips; appends that
 * create the file, follow a torn line, or wait for a lock; stale locks;
 * the base index over many entries. Parser inputs come from guard_copy(). */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "maildir/uidlist.h"
#include "testutil.h"

static int parse_n(const char *text, size_t len, struct uidlist *ul, char **err)
{
	char *g = guard_copy(text, len);
	int ret = uidlist_parse(g, len, ul, err);

	guard_free(g, len);
	return ret;
}

static int parse(const char *text, struct uidlist *ul, char **err)
{
	return parse_n(text, strlen(text), ul, err);
}

static void parse_ok(const char *text, struct uidlist *ul)
{
	char *err = NULL;
	int ret = parse(text, ul, &err);

	ck_assert_msg(ret == 0, "parse failed: %s", err != NULL ? err : "?");
	ck_assert_ptr_null(err);
}

static bool is_zero(const struct uidlist *ul)
{
	static const struct uidlist zero;
	return memcmp(ul, &zero, sizeof(zero)) == 0;
}

/* A scratch directory per test, removed with its files afterwards. */
static char tmpdir[64];

static void tmp_setup(void)
{
	strcpy(tmpdir, "/tmp/pb-uidlist-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *tmp_path(const char *name)
{
	static char buf[4][128];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, 128, "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

static char *slurp(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* What a Dovecot 2.3 INBOX looks like after a few deliveries and a POP3
 * migration: sizes in the names, W for one whose name lacks it, POP3 UIDL
 * (P) and order (O) and a message GUID (G) for others. */
static const char dovecot_v3[] =
	"3 V1700000000 N6 G0123456789abcdef0123456789abcdef\n"
	"1 :1700000000.M20046P2137.mx1,S=1234,W=1256\n"
	"2 W2210 :1700000100.M311425P2140.mx1,S=2180\n"
	"4 GA7df0011 P000012ab O2 :1700000200.M3P4.mx1,S=99,W=101\n"
	"5 S100 W105 :1700000300.12345_0.laptop\n";

START_TEST(test_parse_v3)
{
	struct uidlist ul;
	const struct uidlist_entry *e;

	parse_ok(dovecot_v3, &ul);
	ck_assert_uint_eq(ul.version, 3);
	ck_assert_uint_eq(ul.uidvalidity, 1700000000);
	ck_assert_uint_eq(ul.next_uid, 6);
	ck_assert_str_eq(ul.guid, "0123456789abcdef0123456789abcdef");
	ck_assert_ptr_null(ul.extra_header);
	ck_assert_uint_eq(ul.n, 4);

	e = &ul.entries[0];
	ck_assert_uint_eq(e->uid, 1);
	ck_assert_str_eq(e->base, "1700000000.M20046P2137.mx1,S=1234,W=1256");
	ck_assert(!e->has_size && !e->has_vsize);
	ck_assert_ptr_null(e->ext);

	e = &ul.entries[1];
	ck_assert_uint_eq(e->uid, 2);
	ck_assert(!e->has_size && e->has_vsize && e->vsize == 2210);

	e = &ul.entries[2];
	ck_assert_uint_eq(e->uid, 4);
	ck_assert_str_eq(e->ext, "GA7df0011 P000012ab O2");
	ck_assert_str_eq(e->base, "1700000200.M3P4.mx1,S=99,W=101");

	e = &ul.entries[3];
	ck_assert(e->has_size && e->size == 100 && e->has_vsize && e->vsize == 105);
	ck_assert_str_eq(e->base, "1700000300.12345_0.laptop");

	uidlist_free(&ul);
	ck_assert(is_zero(&ul));
}
END_TEST

/* Dovecot appends lines for new mail without touching the header. */
START_TEST(test_parse_appended_past_header)
{
	struct uidlist ul;

	parse_ok("3 V1700000000 N3 G0123456789abcdef0123456789abcdef\n"
		 "1 :a\n"
		 "2 :b\n"
		 "5 :c\n"
		 "9 W10 :d\n",
		 &ul);
	ck_assert_uint_eq(ul.n, 4);
	ck_assert_uint_eq(ul.next_uid, 10);
	uidlist_free(&ul);

	/* And the header may be ahead of the lines (expunged at the end). */
	parse_ok("3 V1700000000 N50\n1 :a\n", &ul);
	ck_assert_uint_eq(ul.next_uid, 50);
	ck_assert_str_eq(ul.guid, "");
	uidlist_free(&ul);

	/* An empty folder. */
	parse_ok("3 V7 N1 G0123456789ABCDEF0123456789ABCDEF\n", &ul);
	ck_assert_uint_eq(ul.n, 0);
	ck_assert_uint_eq(ul.next_uid, 1);
	ck_assert_str_eq(ul.guid, "0123456789ABCDEF0123456789ABCDEF");
	uidlist_free(&ul);
}
END_TEST

/* Dovecot 1.0 and Courier (courierimapuiddb) */
START_TEST(test_parse_v1)
{
	struct uidlist ul;

	parse_ok("1 1100000000 5\n"
		 "1 1100000000.12345_0.oldhost:2,S\n"
		 "3 1100000001.M1P2.oldhost,S=10\n",
		 &ul);
	ck_assert_uint_eq(ul.version, 1);
	ck_assert_uint_eq(ul.uidvalidity, 1100000000);
	ck_assert_uint_eq(ul.next_uid, 5);
	ck_assert_uint_eq(ul.n, 2);
	ck_assert_str_eq(ul.entries[0].base, "1100000000.12345_0.oldhost");
	ck_assert_str_eq(ul.entries[1].base, "1100000001.M1P2.oldhost,S=10");
	ck_assert_uint_eq(ul.entries[1].uid, 3);

	/* Written back, it is version 3. */
	size_t len;
	char *text = uidlist_format(&ul, &len);
	ck_assert_str_eq(text, "3 V1100000000 N5\n"
			       "1 :1100000000.12345_0.oldhost\n"
			       "3 :1100000001.M1P2.oldhost,S=10\n");
	free(text);
	uidlist_free(&ul);

	parse_ok("1 1100000000 2\n1 a\n7 b\n", &ul);
	ck_assert_uint_eq(ul.next_uid, 8);
	uidlist_free(&ul);
}
END_TEST

START_TEST(test_parse_header_extra_kept)
{
	struct uidlist ul;
	size_t len;
	char *text;

	parse_ok("3 V1 N2  G0123456789abcdef0123456789abcdef Pfoo  X Ybar\n1 :a\n", &ul);
	ck_assert_str_eq(ul.extra_header, "Pfoo X Ybar");
	text = uidlist_format(&ul, &len);
	ck_assert_str_eq(text, "3 V1 N2 G0123456789abcdef0123456789abcdef Pfoo X Ybar\n1 :a\n");
	ck_assert_uint_eq(len, strlen(text));
	free(text);
	uidlist_free(&ul);
}
END_TEST

START_TEST(test_parse_tolerated)
{
	struct uidlist ul;

	/* Invalid extension keys, bad and repeated S/W: dropped. */
	parse_ok("3 V1 N1\n1 abc S12x W5 W6 Xok :a\n2  S1  :b c\n", &ul);
	ck_assert(!ul.entries[0].has_size);
	ck_assert(ul.entries[0].has_vsize && ul.entries[0].vsize == 5);
	ck_assert_str_eq(ul.entries[0].ext, "Xok");
	ck_assert(ul.entries[1].has_size && ul.entries[1].size == 1);
	ck_assert_str_eq(ul.entries[1].base, "b c");
	uidlist_free(&ul);

	/* An entry that still carries its info. */
	parse_ok("3 V1 N1\n1 :a,S=5:2,RS\n", &ul);
	ck_assert_str_eq(ul.entries[0].base, "a,S=5");
	uidlist_free(&ul);

	/* The same base twice: the later uid wins, as in Dovecot. */
	parse_ok("3 V1 N1\n1 :a\n2 :b\n3 :a\n4 :c\n", &ul);
	ck_assert_uint_eq(ul.n, 3);
	ck_assert_uint_eq(ul.entries[0].uid, 2);
	ck_assert_uint_eq(ul.entries[1].uid, 3);
	ck_assert_str_eq(ul.entries[1].base, "a");
	ck_assert_uint_eq(ul.entries[2].uid, 4);
	ck_assert_uint_eq(uidlist_find_base(&ul, "a", 1)->uid, 3);
	ck_assert_uint_eq(ul.next_uid, 5);
	uidlist_free(&ul);

	/* A header without LF is still a header. */
	parse_ok("3 V9 N4", &ul);
	ck_assert_uint_eq(ul.uidvalidity, 9);
	ck_assert_uint_eq(ul.n, 0);
	uidlist_free(&ul);
}
END_TEST

/* A crash in the middle of an append leaves a last line without LF. */
START_TEST(test_parse_torn_line)
{
	struct uidlist ul;

	parse_ok("3 V1 N2\n1 :a\n7 :1700000000.M1P2.h", &ul);
	ck_assert_uint_eq(ul.n, 1);
	ck_assert_uint_eq(ul.next_uid, 8);  /* uid 7 is never handed out */
	uidlist_free(&ul);

	parse_ok("3 V1 N2\n1 :a\n7", &ul);  /* too torn to tell */
	ck_assert_uint_eq(ul.n, 1);
	ck_assert_uint_eq(ul.next_uid, 2);
	uidlist_free(&ul);
}
END_TEST

START_TEST(test_parse_errors)
{
	static const struct {
		const char *text;
		const char *error;
	} cases[] = {
		{ "", "line 1: empty file" },
		{ "\n", "line 1: not a dovecot-uidlist header" },
		{ "garbage\n", "line 1: not a dovecot-uidlist header" },
		{ "3\n", "line 1: not a dovecot-uidlist header" },
		{ "2 V1 N1\n", "line 1: unsupported version 2" },
		{ "3 N5\n", "line 1: no uidvalidity" },
		{ "3 V0 N5\n", "line 1: no uidvalidity" },
		{ "3 V1\n", "line 1: no next uid" },
		{ "3 V1 N0\n", "line 1: no next uid" },
		{ "3 V4294967296 N1\n", "line 1: invalid V (uidvalidity)" },
		{ "3 V1 N-1\n", "line 1: invalid N (next uid)" },
		{ "3 V1 N1 Gxyz\n", "line 1: invalid G (mailbox GUID)" },
		{ "3 V1 N1 G0123456789abcdef0123456789abcdeg\n", "line 1: invalid G (mailbox GUID)" },
		{ "1 5\n", "line 1: invalid next uid" },
		{ "1 5 6 7\n", "line 1: trailing data in version 1 header" },
		{ "3 V1 N1\r\n1 :a\n", "line 1: NUL or CR in line" },
		{ "3 V1 N1\n0 :a\n", "line 2: invalid uid" },
		{ "3 V1 N1\n4294967295 :a\n", "line 2: invalid uid" },
		{ "3 V1 N1\n99999999999 :a\n", "line 2: invalid uid" },
		{ "3 V1 N1\nx :a\n", "line 2: invalid line (no uid)" },
		{ "3 V1 N1\n\n", "line 2: invalid line (no uid)" },
		{ "3 V1 N1\n1\n", "line 2: invalid line (no uid)" },
		{ "3 V1 N1\n1 :a\n1 :b\n", "line 3: uids not ascending (1 after 1)" },
		{ "3 V1 N1\n2 :a\n3 :b\n1 :c\n", "line 4: uids not ascending (1 after 3)" },
		{ "3 V1 N1\n1 a\n", "line 2: no ':' before the file name" },
		{ "3 V1 N1\n1 W5 G1\n", "line 2: no ':' before the file name" },
		{ "3 V1 N1\n1 :\n", "line 2: invalid file name" },
		{ "3 V1 N1\n1 ::2,S\n", "line 2: invalid file name" },
		{ "3 V1 N1\n1 :cur/a\n", "line 2: invalid file name" },
		{ "3 V1 N1\n1 :a\r\n", "line 2: NUL or CR in line" },
		{ "1 1 1\n1 \n", "line 2: invalid file name" },
	};
	struct uidlist ul;
	char *err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err = NULL;
		ck_assert_int_eq(parse(cases[i].text, &ul, &err), -1);
		ck_assert_msg(err != NULL && strcmp(err, cases[i].error) == 0, "case %zu: got \"%s\", want \"%s\"", i,
			      err != NULL ? err : "(null)", cases[i].error);
		ck_assert(is_zero(&ul));
		free(err);
	}

	/* A NUL byte, and a line longer than the limit. */
	err = NULL;
	ck_assert_int_eq(parse_n("3 V1 N1\n1 :a\0b\n", 15, &ul, &err), -1);
	ck_assert_str_eq(err, "line 2: NUL or CR in line");
	free(err);

	/* Line 2 is "1 Xxxx... :a", LINE_MAX + 1 octets (an extension field
	 * fills it), then LF. */
	size_t len = 8 + UIDLIST_LINE_MAX + 2;
	char *big = malloc(len);
	memcpy(big, "3 V1 N1\n1 X", 11);
	memset(big + 11, 'x', len - 11);
	memcpy(big + len - 4, " :a\n", 4);
	err = NULL;
	ck_assert_int_eq(parse_n(big, len, &ul, &err), -1);
	ck_assert_str_eq(err, "line 2: line too long");
	free(err);
	/* One octet shorter is fine. */
	memcpy(big + len - 5, " :a\n", 4);
	ck_assert_int_eq(parse_n(big, len - 1, &ul, &err), 0);
	ck_assert_uint_eq(strlen(ul.entries[0].ext), UIDLIST_LINE_MAX - 5);
	uidlist_free(&ul);

	/* A base can be as long as a file name, no longer. */
	char line[32 + UIDLIST_BASE_MAX];
	memcpy(line, "3 V1 N1\n1 :", 11);
	memset(line + 11, 'b', UIDLIST_BASE_MAX + 1);
	line[11 + UIDLIST_BASE_MAX] = '\n';
	ck_assert_int_eq(parse_n(line, 12 + UIDLIST_BASE_MAX, &ul, &err), 0);
	ck_assert_uint_eq(strlen(ul.entries[0].base), UIDLIST_BASE_MAX);
	char longbase[UIDLIST_BASE_MAX + 1];
	memset(longbase, 'c', sizeof(longbase));
	ck_assert_ptr_null(uidlist_add(&ul, 0, longbase, UIDLIST_BASE_MAX + 1));
	ck_assert_ptr_nonnull(uidlist_add(&ul, 0, longbase, UIDLIST_BASE_MAX));
	uidlist_free(&ul);
	line[11 + UIDLIST_BASE_MAX] = 'b';
	line[12 + UIDLIST_BASE_MAX] = '\n';
	ck_assert_int_eq(parse_n(line, 13 + UIDLIST_BASE_MAX, &ul, &err), -1);
	ck_assert_str_eq(err, "line 2: invalid file name");
	free(err);
	free(big);
}
END_TEST

/* Every prefix of a real file parses or fails cleanly, without reading
 * past its end (each sits at a guard page). */
START_TEST(test_every_prefix)
{
	struct uidlist ul;

	for (size_t len = 0; len <= sizeof(dovecot_v3) - 1; len++) {
		char *err = NULL;
		if (parse_n(dovecot_v3, len, &ul, &err) == 0) {
			ck_assert_ptr_null(err);
			ck_assert_uint_gt(ul.next_uid, ul.n > 0 ? ul.entries[ul.n - 1].uid : 0);
			uidlist_free(&ul);
		} else {
			ck_assert_ptr_nonnull(err);
			ck_assert(strncmp(err, "line ", 5) == 0);
			free(err);
		}
	}
}
END_TEST

START_TEST(test_format_round_trip)
{
	struct uidlist ul, again;
	size_t len;
	char *text;

	parse_ok(dovecot_v3, &ul);
	text = uidlist_format(&ul, &len);
	ck_assert_str_eq(text, "3 V1700000000 N6 G0123456789abcdef0123456789abcdef\n"
			       "1 :1700000000.M20046P2137.mx1,S=1234,W=1256\n"
			       "2 W2210 :1700000100.M311425P2140.mx1,S=2180\n"
			       "4 GA7df0011 P000012ab O2 :1700000200.M3P4.mx1,S=99,W=101\n"
			       "5 S100 W105 :1700000300.12345_0.laptop\n");
	parse_ok(text, &again);
	ck_assert_uint_eq(again.n, ul.n);
	for (size_t i = 0; i < ul.n; i++) {
		ck_assert_uint_eq(again.entries[i].uid, ul.entries[i].uid);
		ck_assert_str_eq(again.entries[i].base, ul.entries[i].base);
	}
	free(text);
	uidlist_free(&again);

	/* The header's N is at least last uid + 1 even if next_uid says less. */
	ul.next_uid = 2;
	text = uidlist_format(&ul, &len);
	ck_assert(strncmp(text, "3 V1700000000 N6 ", 17) == 0);
	free(text);
	uidlist_free(&ul);
}
END_TEST

START_TEST(test_add_find_remove)
{
	struct uidlist ul;
	struct uidlist_entry *e;

	uidlist_init(&ul, 1234);
	ck_assert_uint_eq(ul.uidvalidity, 1234);
	ck_assert_uint_eq(ul.next_uid, 1);
	ck_assert_uint_eq(strlen(ul.guid), 32);
	ck_assert_uint_eq(strspn(ul.guid, "0123456789abcdef"), 32);

	/* uid 0: the next one. */
	e = uidlist_add(&ul, 0, "m1", 2);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->uid, 1);
	e->has_size = true;
	e->size = 42;
	ck_assert_uint_eq(ul.next_uid, 2);

	/* An explicit uid past next_uid moves it. */
	ck_assert_uint_eq(uidlist_add(&ul, 10, "m2:2,S", 6)->uid, 10);
	ck_assert_uint_eq(ul.next_uid, 11);
	ck_assert_str_eq(ul.entries[1].base, "m2");

	/* Refused: not ascending, duplicate base, bad bases, UINT32_MAX. */
	ck_assert_ptr_null(uidlist_add(&ul, 10, "m3", 2));
	ck_assert_ptr_null(uidlist_add(&ul, 5, "m3", 2));
	ck_assert_ptr_null(uidlist_add(&ul, 0, "m1", 2));
	ck_assert_ptr_null(uidlist_add(&ul, 0, "m1:2,RS", 7));
	ck_assert_ptr_null(uidlist_add(&ul, 0, "", 0));
	ck_assert_ptr_null(uidlist_add(&ul, 0, ":2,S", 4));
	ck_assert_ptr_null(uidlist_add(&ul, 0, "a/b", 3));
	ck_assert_ptr_null(uidlist_add(&ul, 0, "a\nb", 3));
	ck_assert_ptr_null(uidlist_add(&ul, 0, "a\0b", 3));
	ck_assert_ptr_null(uidlist_add(&ul, UINT32_MAX, "m3", 2));
	ck_assert_uint_eq(ul.n, 2);
	ck_assert_uint_eq(ul.next_uid, 11);

	/* The last possible uid. */
	ck_assert_ptr_nonnull(uidlist_add(&ul, UINT32_MAX - 1, "m3", 2));
	ck_assert_uint_eq(ul.next_uid, UINT32_MAX);
	ck_assert_ptr_null(uidlist_add(&ul, 0, "m4", 2));

	ck_assert_uint_eq(uidlist_find_base(&ul, "m1", 2)->size, 42);
	ck_assert_uint_eq(uidlist_find_base(&ul, "m2:2,FS", 7)->uid, 10);
	ck_assert_ptr_null(uidlist_find_base(&ul, "m", 1));
	ck_assert_ptr_null(uidlist_find_base(&ul, "m1x", 3));
	ck_assert_ptr_null(uidlist_find_base(&ul, "m1\0", 3));
	ck_assert_uint_eq(uidlist_find_uid(&ul, 10)->uid, 10);
	ck_assert_ptr_null(uidlist_find_uid(&ul, 9));
	ck_assert_ptr_null(uidlist_find_uid(&ul, 0));

	/* Removing the last uid does not lower next_uid. */
	ck_assert_int_eq(uidlist_remove_uid(&ul, UINT32_MAX - 1), 0);
	ck_assert_int_eq(uidlist_remove_uid(&ul, UINT32_MAX - 1), -1);
	ck_assert_uint_eq(ul.next_uid, UINT32_MAX);
	ck_assert_ptr_null(uidlist_find_base(&ul, "m3", 2));
	ck_assert_int_eq(uidlist_remove_uid(&ul, 1), 0);
	ck_assert_ptr_null(uidlist_find_base(&ul, "m1", 2));
	ck_assert_uint_eq(uidlist_find_base(&ul, "m2", 2)->uid, 10);
	ck_assert_uint_eq(ul.n, 1);

	uidlist_free(&ul);
	ck_assert(is_zero(&ul));
	/* A freed list is empty and usable. */
	ck_assert_ptr_null(uidlist_find_base(&ul, "m2", 2));
	ck_assert_ptr_null(uidlist_find_uid(&ul, 10));
	ck_assert_int_eq(uidlist_remove_uid(&ul, 10), -1);
}
END_TEST

START_TEST(test_find_base_many)
{
	enum { N = 10000 };
	struct uidlist ul;
	char name[128];

	uidlist_init(&ul, 1);
	for (unsigned i = 0; i < N; i++) {
		int n = snprintf(name, sizeof(name), "1700%06u.M%uP%u.mx1,S=%u,W=%u", i, i * 7, i % 97, i, i + 3);
		struct uidlist_entry *e = uidlist_add(&ul, 0, name, (size_t)n);
		ck_assert_ptr_nonnull(e);
		e->has_size = true;
		e->size = i;
	}
	ck_assert_uint_eq(ul.n, N);
	ck_assert_uint_eq(ul.next_uid, N + 1);

	for (unsigned i = 0; i < N; i++) {
		int n = snprintf(name, sizeof(name), "1700%06u.M%uP%u.mx1,S=%u,W=%u:2,S", i, i * 7, i % 97, i, i + 3);
		const struct uidlist_entry *e = uidlist_find_base(&ul, name, (size_t)n);
		ck_assert_ptr_nonnull(e);
		ck_assert_uint_eq(e->uid, i + 1);
		ck_assert_uint_eq(e->size, i);
		ck_assert_ptr_eq(uidlist_find_uid(&ul, i + 1), e);
	}
	ck_assert_ptr_null(uidlist_find_base(&ul, "1700000000.M0P0.mx1", 19));

	/* Expunge every third message; the rest are still found. */
	for (unsigned i = 0; i < N; i += 3)
		ck_assert_int_eq(uidlist_remove_uid(&ul, i + 1), 0);
	for (unsigned i = 0; i < N; i++) {
		int n = snprintf(name, sizeof(name), "1700%06u.M%uP%u.mx1,S=%u,W=%u", i, i * 7, i % 97, i, i + 3);
		const struct uidlist_entry *e = uidlist_find_base(&ul, name, (size_t)n);
		if (i % 3 == 0)
			ck_assert_ptr_null(e);
		else
			ck_assert_uint_eq(e->uid, i + 1);
	}
	ck_assert_uint_eq(ul.next_uid, N + 1);
	uidlist_free(&ul);
}
END_TEST

START_TEST(test_write_read_round_trip)
{
	const char *path = tmp_path(UIDLIST_NAME);
	struct uidlist ul, back;
	struct uidlist_entry *e;
	struct stat st;
	bool missing;
	char *err = NULL;

	ck_assert_int_eq(uidlist_read(path, &back, &missing, &err), 0);
	ck_assert(missing);
	ck_assert(is_zero(&back));

	uidlist_init(&ul, 1700000000);
	strcpy(ul.guid, "fedcba9876543210fedcba9876543210");
	ul.extra_header = strdup("Pfoo");
	e = uidlist_add(&ul, 0, "1700000000.M1P2.h,S=5,W=6", 25);
	e = uidlist_add(&ul, 0, "1700000001.M1P2.h", 17);
	e->has_size = e->has_vsize = true;
	e->size = 10;
	e->vsize = 12;
	e->ext = strdup("GA1 P00ff");
	ck_assert_int_eq(uidlist_write(path, &ul, false, &err), 0);
	ck_assert_int_eq(uidlist_write(path, &ul, true, &err), 0);  /* and again, durably */

	ck_assert_str_eq(slurp(path), "3 V1700000000 N3 Gfedcba9876543210fedcba9876543210 Pfoo\n"
				      "1 :1700000000.M1P2.h,S=5,W=6\n"
				      "2 S10 W12 GA1 P00ff :1700000001.M1P2.h\n");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(access(tmp_path(UIDLIST_NAME ".lock"), F_OK), -1);

	ck_assert_int_eq(uidlist_read(path, &back, &missing, &err), 0);
	ck_assert(!missing);
	ck_assert_uint_eq(back.uidvalidity, ul.uidvalidity);
	ck_assert_uint_eq(back.next_uid, ul.next_uid);
	ck_assert_str_eq(back.guid, ul.guid);
	ck_assert_str_eq(back.extra_header, "Pfoo");
	ck_assert_uint_eq(back.n, 2);
	ck_assert_str_eq(back.entries[1].ext, "GA1 P00ff");
	ck_assert(back.entries[1].size == 10 && back.entries[1].vsize == 12);
	uidlist_free(&back);

	/* A rewrite keeps the file's mode. */
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(uidlist_write(path, &ul, false, &err), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);

	/* No uidvalidity, nothing written. */
	ul.uidvalidity = 0;
	ck_assert_int_eq(uidlist_write(path, &ul, false, &err), -1);
	ck_assert_int_eq(errno, EINVAL);
	free(err);
	uidlist_free(&ul);
}
END_TEST

START_TEST(test_read_errors)
{
	const char *path = tmp_path(UIDLIST_NAME);
	struct uidlist ul;
	bool missing;
	char *err = NULL;

	write_file(path, "3 V1 N1\n1 :a\n1 :b\n");
	ck_assert_int_eq(uidlist_read(path, &ul, &missing, &err), -1);
	ck_assert(!missing);
	ck_assert(is_zero(&ul));
	ck_assert_ptr_nonnull(strstr(err, UIDLIST_NAME ": line 3: uids not ascending"));
	ck_assert(strncmp(err, tmpdir, strlen(tmpdir)) == 0);
	free(err);

	/* A directory where the file should be. */
	err = NULL;
	ck_assert_int_eq(uidlist_read(tmpdir, &ul, &missing, &err), -1);
	ck_assert_ptr_nonnull(err);
	free(err);
}
END_TEST

START_TEST(test_append)
{
	const char *path = tmp_path(UIDLIST_NAME);
	struct uidlist hdr, ul;
	struct uidlist_entry batch[2] = {
		{ .uid = 1, .base = "1700000000.M1P1Q1.h,S=5,W=6" },
		{ .uid = 2, .base = "1700000000.M1P1Q2.h,S=7,W=8", .has_size = true, .size = 7 },
	};
	struct uidlist_entry more = { .uid = 9, .base = "1700000001.M1P1Q3.h", .ext = "GAbc" };
	bool missing;
	char *err = NULL;

	/* No file, no header: refused. */
	ck_assert_int_eq(uidlist_append(path, batch, 2, NULL, false, &err), -1);
	ck_assert_int_eq(errno, EINVAL);
	free(err);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(access(tmp_path(UIDLIST_NAME ".lock"), F_OK), -1);

	/* No file: created with hdr's header (not its entries). */
	uidlist_init(&hdr, 4242);
	strcpy(hdr.guid, "00000000000000000000000000000001");
	uidlist_add(&hdr, 0, "not-written", 11);
	ck_assert_int_eq(uidlist_append(path, batch, 2, &hdr, true, &err), 0);
	ck_assert_str_eq(slurp(path), "3 V4242 N2 G00000000000000000000000000000001\n"
				      "1 :1700000000.M1P1Q1.h,S=5,W=6\n"
				      "2 S7 :1700000000.M1P1Q2.h,S=7,W=8\n");
	ck_assert_int_eq(access(tmp_path(UIDLIST_NAME ".lock"), F_OK), -1);

	/* Existing file: lines go at the end, the header stays. */
	ck_assert_int_eq(uidlist_append(path, &more, 1, NULL, false, &err), 0);
	ck_assert_int_eq(uidlist_read(path, &ul, &missing, &err), 0);
	ck_assert_uint_eq(ul.uidvalidity, 4242);
	ck_assert_uint_eq(ul.n, 3);
	ck_assert_uint_eq(ul.next_uid, 10);
	ck_assert_str_eq(ul.entries[2].ext, "GAbc");
	uidlist_free(&ul);

	/* Nothing to append: nothing happens. */
	ck_assert_int_eq(uidlist_append(path, NULL, 0, NULL, false, &err), 0);

	/* Bad batches are refused before anything is touched. */
	struct uidlist_entry bad[2] = { { .uid = 20, .base = "x" }, { .uid = 20, .base = "y" } };
	ck_assert_int_eq(uidlist_append(path, bad, 2, NULL, false, &err), -1);
	free(err);
	bad[1].uid = 21;
	bad[1].base = "y:2,S";
	ck_assert_int_eq(uidlist_append(path, bad, 2, NULL, false, &err), -1);
	free(err);
	bad[1].base = "y";
	bad[1].ext = "G1 :evil";
	ck_assert_int_eq(uidlist_append(path, bad, 2, NULL, false, &err), -1);
	free(err);
	bad[0].uid = 0;
	ck_assert_int_eq(uidlist_append(path, bad, 1, NULL, false, &err), -1);
	free(err);
	ck_assert_int_eq(uidlist_read(path, &ul, &missing, &err), 0);
	ck_assert_uint_eq(ul.n, 3);
	uidlist_free(&ul);

	/* An empty file gets the header first. */
	write_file(path, "");
	ck_assert_int_eq(uidlist_append(path, &more, 1, &hdr, false, &err), 0);
	ck_assert_str_eq(slurp(path), "3 V4242 N2 G00000000000000000000000000000001\n"
				      "9 GAbc :1700000001.M1P1Q3.h\n");
	uidlist_free(&hdr);
}
END_TEST

/* After a crash mid-append, the torn line is cut off, not glued onto. */
START_TEST(test_append_after_torn_line)
{
	const char *path = tmp_path(UIDLIST_NAME);
	struct uidlist ul;
	struct uidlist_entry e = { .uid = 8, .base = "new" };
	bool missing;
	char *err = NULL;

	write_file(path, "3 V5 N2\n1 :a\n7 :1700000000.M1P");
	ck_assert_int_eq(uidlist_read(path, &ul, &missing, &err), 0);
	ck_assert_uint_eq(ul.next_uid, 8);
	uidlist_free(&ul);

	ck_assert_int_eq(uidlist_append(path, &e, 1, NULL, false, &err), 0);
	ck_assert_str_eq(slurp(path), "3 V5 N2\n1 :a\n8 :new\n");

	/* No LF anywhere: not a file we can append to. */
	write_file(path, "3 V5 N2");
	ck_assert_int_eq(uidlist_append(path, &e, 1, NULL, false, &err), -1);
	ck_assert_ptr_nonnull(err);
	free(err);
	ck_assert_str_eq(slurp(path), "3 V5 N2");
	ck_assert_int_eq(access(tmp_path(UIDLIST_NAME ".lock"), F_OK), -1);
}
END_TEST

static void age_file(const char *path, time_t secs)
{
	struct timespec ts[2];

	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= secs;
	ts[1] = ts[0];
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

START_TEST(test_lock)
{
	const char *path = tmp_path(UIDLIST_NAME);
	const char *lock = tmp_path(UIDLIST_NAME ".lock");
	struct uidlist ul;
	struct uidlist_entry e = { .uid = 3, .base = "c" };
	bool missing;
	char *err = NULL;

	uidlist_init(&ul, 77);
	uidlist_add(&ul, 0, "a", 1);
	ck_assert_int_eq(uidlist_write(path, &ul, false, &err), 0);

	/* Someone (Dovecot) holds the lock: we wait, the file is untouched. */
	write_file(lock, "");
	ul.uidvalidity = 78;
	err = NULL;
	ck_assert_int_eq(uidlist_write(path, &ul, false, &err), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	ck_assert_ptr_nonnull(strstr(err, "locked"));
	free(err);
	err = NULL;
	ck_assert_int_eq(uidlist_append(path, &e, 1, NULL, false, &err), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	free(err);
	ck_assert_int_eq(access(lock, F_OK), 0);  /* not ours to remove */

	/* A lock just younger than the limit is still held. */
	age_file(lock, UIDLIST_LOCK_STALE_SECS - 5);
	ck_assert_int_eq(uidlist_write(path, &ul, false, &err), -1);
	free(err);

	/* Older: its holder died; take it over. */
	age_file(lock, UIDLIST_LOCK_STALE_SECS + 60);
	ck_assert_int_eq(uidlist_write(path, &ul, false, &err), 0);
	ck_assert_int_eq(access(lock, F_OK), -1);
	uidlist_free(&ul);
	ck_assert_int_eq(uidlist_read(path, &ul, &missing, &err), 0);
	ck_assert_uint_eq(ul.uidvalidity, 78);
	uidlist_free(&ul);

	write_file(lock, "");
	age_file(lock, UIDLIST_LOCK_STALE_SECS + 1);
	ck_assert_int_eq(uidlist_append(path, &e, 1, NULL, false, &err), 0);
	ck_assert_int_eq(access(lock, F_OK), -1);
	ck_assert_int_eq(uidlist_read(path, &ul, &missing, &err), 0);
	ck_assert_uint_eq(ul.n, 2);
	uidlist_free(&ul);

	/* A missing directory is an error, not a hang. */
	ul.uidvalidity = 1;
	err = NULL;
	ck_assert_int_eq(uidlist_write(tmp_path("nodir/" UIDLIST_NAME), &ul, false, &err), -1);
	ck_assert_int_eq(errno, ENOENT);
	free(err);
}
END_TEST

START_TEST(test_new_uidvalidity)
{
	uint32_t now = (uint32_t)time(NULL);
	uint32_t v = uidlist_new_uidvalidity();
	char a[33], b[33];

	ck_assert_uint_ge(v, now);
	ck_assert_uint_le(v, now + 2);
	uidlist_generate_guid(a);
	uidlist_generate_guid(b);
	ck_assert_uint_eq(strlen(a), 32);
	ck_assert_str_ne(a, b);
}
END_TEST

static Suite *uidlist_suite(void)
{
	Suite *s = suite_create("uidlist");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_parse_v3);
	tcase_add_test(tc, test_parse_appended_past_header);
	tcase_add_test(tc, test_parse_v1);
	tcase_add_test(tc, test_parse_header_extra_kept);
	tcase_add_test(tc, test_parse_tolerated);
	tcase_add_test(tc, test_parse_torn_line);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_every_prefix);
	tcase_add_test(tc, test_format_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_add_test(tc, test_add_find_remove);
	tcase_add_test(tc, test_find_base_many);
	tcase_add_test(tc, test_new_uidvalidity);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_write_read_round_trip);
	tcase_add_test(tc, test_read_errors);
	tcase_add_test(tc, test_append);
	tcase_add_test(tc, test_append_after_torn_line);
	tcase_add_test(tc, test_lock);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(uidlist_suite());
}
