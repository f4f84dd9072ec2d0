/* Tests for maildir/keywords: Dovecot's dovecot-keywords file (letters
 * a..z to IMAP keywords): parsing files as Dovecot and Thunderbird users
 * leave them, the lines Dovecot itself skips, IMAP atom rules, adding until
 * all 26 letters are taken, and atomic write -> read. Parser inputs come
 * from guard_copy(). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir/keywords.h"
#include "testutil.h"

static unsigned parse_n(const char *text, size_t len, struct keywords *kw)
{
	char *g = guard_copy(text, len);
	unsigned ignored = keywords_parse(g, len, kw);

	guard_free(g, len);
	return ignored;
}

static unsigned parse(const char *text, struct keywords *kw)
{
	return parse_n(text, strlen(text), kw);
}

static bool is_zero(const struct keywords *kw)
{
	static const struct keywords zero;
	return memcmp(kw, &zero, sizeof(zero)) == 0;
}

/* A folder used from Thunderbird through Dovecot. */
static const char thunderbird[] =
	"0 $Forwarded\n"
	"1 NonJunk\n"
	"3 $label1\n"
	"4 Junk\n"
	"25 $MDNSent\n";

START_TEST(test_parse)
{
	struct keywords kw;

	ck_assert_uint_eq(parse(thunderbird, &kw), 0);
	ck_assert_str_eq(keywords_name(&kw, 0), "$Forwarded");
	ck_assert_str_eq(keywords_name(&kw, 1), "NonJunk");
	ck_assert_ptr_null(keywords_name(&kw, 2));
	ck_assert_str_eq(keywords_name(&kw, 3), "$label1");
	ck_assert_str_eq(keywords_name(&kw, 25), "$MDNSent");
	ck_assert_ptr_null(keywords_name(&kw, 26));
	ck_assert_ptr_null(keywords_name(&kw, -1));

	ck_assert_int_eq(keywords_lookup(&kw, "NonJunk"), 1);
	ck_assert_int_eq(keywords_lookup(&kw, "nonjunk"), 1);
	ck_assert_int_eq(keywords_lookup(&kw, "$FORWARDED"), 0);
	ck_assert_int_eq(keywords_lookup(&kw, "$mdnsent"), 25);
	ck_assert_int_eq(keywords_lookup(&kw, "Junk"), 4);
	ck_assert_int_eq(keywords_lookup(&kw, "Jun"), -1);
	ck_assert_int_eq(keywords_lookup(&kw, ""), -1);
	keywords_free(&kw);
	ck_assert(is_zero(&kw));

	/* No final LF, an empty file. */
	ck_assert_uint_eq(parse("7 last", &kw), 0);
	ck_assert_str_eq(keywords_name(&kw, 7), "last");
	keywords_free(&kw);
	ck_assert_uint_eq(parse("", &kw), 0);
	ck_assert(is_zero(&kw));
}
END_TEST

START_TEST(test_parse_skips_what_dovecot_skips)
{
	struct keywords kw;
	char line[KEYWORDS_NAME_MAX + 16];

	ck_assert_uint_eq(parse("nospace\n"        /* .customflags leftovers */
				"26 toohigh\n"
				"-1 negative\n"
				"x1 notanumber\n"
				"1234 toolong\n"
				" 5 leadingspace\n"
				"5 \n"             /* empty name */
				"6 ok\n"
				"\n"               /* blank lines do not count */
				"7 ok\r\n"         /* CR: not a name we can use */
				"07 leadingzero\n",
				&kw),
			  8);
	ck_assert_uint_eq(kw.ignored_lines, 8);
	ck_assert_str_eq(keywords_name(&kw, 6), "ok");
	ck_assert_str_eq(keywords_name(&kw, 7), "leadingzero");
	for (int i = 0; i < KEYWORDS_MAX; i++) {
		if (i != 6 && i != 7)
			ck_assert_ptr_null(keywords_name(&kw, i));
	}
	keywords_free(&kw);

	/* The longest name is kept, one longer is skipped. */
	memset(line, 'k', sizeof(line));
	memcpy(line, "2 ", 2);
	ck_assert_uint_eq(parse_n(line, 2 + KEYWORDS_NAME_MAX, &kw), 0);
	ck_assert_uint_eq(strlen(keywords_name(&kw, 2)), KEYWORDS_NAME_MAX);
	keywords_free(&kw);
	ck_assert_uint_eq(parse_n(line, 2 + KEYWORDS_NAME_MAX + 1, &kw), 1);
	ck_assert_ptr_null(keywords_name(&kw, 2));
	keywords_free(&kw);

	/* A NUL inside a name. */
	ck_assert_uint_eq(parse_n("1 a\0b\n2 c\n", 10, &kw), 1);
	ck_assert_ptr_null(keywords_name(&kw, 1));
	ck_assert_str_eq(keywords_name(&kw, 2), "c");
	keywords_free(&kw);
}
END_TEST

