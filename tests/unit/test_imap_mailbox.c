/* The mailbox commands of the IMAP session (imap_mailbox.c, imap_list.c,
 * imap_append.c) over the fake backend: SELECT/EXAMINE data,
 * CLOSE/UNSELECT/CHECK, CREATE/DELETE/RENAME/SUBSCRIBE, LIST and LSUB
 * patterns and attributes, STATUS and APPEND, each with its error paths;
 * and the pure pieces (pattern matching, APPEND dates) on their own. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_mailbox.h"
#include "imap_cmd_harness.h"

/* ---------------------------------------------------------------- */
/* Pure pieces: LIST patterns, reference joining, APPEND dates        */

static bool m(const char *pattern, const char *name)
{
	return imap_list_match(pattern, strlen(pattern), name, strlen(name),
			       imap_list_inbox_len(name, strlen(name)));
}

START_TEST(list_patterns)
{
	static const struct {
		const char *pattern, *name;
		bool match;
	} cases[] = {
		/* RFC 3501 6.3.8: "*" crosses levels, "%" does not. */
		{ "*", "INBOX", true },
		{ "*", "a/b/c", true },
		{ "%", "a", true },
		{ "%", "a/b", false },
		{ "%/%", "a/b", true },
		{ "%/%", "a/b/c", false },
		{ "a/%", "a/b", true },
		{ "a/%", "a/b/c", false },
		{ "a/*", "a/b/c", true },
		{ "a/*", "a", false },
		{ "a*", "a", true },
		{ "a*", "ab/c", true },
		{ "a%", "ab/c", false },
		{ "a%", "ab", true },
		{ "%b", "ab", true },
		{ "%b", "a/b", false },
		{ "*b", "a/b", true },
		{ "*/b", "x/y/b", true },
		{ "%/b", "x/y/b", false },
		{ "a%c", "abc", true },
		{ "a%c", "ab/c", false },
		{ "a*c", "ab/c", true },
		{ "a*c", "ab/cd", false },
		{ "", "", true },
		{ "", "a", false },
		{ "a", "", false },
		{ "%", "", true },
		/* Literal characters are exact: case matters... */
		{ "Sent", "Sent", true },
		{ "sent", "Sent", false },
		{ "Sent", "Sent/x", false },
		/* ...except in INBOX, which is INBOX in any case. */
		{ "inbox", "INBOX", true },
		{ "InBoX", "INBOX", true },
		{ "inb*", "INBOX", true },
		{ "INBOX*", "INBOX", true },
		{ "inbox/%", "INBOX/sub", true },
		{ "inbox/SUB", "INBOX/sub", false },
		{ "inbox2", "INBOX2", false },
		/* Runs of wildcards are one wildcard. */
		{ "**", "a/b", true },
		{ "%%", "a", true },
		{ "%%", "a/b", false },
		{ "%*", "a/b", true },
		{ "*%", "a/b", true },
		{ "%*%", "a/b/c", true },
		{ "a%%/%%b", "ax/yb", true },
		{ "a%%/%%b", "ax/y/b", false },
		/* Bytes of modified UTF-7 names are plain characters. */
		{ "Entw&APw-rfe", "Entw&APw-rfe", true },
		{ "*&APw-*", "Entw&APw-rfe", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(m(cases[i].pattern, cases[i].name) == cases[i].match, "\"%s\" vs \"%s\": want %d",
			      cases[i].pattern, cases[i].name, cases[i].match);
}
END_TEST

START_TEST(list_patterns_do_not_backtrack)
{
	/* Thousands of wildcards against a long name that almost matches:
	 * a backtracking matcher takes forever here. */
	size_t n = 4000;
	char *pattern = malloc(2 * n + 2), *name = malloc(n + 2);
	for (size_t i = 0; i < n; i++) {
		pattern[2 * i] = i % 2 ? '%' : '*';
		pattern[2 * i + 1] = 'a';
		name[i] = 'a';
	}
	pattern[2 * n] = 'b';
	pattern[2 * n + 1] = '\0';
	name[n] = '\0';
	ck_assert(!imap_list_match(pattern, strlen(pattern), name, n, 0));
	name[n - 1] = 'b';
	ck_assert(!imap_list_match(pattern, strlen(pattern), name, n, 0));
	pattern[2 * n - 1] = '*';
	ck_assert(imap_list_match(pattern + 2 * n - 2, 3, name, n, 0));
	free(pattern);
	free(name);
}
END_TEST

START_TEST(list_reference_join)
{
	static const struct {
		const char *ref, *pattern, *want;
	} cases[] = {
		{ "", "*", "*" },
		{ "a/", "%", "a/%" },
		{ "a/", "/b", "a/b" },
		{ "a", "/b", "a/b" },
		{ "a", "b", "ab" },
		{ "", "/b", "/b" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = imap_list_join(cases[i].ref, strlen(cases[i].ref), cases[i].pattern,
					 strlen(cases[i].pattern));
		ck_assert_str_eq(s, cases[i].want);
		free(s);
	}
	ck_assert_uint_eq(imap_list_inbox_len("INBOX", 5), 5);
	ck_assert_uint_eq(imap_list_inbox_len("INBOX/x", 7), 5);
	ck_assert_uint_eq(imap_list_inbox_len("INBOXx", 6), 0);
	ck_assert_uint_eq(imap_list_inbox_len("inbox", 5), 0);
	ck_assert_uint_eq(imap_list_inbox_len("INBO", 4), 0);
}
END_TEST

static int64_t date(const char *s)
{
	int64_t t = -12345;
	if (imap_date_time_parse(s, strlen(s), &t) < 0)
		return -12345;
	return t;
}

START_TEST(append_dates)
{
	/* Reference values from Python's datetime. */
	ck_assert_int_eq(date("17-Jul-1996 02:44:25 -0700"), 837596665);
	ck_assert_int_eq(date("01-Jan-1970 00:00:00 +0000"), 0);
	ck_assert_int_eq(date("01-Jan-1970 01:00:00 +0100"), 0);
	ck_assert_int_eq(date(" 7-Feb-2024 10:00:00 +0000"), 1707300000);
	ck_assert_int_eq(date("7-Feb-2024 10:00:00 +0000"), 1707300000);
	ck_assert_int_eq(date("07-feb-2024 10:00:00 +0000"), 1707300000);
	ck_assert_int_eq(date("29-Feb-2024 23:59:59 +0000"), 1709251199);
	ck_assert_int_eq(date("31-Dec-1969 23:59:59 +0000"), -1);
	ck_assert_int_eq(date("15-Mar-2038 12:00:00 +0530"), 2152247400);
	ck_assert_int_eq(date("30-Jun-2015 23:59:60 +0000"), 1435708800);
	static const char *const bad[] = {
		"",
		"29-Feb-2023 00:00:00 +0000",   /* not a leap year */
		"29-Feb-1900 00:00:00 +0000",
		"31-Apr-2024 00:00:00 +0000",
		"00-Jan-2024 00:00:00 +0000",
		"32-Jan-2024 00:00:00 +0000",
		"01-Foo-2024 00:00:00 +0000",
		"01-Jan-2024 24:00:00 +0000",
		"01-Jan-2024 00:60:00 +0000",
		"01-Jan-2024 00:00:61 +0000",
		"01-Jan-2024 00:00:00 +0060",
		"01-Jan-2024 00:00:00 0000",
		"01-Jan-2024 00:00:00 +000",
		"01-Jan-2024 00:00:00 +00000",
		"01-Jan-24 00:00:00 +0000",
		"001-Jan-2024 00:00:00 +0000",
		"  1-Jan-2024 00:00:00 +0000",
		" 11-Jan-2024 00:00:00 +0000",
		"01-Jan-2024  0:00:00 +0000",
		"01 Jan 2024 00:00:00 +0000",
		"01-Jan-2024 00:00:00 +0000 ",
		"01-Jan-2024T00:00:00 +0000",
		"x1-Jan-2024 00:00:00 +0000",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t t;
		ck_assert_msg(imap_date_time_parse(bad[i], strlen(bad[i]), &t) < 0, "accepted \"%s\"", bad[i]);
	}
}
END_TEST

/* ---------------------------------------------------------------- */
/* Through a session                                                 */

#define FLAGS_LINE "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
#define PERM_RW "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n"
#define PERM_RO "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n"
#define CLOSED "* OK [CLOSED] Previous mailbox closed\r\n"

START_TEST(select_and_examine)
{
	struct hs c, d;

	h_put("INBOX", "Subject: 1\r\n\r\n", IMAP_SEEN);
	h_put("INBOX", "Subject: 2\r\n\r\n", 0);
	h_put("INBOX", "Subject: 3\r\n\r\n", IMAP_SEEN);
	h_box("INBOX")->keywords[0] = xstrdup("$Label1");
	h_open(&c);
	/* INBOX in any case; the data of RFC 3501 6.3.1 in order. */
	h_expect(&c, "a SELECT inbox\r\n",
		 "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n"
		 "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Flags permitted\r\n"
		 "* 3 EXISTS\r\n* 3 RECENT\r\n* OK [UNSEEN 2] First unseen\r\n"
		 "* OK [UIDVALIDITY 1000] UIDs valid\r\n* OK [UIDNEXT 4] Predicted next UID\r\n"
		 "a OK [READ-WRITE] SELECT completed\r\n");
	/* Another mailbox: the first is closed; EXAMINE keeps no flags and
	 * has no UNSEEN when all are seen (here: none at all). */
	h_expect(&c, "b EXAMINE Sent\r\n",
		 CLOSED FLAGS_LINE PERM_RO "* 0 EXISTS\r\n* 0 RECENT\r\n"
		 "* OK [UIDVALIDITY 1001] UIDs valid\r\n* OK [UIDNEXT 1] Predicted next UID\r\n"
		 "b OK [READ-ONLY] EXAMINE completed\r\n");
	ck_assert_uint_eq(h_fake.n_mbs, 1);
	/* A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1). */
	h_expect(&c, "c SELECT Nope\r\n", CLOSED "c NO [NONEXISTENT] No such mailbox\r\n");
	ck_assert_uint_eq(h_fake.n_mbs, 0);
	h_expect(&c, "d CLOSE\r\n", "d BAD No mailbox selected\r\n");
	h_expect(&c, "e SELECT\r\n", "e BAD Syntax: SELECT mailbox\r\n");
	h_expect(&c, "f SELECT \"\"\r\n", "f BAD Invalid mailbox name\r\n");
	h_expect(&c, "g EXAMINE INBOX Sent\r\n", "g BAD Syntax: EXAMINE mailbox\r\n");
	h_expect(&c, "h SELECT (INBOX)\r\n", "h BAD Mailbox name expected\r\n");

	/* \Recent went to the first session: the next one sees none. */
	h_open(&d);
	char *out = h_ask(&d, "a SELECT INBOX\r\n");
	h_has(out, "* 3 EXISTS\r\n* 0 RECENT\r\n");
	free(out);
	/* The backend cannot: NO, and nothing selected. */
	h_fake.fail = IMAP_TEMPFAIL;
	h_expect(&d, "b SELECT INBOX\r\n", CLOSED "b NO [UNAVAILABLE] Temporary server failure, try again later\r\n");
	h_expect(&d, "c CHECK\r\n", "c BAD No mailbox selected\r\n");
	h_close(&c);
	h_close(&d);
}
END_TEST

START_TEST(select_quoted_and_literal_names)
{
	struct hs c;

	fake_box_add(&h_fake, BOB, "With Space", 0);
	h_open(&c);
	char *out = h_ask(&c, "a SELECT \"With Space\"\r\n");
	h_has(out, "a OK [READ-WRITE] SELECT completed\r\n");
	free(out);
	out = h_ask(&c, "b EXAMINE {10+}\r\nWith Space\r\n");
	h_has(out, "b OK [READ-ONLY] EXAMINE completed\r\n");
	free(out);
	h_close(&c);
}
END_TEST

START_TEST(close_unselect_check)
{
	struct hs c;

	h_put("INBOX", "a\r\n", IMAP_DELETED);
	h_put("INBOX", "b\r\n", 0);
	h_put("INBOX", "c\r\n", IMAP_DELETED | IMAP_SEEN);
	h_open_selected(&c, "INBOX");
	h_expect(&c, "a CHECK\r\n", "a OK CHECK completed\r\n");
	h_expect(&c, "a CHECK now\r\n", "a BAD CHECK takes no arguments\r\n");
	/* UNSELECT expunges nothing (RFC 3691). */
	h_expect(&c, "b UNSELECT\r\n", "b OK UNSELECT completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 3);
	ck_assert_uint_eq(h_fake.n_mbs, 0);
	h_expect(&c, "c UNSELECT\r\n", "c BAD No mailbox selected\r\n");
	/* EXAMINE then CLOSE: read-only, nothing expunged. */
	free(h_ask(&c, "d EXAMINE INBOX\r\n"));
	h_expect(&c, "e CLOSE\r\n", "e OK CLOSE completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 3);
	/* CLOSE expunges \Deleted without a word (RFC 3501 6.4.2). */
	free(h_ask(&c, "f SELECT INBOX\r\n"));
	h_expect(&c, "g CLOSE x\r\n", "g BAD CLOSE takes no arguments\r\n");
	h_expect(&c, "h CLOSE\r\n", "h OK CLOSE completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 1);
	ck_assert_uint_eq(h_box("INBOX")->msgs[0].uid, 2);
	h_expect(&c, "i CHECK\r\n", "i BAD No mailbox selected\r\n");
	/* Nothing to expunge: CLOSE at once. */
	free(h_ask(&c, "j SELECT INBOX\r\n"));
	h_expect(&c, "k CLOSE\r\n", "k OK CLOSE completed\r\n");
	/* A failed expunge keeps the mailbox selected. */
	h_put("INBOX", "d\r\n", IMAP_DELETED);
	free(h_ask(&c, "l SELECT INBOX\r\n"));
	h_fake.fail = IMAP_TEMPFAIL;
	h_expect(&c, "m CLOSE\r\n", "m NO [UNAVAILABLE] Temporary server failure, try again later\r\n");
	h_fake.fail = IMAP_OK;
	h_expect(&c, "n CHECK\r\n", "n OK CHECK completed\r\n");
	h_close(&c);
}
END_TEST

START_TEST(create_delete_rename_subscribe)
{
	struct hs c;

	h_open(&c);
	/* RFC 3501 6.3.3: the trailing delimiter is dropped. */
	h_expect(&c, "a CREATE Work/\r\n", "a OK CREATE completed\r\n");
	ck_assert_ptr_nonnull(h_box("Work"));
	h_expect(&c, "b CREATE Work\r\n", "b NO [ALREADYEXISTS] Mailbox already exists\r\n");
	h_expect(&c, "c CREATE inbox\r\n", "c NO [ALREADYEXISTS] Mailbox already exists\r\n");
	h_expect(&c, "c CREATE INBOX/\r\n", "c NO [ALREADYEXISTS] Mailbox already exists\r\n");
	h_expect(&c, "d CREATE /\r\n", "d NO [CANNOT] Invalid mailbox name\r\n");
	h_expect(&c, "d CREATE a//b\r\n", "d NO [CANNOT] Operation not permitted\r\n");
	h_expect(&c, "d CREATE a*b\r\n", "d NO [CANNOT] Invalid mailbox name\r\n");
	h_expect(&c, "d CREATE \"100%\"\r\n", "d NO [CANNOT] Invalid mailbox name\r\n");
	h_expect(&c, "d CREATE {3+}\r\na\rb\r\n", "d NO [CANNOT] Invalid mailbox name\r\n");
	/* Modified UTF-7 only (RFC 3501 5.1.3). */
	h_expect(&c, "d CREATE {5+}\r\nCaf\xc3\xa9\r\n", "d NO [CANNOT] Invalid mailbox name\r\n");
	h_expect(&c, "d CREATE Tom&Jerry\r\n", "d NO [CANNOT] Invalid mailbox name\r\n");
	h_expect(&c, "d CREATE Entw&APw\r\n", "d NO [CANNOT] Invalid mailbox name\r\n");
	h_expect(&c, "d CREATE Entw&APw-rfe\r\n", "d OK CREATE completed\r\n");
	h_expect(&c, "d CREATE Tom&-Jerry\r\n", "d OK CREATE completed\r\n");
	h_expect(&c, "d CREATE &ZeVnLIqe-/&-\r\n", "d OK CREATE completed\r\n");
	h_expect(&c, "e create \"Work/Sub Folder\"\r\n", "e OK CREATE completed\r\n");
	ck_assert_ptr_nonnull(h_box("Work/Sub Folder"));
	h_expect(&c, "f DELETE Work/Sub Folder\r\n", "f BAD Syntax: DELETE mailbox\r\n");
	h_expect(&c, "f DELETE \"Work/Sub Folder\"\r\n", "f OK DELETE completed\r\n");
	ck_assert_ptr_null(h_box("Work/Sub Folder"));
	h_expect(&c, "g DELETE \"Work/Sub Folder\"\r\n", "g NO [NONEXISTENT] No such mailbox\r\n");
	h_expect(&c, "h DELETE inbox\r\n", "h NO [CANNOT] Operation not permitted\r\n");
	h_expect(&c, "i DELETE\r\n", "i BAD Syntax: DELETE mailbox\r\n");

	h_expect(&c, "j RENAME Work Play\r\n", "j OK RENAME completed\r\n");
	ck_assert_ptr_null(h_box("Work"));
	ck_assert_ptr_nonnull(h_box("Play"));
	h_expect(&c, "k RENAME Nope Other\r\n", "k NO [NONEXISTENT] No such mailbox\r\n");
	h_expect(&c, "l RENAME Play Sent\r\n", "l NO [ALREADYEXISTS] Mailbox already exists\r\n");
	h_expect(&c, "m RENAME Play iNbOx\r\n", "m NO [ALREADYEXISTS] Mailbox already exists\r\n");
	h_expect(&c, "n RENAME Play\r\n", "n BAD Syntax: RENAME mailbox new-name\r\n");
	h_expect(&c, "n RENAME Play Pl%y\r\n", "n NO [CANNOT] Invalid mailbox name\r\n");
	/* RFC 3501 6.3.5: renaming INBOX moves its messages to the new
	 * name and leaves INBOX there, empty. */
	h_put("INBOX", "one\r\n", IMAP_SEEN);
	h_put("INBOX", "two\r\n", 0);
	h_expect(&c, "o RENAME inbox \"Old Mail\"\r\n", "o OK RENAME completed\r\n");
	ck_assert_ptr_nonnull(h_box("INBOX"));
	ck_assert_uint_eq(h_box("INBOX")->n, 0);
	ck_assert_uint_eq(h_box("Old Mail")->n, 2);
	ck_assert_uint_eq(h_box("Old Mail")->msgs[0].flags, IMAP_SEEN);

	h_expect(&c, "p SUBSCRIBE Trash\r\n", "p OK SUBSCRIBE completed\r\n");
	ck_assert(h_box("Trash")->subscribed);
	h_expect(&c, "q UNSUBSCRIBE Trash\r\n", "q OK UNSUBSCRIBE completed\r\n");
	ck_assert(!h_box("Trash")->subscribed);
	h_expect(&c, "r SUBSCRIBE Ghost\r\n", "r OK SUBSCRIBE completed\r\n");
	ck_assert_ptr_nonnull(fake_box_find(&h_fake, BOB, "Ghost"));
	h_expect(&c, "s SUBSCRIBE\r\n", "s BAD Syntax: SUBSCRIBE mailbox\r\n");
	h_expect(&c, "s UNSUBSCRIBE a b\r\n", "s BAD Syntax: UNSUBSCRIBE mailbox\r\n");

	h_fake.fail = IMAP_TEMPFAIL;
	h_expect(&c, "t CREATE Other\r\n", "t NO [UNAVAILABLE] Temporary server failure, try again later\r\n");
	h_fake.fail = IMAP_OK;
	/* In the selected state too, and the mailbox stays selected. */
	free(h_ask(&c, "u SELECT INBOX\r\n"));
	h_expect(&c, "v CREATE Other\r\n", "v OK CREATE completed\r\n");
	h_expect(&c, "w CHECK\r\n", "w OK CHECK completed\r\n");
	h_close(&c);
}
END_TEST

START_TEST(delete_selected_mailbox)
{
	struct hs c, d;

	fake_box_add(&h_fake, BOB, "Doomed", 0);
	h_open_selected(&c, "Doomed");
	h_open(&d);
	h_expect(&d, "a DELETE Doomed\r\n", "a OK DELETE completed\r\n");
	/* The session that had it selected cannot go on (the view's BYE). */
	char *out = h_ask(&c, "b NOOP\r\n");
	h_has(out, "* BYE");
	free(out);
	ck_assert_int_eq(c.last, SESSION_EFFECT_CLOSE);
	h_close(&c);
	h_close(&d);
}
END_TEST

START_TEST(list_mailboxes)
{
	struct hs c;

	fake_box_add(&h_fake, BOB, "Projects", 0);
	fake_box_add(&h_fake, BOB, "Projects/Alpha", 0);
	fake_box_add(&h_fake, BOB, "Deep/Er/Est", 0);
	fake_box_add(&h_fake, BOB, "With Space", 0);
	fake_box_add(&h_fake, "carol@example.test", "Carols", 0);
	h_open(&c);
	h_expect(&c, "a LIST \"\" *\r\n",
		 "* LIST (\\HasNoChildren \\Archive) \"/\" Archive\r\n"
		 "* LIST (\\Noselect \\HasChildren) \"/\" Deep\r\n"
		 "* LIST (\\Noselect \\HasChildren) \"/\" Deep/Er\r\n"
		 "* LIST (\\HasNoChildren) \"/\" Deep/Er/Est\r\n"
		 "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts\r\n"
		 "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
		 "* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n"
		 "* LIST (\\HasChildren) \"/\" Projects\r\n"
		 "* LIST (\\HasNoChildren) \"/\" Projects/Alpha\r\n"
		 "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
		 "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"
		 "* LIST (\\HasNoChildren) \"/\" \"With Space\"\r\n"
		 "a OK LIST completed\r\n");
	/* "%" stops at the delimiter; the level "Deep" is there as
	 * \Noselect (RFC 3501 6.3.8). */
	h_expect(&c, "b LIST \"\" %\r\n",
		 "* LIST (\\HasNoChildren \\Archive) \"/\" Archive\r\n"
		 "* LIST (\\Noselect \\HasChildren) \"/\" Deep\r\n"
		 "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts\r\n"
		 "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
		 "* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n"
		 "* LIST (\\HasChildren) \"/\" Projects\r\n"
		 "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
		 "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"
		 "* LIST (\\HasNoChildren) \"/\" \"With Space\"\r\n"
		 "b OK LIST completed\r\n");
	/* The reference is put in front of the pattern. */
	h_expect(&c, "c LIST Projects/ %\r\n", "* LIST (\\HasNoChildren) \"/\" Projects/Alpha\r\nc OK LIST completed\r\n");
	h_expect(&c, "c LIST Deep %/%\r\n", "* LIST (\\Noselect \\HasChildren) \"/\" Deep/Er\r\nc OK LIST completed\r\n");
	h_expect(&c, "d LIST \"\" D%/%\r\n", "* LIST (\\Noselect \\HasChildren) \"/\" Deep/Er\r\nd OK LIST completed\r\n");
	/* INBOX in any case. */
	h_expect(&c, "e LIST \"\" inbox\r\n", "* LIST (\\HasNoChildren) \"/\" INBOX\r\ne OK LIST completed\r\n");
	h_expect(&c, "e LIST \"\" \"Inb%\"\r\n", "* LIST (\\HasNoChildren) \"/\" INBOX\r\ne OK LIST completed\r\n");
	h_expect(&c, "e LIST \"\" sent\r\n", "e OK LIST completed\r\n");
	/* The delimiter and the root (RFC 3501 6.3.8). */
	h_expect(&c, "f LIST \"\" \"\"\r\n", "* LIST (\\Noselect) \"/\" \"\"\r\nf OK LIST completed\r\n");
	h_expect(&c, "f LIST Projects \"\"\r\n", "* LIST (\\Noselect) \"/\" \"\"\r\nf OK LIST completed\r\n");
	h_expect(&c, "g LIST \"\" Nope*\r\n", "g OK LIST completed\r\n");
	h_expect(&c, "g LIST \"\" {10+}\r\nWith Space\r\n",
		 "* LIST (\\HasNoChildren) \"/\" \"With Space\"\r\ng OK LIST completed\r\n");
	/* Not offered: LIST-EXTENDED options; and plain bad syntax. */
	h_expect(&c, "h LIST (SUBSCRIBED) \"\" *\r\n", "h BAD Syntax: LIST reference mailbox-pattern\r\n");
	h_expect(&c, "h LIST \"\"\r\n", "h BAD Syntax: LIST reference mailbox-pattern\r\n");
	h_expect(&c, "h LIST \"\" * x\r\n", "h BAD Syntax: LIST reference mailbox-pattern\r\n");
	h_fake.fail = IMAP_TEMPFAIL;
	h_expect(&c, "i LIST \"\" *\r\n", "i NO [UNAVAILABLE] Temporary server failure, try again later\r\n");
	h_close(&c);
}
END_TEST

START_TEST(list_special_names)
{
	struct hs c;

	/* Names are sent as they are kept: modified UTF-7 as an atom,
	 * quotes and backslashes quoted, 8-bit bytes as a literal. */
	fake_box_add(&h_fake, BOB, "Entw&APw-rfe", 0);
	fake_box_add(&h_fake, BOB, "Say \"hi\"", 0);
	fake_box_add(&h_fake, BOB, "Caf\xc3\xa9", 0);
	h_open(&c);
	h_expect(&c, "a LIST \"\" Entw*\r\n", "* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe\r\na OK LIST completed\r\n");
	h_expect(&c, "b LIST \"\" Say*\r\n", "* LIST (\\HasNoChildren) \"/\" \"Say \\\"hi\\\"\"\r\nb OK LIST completed\r\n");
	h_expect(&c, "c LIST \"\" Caf*\r\n", "* LIST (\\HasNoChildren) \"/\" {5}\r\nCaf\xc3\xa9\r\nc OK LIST completed\r\n");
	h_close(&c);
}
END_TEST

START_TEST(lsub_subscriptions)
{
	struct hs c;

	fake_box_add(&h_fake, BOB, "Projects", 0);
	fake_box_add(&h_fake, BOB, "Projects/Alpha", 0);
	h_open(&c);
	free(h_ask(&c, "a SUBSCRIBE Projects/Alpha\r\nb SUBSCRIBE Ghost\r\n"));
	/* A subscription without a mailbox is \NonExistent and \Noselect.
	 * A level above a subscription that is not subscribed itself is
	 * there as \Noselect when "%" stops at it (RFC 3501 6.3.9), not
	 * when "*" shows the subscription anyway. */
	h_expect(&c, "c LSUB \"\" *\r\n",
		 "* LSUB (\\NonExistent \\Noselect) \"/\" Ghost\r\n"
		 "* LSUB () \"/\" INBOX\r\n"
		 "* LSUB () \"/\" Projects/Alpha\r\n"
		 "* LSUB () \"/\" Sent\r\n"
		 "c OK LSUB completed\r\n");
	h_expect(&c, "d LSUB \"\" %\r\n",
		 "* LSUB (\\NonExistent \\Noselect) \"/\" Ghost\r\n"
		 "* LSUB () \"/\" INBOX\r\n"
		 "* LSUB (\\Noselect) \"/\" Projects\r\n"
		 "* LSUB () \"/\" Sent\r\n"
		 "d OK LSUB completed\r\n");
	/* Once the parent is subscribed it is listed as it is. */
	free(h_ask(&c, "e SUBSCRIBE Projects\r\n"));
	h_expect(&c, "f LSUB Projects %\r\n", "* LSUB () \"/\" Projects\r\nf OK LSUB completed\r\n");
	h_expect(&c, "f LSUB Projects/ %\r\n", "* LSUB () \"/\" Projects/Alpha\r\nf OK LSUB completed\r\n");
	/* LIST does not show a subscription that is not a mailbox. */
	h_expect(&c, "g LIST \"\" Ghost\r\n", "g OK LIST completed\r\n");
	h_expect(&c, "h LSUB \"\" \"\"\r\n", "h OK LSUB completed\r\n");
	h_expect(&c, "i LSUB \"\"\r\n", "i BAD Syntax: LSUB reference mailbox-pattern\r\n");
	h_close(&c);
}
END_TEST

START_TEST(status_items)
{
	struct hs c;

	h_put("INBOX", "a\r\n", IMAP_SEEN);
	h_put("INBOX", "b\r\n", 0);
	h_put("INBOX", "c\r\n", 0);
	fake_box_add(&h_fake, BOB, "With Space", 0);
	h_open(&c);
	/* The items in the order asked for (RFC 3501 6.3.10). */
	h_expect(&c, "a STATUS inbox (UNSEEN MESSAGES uidnext)\r\n",
		 "* STATUS INBOX (UNSEEN 2 MESSAGES 3 UIDNEXT 4)\r\na OK STATUS completed\r\n");
	h_expect(&c, "b STATUS INBOX (RECENT UIDVALIDITY)\r\n",
		 "* STATUS INBOX (RECENT 3 UIDVALIDITY 1000)\r\nb OK STATUS completed\r\n");
	h_expect(&c, "c STATUS \"With Space\" (MESSAGES)\r\n",
		 "* STATUS \"With Space\" (MESSAGES 0)\r\nc OK STATUS completed\r\n");
	h_expect(&c, "d STATUS Nope (MESSAGES)\r\n", "d NO [NONEXISTENT] No such mailbox\r\n");
	h_expect(&c, "e STATUS INBOX (MESSAGES FOO)\r\n", "e BAD Unknown STATUS item\r\n");
	h_expect(&c, "e STATUS INBOX ((MESSAGES))\r\n", "e BAD Unknown STATUS item\r\n");
	h_expect(&c, "f STATUS INBOX ()\r\n", "f BAD Syntax: STATUS mailbox (items)\r\n");
	h_expect(&c, "g STATUS INBOX MESSAGES\r\n", "g BAD Syntax: STATUS mailbox (items)\r\n");
	h_expect(&c, "h STATUS INBOX\r\n", "h BAD Syntax: STATUS mailbox (items)\r\n");
	h_expect(&c, "i STATUS \"\" (MESSAGES)\r\n", "i BAD Invalid mailbox name\r\n");
	h_fake.fail = IMAP_TEMPFAIL;
	h_expect(&c, "j STATUS INBOX (MESSAGES)\r\n",
		 "j NO [UNAVAILABLE] Temporary server failure, try again later\r\n");
	h_close(&c);
}
END_TEST

START_TEST(append_messages)
{
	struct hs c;
	struct fake_box *drafts = h_box("Drafts");

	h_open(&c);
	/* Flags, keyword and date; APPENDUID (RFC 4315 3). */
	h_expect(&c, "a APPEND Drafts (\\Seen $Todo) \"17-Jul-1996 02:44:25 -0700\" {14+}\r\nSubject: x\r\n\r\n\r\n",
		 "a OK [APPENDUID 1002 1] APPEND completed\r\n");
	ck_assert_uint_eq(drafts->n, 1);
	ck_assert_uint_eq(drafts->msgs[0].flags, IMAP_SEEN);
	ck_assert_str_eq(drafts->keywords[0], "$Todo");
	ck_assert_uint_eq(drafts->msgs[0].keywords, 1);
	ck_assert_int_eq(drafts->msgs[0].date, 837596665);
	ck_assert_uint_eq(drafts->msgs[0].len, 14);
	ck_assert(memcmp(drafts->msgs[0].data, "Subject: x\r\n\r\n", 14) == 0);
	/* No flags, no date: the backend's now. */
	h_expect(&c, "b APPEND Drafts {3+}\r\nabc\r\n", "b OK [APPENDUID 1002 2] APPEND completed\r\n");
	ck_assert_int_eq(drafts->msgs[1].date, h_fake.now);
	ck_assert_uint_eq(drafts->msgs[1].flags, 0);
	/* A synchronizing literal gets its continuation first; a date
	 * with a space for the day. */
	h_expect(&c, "c APPEND Drafts \" 7-Feb-2024 10:00:00 +0000\" {3}\r\n", "+ Ready for literal data\r\n");
	h_expect(&c, "xyz\r\n", "c OK [APPENDUID 1002 3] APPEND completed\r\n");
	ck_assert_int_eq(drafts->msgs[2].date, 1707300000);
	h_expect(&c, "d APPEND Drafts () {3+}\r\nabc\r\n", "d OK [APPENDUID 1002 4] APPEND completed\r\n");

	/* RFC 3501 6.3.11: TRYCREATE when there is no such mailbox. */
	h_expect(&c, "e APPEND Nope {3+}\r\nabc\r\n", "e NO [TRYCREATE] Mailbox does not exist\r\n");
	h_expect(&c, "f APPEND Drafts \"31-Feb-2024 00:00:00 +0000\" {3+}\r\nabc\r\n", "f BAD Invalid date-time\r\n");
	h_expect(&c, "g APPEND Drafts (\\Recent) {3+}\r\nabc\r\n", "g BAD \\Recent cannot be changed\r\n");
	h_expect(&c, "g APPEND Drafts (\\Bogus) {3+}\r\nabc\r\n", "g BAD Unknown system flag\r\n");
	h_expect(&c, "h APPEND Drafts {0+}\r\n\r\n", "h NO Can't save a zero byte message\r\n");
	h_expect(&c, "i APPEND Drafts\r\n", "i BAD Syntax: APPEND mailbox [(flags)] [date-time] {literal}\r\n");
	h_expect(&c, "i APPEND Drafts \"abc\"\r\n", "i BAD Syntax: APPEND mailbox [(flags)] [date-time] {literal}\r\n");
	h_expect(&c, "i APPEND Drafts {3+}\r\nabc \"17-Jul-1996 02:44:25 -0700\"\r\n",
		 "i BAD Syntax: APPEND mailbox [(flags)] [date-time] {literal}\r\n");
	h_expect(&c, "i APPEND Drafts \"17-Jul-1996 02:44:25 -0700\" (\\Seen) {3+}\r\nabc\r\n",
		 "i BAD Syntax: APPEND mailbox [(flags)] [date-time] {literal}\r\n");
	h_expect(&c, "j APPEND \"\" {3+}\r\nabc\r\n", "j BAD Invalid mailbox name\r\n");
	ck_assert_uint_eq(drafts->n, 4);
	h_fake.fail = IMAP_OVERQUOTA;
	h_expect(&c, "k APPEND Drafts {3+}\r\nabc\r\n", "k NO [OVERQUOTA] Quota exceeded\r\n");
	h_fake.fail = IMAP_OK;

	/* Into the selected mailbox: the new message is told before the
	 * tagged OK. */
	free(h_ask(&c, "l SELECT INBOX\r\n"));
	h_expect(&c, "m APPEND INBOX (\\Flagged) {3+}\r\nabc\r\n",
		 "* 1 EXISTS\r\n* 1 RECENT\r\nm OK [APPENDUID 1000 1] APPEND completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->msgs[0].flags, IMAP_FLAGGED);
	h_close(&c);
}
END_TEST

START_TEST(waiting_command_cancelled)
{
	struct hs c;

	/* The client goes while the backend works: the work is cancelled
	 * and its callback never comes. */
	h_open(&c);
	const char *in = "a CREATE Later\r\n";
	ck_assert_int_eq(h_feed(&c, in, strlen(in), true), SESSION_EFFECT_WAIT);
	h_close(&c);
	ck_assert_uint_eq(h_fake.cancels, 1);
	fake_run_all(&h_fake);
	ck_assert_ptr_nonnull(h_box("Later"));
	h_open(&c);
	in = "b SELECT INBOX\r\n";
	ck_assert_int_eq(h_feed(&c, in, strlen(in), true), SESSION_EFFECT_WAIT);
	h_close(&c);
	ck_assert_uint_eq(h_fake.cancels, 2);
}
END_TEST

static Suite *imap_mailbox_suite(void)
{
	Suite *s = suite_create("imap_mailbox");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, list_patterns);
	tcase_add_test(tc, list_patterns_do_not_backtrack);
	tcase_add_test(tc, list_reference_join);
	tcase_add_test(tc, append_dates);
	suite_add_tcase(s, tc);

	tc = tcase_create("session");
	tcase_add_checked_fixture(tc, h_setup, h_teardown);
	tcase_add_test(tc, select_and_examine);
	tcase_add_test(tc, select_quoted_and_literal_names);
	tcase_add_test(tc, close_unselect_check);
	tcase_add_test(tc, create_delete_rename_subscribe);
	tcase_add_test(tc, delete_selected_mailbox);
	tcase_add_test(tc, list_mailboxes);
	tcase_add_test(tc, list_special_names);
	tcase_add_test(tc, lsub_subscriptions);
	tcase_add_test(tc, status_items);
	tcase_add_test(tc, append_messages);
	tcase_add_test(tc, waiting_command_cancelled);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(imap_mailbox_suite());
}