START_TEST(test_parse_keeps_odd_names)
{
	struct keywords kw;

	/* The later line for an index wins; a name that is not an atom is
	 * kept so its letter stays taken. */
	ck_assert_uint_eq(parse("0 first\n0 second\n1 two words\n", &kw), 0);
	ck_assert_str_eq(keywords_name(&kw, 0), "second");
	ck_assert_str_eq(keywords_name(&kw, 1), "two words");
	ck_assert(!keywords_valid_name(keywords_name(&kw, 1)));
	ck_assert_int_eq(keywords_add(&kw, "new"), 2);

	/* The same name twice: the lower index is the one found. */
	keywords_free(&kw);
	ck_assert_uint_eq(parse("9 Dup\n4 dup\n", &kw), 0);
	ck_assert_int_eq(keywords_lookup(&kw, "DUP"), 4);
	keywords_free(&kw);
}
END_TEST

START_TEST(test_every_prefix)
{
	struct keywords kw;

	for (size_t len = 0; len <= sizeof(thunderbird) - 1; len++) {
		parse_n(thunderbird, len, &kw);
		for (int i = 0; i < KEYWORDS_MAX; i++) {
			const char *n = keywords_name(&kw, i);
			if (n != NULL)
				ck_assert_uint_gt(strlen(n), 0);
		}
		keywords_free(&kw);
	}
}
END_TEST

START_TEST(test_valid_name)
{
	static const char *const good[] = {
		"$Forwarded", "NonJunk", "$label1", "a", "x-y_z.1", "$MDNSent", "~!#&'+,-./:;<=>?@[^_`|}",
	};
	static const char *const bad[] = {
		"", "\\Seen", "\\Flagged", "two words", "paren(", "paren)", "brace{", "per%cent", "st*r",
		"quo\"te", "back\\slash", "bracket]", "tab\t", "nl\n", "del\x7f", "caf\xc3\xa9", "\x01",
	};
	char longname[KEYWORDS_NAME_MAX + 2];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(keywords_valid_name(good[i]), "refused \"%s\"", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!keywords_valid_name(bad[i]), "accepted \"%s\"", bad[i]);

	memset(longname, 'n', KEYWORDS_NAME_MAX);
	longname[KEYWORDS_NAME_MAX] = '\0';
	ck_assert(keywords_valid_name(longname));
	longname[KEYWORDS_NAME_MAX] = 'n';
	longname[KEYWORDS_NAME_MAX + 1] = '\0';
	ck_assert(!keywords_valid_name(longname));
}
END_TEST

START_TEST(test_add)
{
	struct keywords kw = { 0 };
	char name[16];

	ck_assert_int_eq(keywords_add(&kw, "$Forwarded"), 0);
	ck_assert_int_eq(keywords_add(&kw, "NonJunk"), 1);
	/* Already there, in any case: the first spelling stays. */
	ck_assert_int_eq(keywords_add(&kw, "$forwarded"), 0);
	ck_assert_str_eq(keywords_name(&kw, 0), "$Forwarded");
	/* Invalid names and system flags are refused. */
	ck_assert_int_eq(keywords_add(&kw, "\\Seen"), -1);
	ck_assert_int_eq(keywords_add(&kw, "two words"), -1);
	ck_assert_int_eq(keywords_add(&kw, ""), -1);

	/* Holes are filled lowest first. */
	free(kw.names[0]);
	kw.names[0] = NULL;
	ck_assert_int_eq(keywords_add(&kw, "Junk"), 0);
	ck_assert_int_eq(keywords_add(&kw, "k2"), 2);

	/* Up to 26, then full; existing names are still found. */
	for (int i = 3; i < KEYWORDS_MAX; i++) {
		snprintf(name, sizeof(name), "kw%d", i);
		ck_assert_int_eq(keywords_add(&kw, name), i);
	}
	ck_assert_int_eq(keywords_add(&kw, "one-too-many"), -1);
	ck_assert_int_eq(keywords_add(&kw, "KW25"), 25);
	ck_assert_int_eq(keywords_lookup(&kw, "one-too-many"), -1);
	keywords_free(&kw);
}
END_TEST

static char tmpdir[64];

static void tmp_setup(void)
{
	strcpy(tmpdir, "/tmp/pb-keywords-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_format_write_read)
{
	char path[128], lock[160];
	struct keywords kw = { 0 }, back;
	struct stat st;
	bool missing;
	char *err = NULL, *text;
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, KEYWORDS_NAME);
	snprintf(lock, sizeof(lock), "%s.lock", path);

	ck_assert_int_eq(keywords_read(path, &back, &missing, &err), 0);
	ck_assert(missing);
	ck_assert(is_zero(&back));

	keywords_add(&kw, "$Forwarded");
	keywords_add(&kw, "NonJunk");
	kw.names[25] = strdup("$MDNSent");
	text = keywords_format(&kw, &len);
	ck_assert_str_eq(text, "0 $Forwarded\n1 NonJunk\n25 $MDNSent\n");
	ck_assert_uint_eq(len, strlen(text));
	free(text);

	ck_assert_int_eq(keywords_write(path, &kw, true, &err), 0);
	ck_assert_int_eq(access(lock, F_OK), -1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(keywords_read(path, &back, &missing, &err), 0);
	ck_assert(!missing);
	for (int i = 0; i < KEYWORDS_MAX; i++) {
		if (kw.names[i] == NULL)
			ck_assert_ptr_null(back.names[i]);
		else
			ck_assert_str_eq(back.names[i], kw.names[i]);
	}
	keywords_free(&back);

	/* An empty map is an empty file. */
	keywords_free(&kw);
	ck_assert_int_eq(keywords_write(path, &kw, false, &err), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);

	/* A held lock: EWOULDBLOCK, the file untouched. */
	f = fopen(lock, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	keywords_add(&kw, "x");
	ck_assert_int_eq(keywords_write(path, &kw, false, &err), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	free(err);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	keywords_free(&kw);

	/* Too large to be a keywords file. */
	f = fopen(path, "w");
	for (unsigned i = 0; i <= KEYWORDS_FILE_MAX / 8; i++)
		fputs("0 aaaaa\n", f);
	fclose(f);
	err = NULL;
	ck_assert_int_eq(keywords_read(path, &back, &missing, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "larger than"));
	ck_assert(is_zero(&back));
	free(err);

	/* Not readable as a file. */
	err = NULL;
	ck_assert_int_eq(keywords_read(tmpdir, &back, &missing, &err), -1);
	ck_assert_ptr_nonnull(err);
	free(err);
}
END_TEST

static Suite *keywords_suite(void)
{
	Suite *s = suite_create("keywords");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_parse_skips_what_dovecot_skips);
	tcase_add_test(tc, test_parse_keeps_odd_names);
	tcase_add_test(tc, test_every_prefix);
	tcase_add_test(tc, test_valid_name);
	tcase_add_test(tc, test_add);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_format_write_read);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(keywords_suite());
}
