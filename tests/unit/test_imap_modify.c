/* The commands that change messages (imap_modify.c) over the fake
 * backend: STORE and UID STORE with and without .SILENT, COPY/MOVE with
 * COPYUID and MOVE's response order, EXPUNGE and UID EXPUNGE, read-only
 * mailboxes, other sessions' changes and the error paths; and the compact
 * UID sets of COPYUID on their own. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_mailbox.h"
#include "imap_cmd_harness.h"

/* ---------------------------------------------------------------- */
/* COPYUID sets                                                      */

static void uidset(const uint32_t *v, size_t n, const char *want)
{
	struct buf b;
	buf_init(&b, 1024);
	ck_assert_int_eq(imap_uidset_write(&b, v, n), 0);
	ck_assert_msg(buf_len(&b) == strlen(want) && memcmp(buf_ptr(&b), want, buf_len(&b)) == 0,
		      "got %.*s want %s", (int)buf_len(&b), buf_ptr(&b), want);
	buf_free(&b);
}

START_TEST(uid_sets)
{
	uidset(NULL, 0, "");
	uidset((uint32_t[]){ 7 }, 1, "7");
	uidset((uint32_t[]){ 1, 2, 3 }, 3, "1:3");
	uidset((uint32_t[]){ 1, 2, 3, 7 }, 4, "1:3,7");
	uidset((uint32_t[]){ 1, 3, 5 }, 3, "1,3,5");
	uidset((uint32_t[]){ 4, 5, 9, 10, 11, 20 }, 6, "4:5,9:11,20");
	/* The order is kept: the target set must pair with the source. */
	uidset((uint32_t[]){ 9, 8, 7 }, 3, "9,8,7");
	uidset((uint32_t[]){ 4294967294u, 4294967295u, 1 }, 3, "4294967294:4294967295,1");

	/* A full buffer: -1 and nothing appended. */
	struct buf b;
	buf_init(&b, 8);
	buf_append(&b, "x", 1);
	ck_assert_int_eq(imap_uidset_write(&b, (uint32_t[]){ 1, 2, 3, 100, 200, 300 }, 6), -1);
	ck_assert_uint_eq(buf_len(&b), 1);
	buf_free(&b);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Through a session                                                 */

/* INBOX with n plain messages, uids 1..n. */
static void h_inbox(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		h_put("INBOX", "Subject: m\r\n\r\nbody\r\n", 0);
}

static uint32_t h_flags_of(const char *box, uint32_t uid)
{
	struct fake_msg *m = fake_msg_find(h_box(box), uid);
	ck_assert_ptr_nonnull(m);
	return m->flags;
}

START_TEST(store_flags)
{
	struct hs c;

	h_inbox(3);
	h_open_selected(&c, "INBOX");
	/* Every message of the set is told its flags (RFC 3501 6.4.6). */
	h_expect(&c, "a STORE 1:2 +FLAGS (\\Seen)\r\n",
		 "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n* 2 FETCH (FLAGS (\\Seen \\Recent))\r\na OK STORE completed\r\n");
	ck_assert_uint_eq(h_flags_of("INBOX", 1), IMAP_SEEN);
	ck_assert_uint_eq(h_flags_of("INBOX", 3), 0);
	/* .SILENT: nothing but the OK; flags separated by spaces. */
	h_expect(&c, "b STORE 1 -FLAGS.SILENT \\Seen\r\n", "b OK STORE completed\r\n");
	ck_assert_uint_eq(h_flags_of("INBOX", 1), 0);
	h_expect(&c, "c store 2,3 +flags \\Flagged \\Answered\r\n",
		 "* 2 FETCH (FLAGS (\\Answered \\Flagged \\Seen \\Recent))\r\n"
		 "* 3 FETCH (FLAGS (\\Answered \\Flagged \\Recent))\r\nc OK STORE completed\r\n");
	/* UID STORE carries the UID; a new keyword brings FLAGS and
	 * PERMANENTFLAGS first (RFC 3501 7.2.6). */
	h_expect(&c, "d UID STORE 3 FLAGS ($Work \\Draft)\r\n",
		 "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
		 "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted\r\n"
		 "* 3 FETCH (UID 3 FLAGS (\\Draft \\Recent $Work))\r\nd OK STORE completed\r\n");
	h_expect(&c, "e UID STORE 1:* FLAGS.SILENT ()\r\n", "e OK STORE completed\r\n");
	ck_assert_uint_eq(h_flags_of("INBOX", 2), 0);
	ck_assert_uint_eq(fake_msg_find(h_box("INBOX"), 3)->keywords, 0);
	/* UIDs that are not there: nothing to do, no error. */
	h_expect(&c, "f UID STORE 99 +FLAGS (\\Seen)\r\n", "f OK STORE completed\r\n");

	h_expect(&c, "g STORE 1 +FLAGS (\\Recent)\r\n", "g BAD \\Recent cannot be changed\r\n");
	h_expect(&c, "g STORE 1 +FLAGS (\\Seen) (\\Draft)\r\n",
		 "g BAD Flags must be one list or flags separated by spaces\r\n");
	h_expect(&c, "g STORE 1 +FLAGS \\Seen (\\Draft)\r\n",
		 "g BAD Flags must be one list or flags separated by spaces\r\n");
	h_expect(&c, "h STORE 1 FOO (\\Seen)\r\n", "h BAD Unknown STORE item\r\n");
	h_expect(&c, "h STORE 1 +FLAGS.LOUD (\\Seen)\r\n", "h BAD Unknown STORE item\r\n");
	h_expect(&c, "i STORE 4 +FLAGS (\\Seen)\r\n", "i BAD Invalid message number\r\n");
	h_expect(&c, "i STORE x +FLAGS (\\Seen)\r\n", "i BAD Invalid character in sequence set\r\n");
	h_expect(&c, "j STORE 1 +FLAGS\r\n", "j BAD Syntax: STORE set [+|-]FLAGS[.SILENT] (flags)\r\n");
	h_fake.fail = IMAP_TEMPFAIL;
	h_expect(&c, "k STORE 1 +FLAGS (\\Seen)\r\n", "k NO [UNAVAILABLE] Temporary server failure, try again later\r\n");
	h_fake.fail = IMAP_OK;

	/* Read-only: refused (RFC 3501 6.4.6). */
	free(h_ask(&c, "l EXAMINE INBOX\r\n"));
	h_expect(&c, "m STORE 1 +FLAGS (\\Seen)\r\n", "m NO Mailbox is read-only\r\n");
	ck_assert_uint_eq(h_flags_of("INBOX", 1), 0);
	h_close(&c);
}
END_TEST

START_TEST(store_seen_by_other_session)
{
	struct hs a, b;

	h_inbox(2);
	h_open_selected(&a, "INBOX");
	h_open_selected(&b, "INBOX");
	h_expect(&a, "a STORE 2 +FLAGS (\\Deleted)\r\n", "* 2 FETCH (FLAGS (\\Deleted \\Recent))\r\na OK STORE completed\r\n");
	h_expect(&b, "b NOOP\r\n", "* 2 FETCH (FLAGS (\\Deleted))\r\nb OK NOOP completed\r\n");
	/* Another session's expunge is not told during STORE (RFC 3501
	 * 7.4.1), the sequence numbers stay as the client knows them. */
	h_expect(&b, "c EXPUNGE\r\n", "* 2 EXPUNGE\r\nc OK EXPUNGE completed\r\n");
	h_expect(&a, "d STORE 1:2 +FLAGS (\\Flagged)\r\n",
		 "* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n* 2 FETCH (FLAGS (\\Deleted \\Recent))\r\nd OK STORE completed\r\n");
	h_expect(&a, "e NOOP\r\n", "* 2 EXPUNGE\r\ne OK NOOP completed\r\n");
	h_expect(&a, "f STORE 1 -FLAGS (\\Flagged)\r\n",
		 "* 1 FETCH (FLAGS (\\Recent))\r\nf OK STORE completed\r\n");
	/* Set and taken away again before b asked: nothing to tell. */
	h_expect(&b, "g NOOP\r\n", "g OK NOOP completed\r\n");
	h_close(&a);
	h_close(&b);
}
END_TEST

START_TEST(copy_with_copyuid)
{
	struct hs c;

	h_inbox(5);
	h_open_selected(&c, "INBOX");
	/* RFC 4315 3: source and target sets, compact, in the same order. */
	h_expect(&c, "a COPY 1:3,5 Archive\r\n", "a OK [COPYUID 1005 1:3,5 1:4] COPY completed\r\n");
	ck_assert_uint_eq(h_box("Archive")->n, 4);
	ck_assert_uint_eq(h_box("INBOX")->n, 5);
	h_expect(&c, "b UID COPY 4,2 Trash\r\n", "b OK [COPYUID 1003 2,4 1:2] COPY completed\r\n");
	h_expect(&c, "c COPY 1 Nope\r\n", "c NO [TRYCREATE] Mailbox does not exist\r\n");
	/* Nothing matched: OK, and no COPYUID to give. */
	h_expect(&c, "d UID COPY 99 Trash\r\n", "d OK COPY completed\r\n");
	h_expect(&c, "e COPY 6 Trash\r\n", "e BAD Invalid message number\r\n");
	h_expect(&c, "e COPY 1 \"\"\r\n", "e BAD Invalid mailbox name\r\n");
	h_expect(&c, "f COPY 1\r\n", "f BAD Syntax: COPY set mailbox\r\n");
	h_expect(&c, "f COPY (1) Trash\r\n", "f BAD Invalid message set\r\n");
	/* Into the selected mailbox: the copy is told before the OK. */
	h_expect(&c, "g COPY 5 inbox\r\n", "* 6 EXISTS\r\n* 6 RECENT\r\ng OK [COPYUID 1000 5 6] COPY completed\r\n");
	h_fake.fail = IMAP_OVERQUOTA;
	h_expect(&c, "h COPY 1 Trash\r\n", "h NO [OVERQUOTA] Quota exceeded\r\n");
	h_fake.fail = IMAP_OK;
	/* From a read-only mailbox: COPY is fine. */
	free(h_ask(&c, "i EXAMINE INBOX\r\n"));
	h_expect(&c, "j COPY 1 Junk\r\n", "j OK [COPYUID 1004 1 1] COPY completed\r\n");
	h_close(&c);
}
END_TEST

START_TEST(move_order)
{
	struct hs c, w;

	h_inbox(5);
	h_open_selected(&c, "INBOX");
	h_open_selected(&w, "INBOX");
	/* RFC 6851 4.3: COPYUID untagged, then the EXPUNGEs, then OK. */
	h_expect(&c, "a MOVE 2:3 Junk\r\n",
		 "* OK [COPYUID 1004 2:3 1:2] Moved UIDs\r\n* 2 EXPUNGE\r\n* 2 EXPUNGE\r\na OK MOVE completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 3);
	ck_assert_uint_eq(h_box("Junk")->n, 2);
	h_expect(&c, "b UID MOVE 5 Junk\r\n", "* OK [COPYUID 1004 5 3] Moved UIDs\r\n* 3 EXPUNGE\r\nb OK MOVE completed\r\n");
	h_expect(&c, "c MOVE 1 Nope\r\n", "c NO [TRYCREATE] Mailbox does not exist\r\n");
	h_expect(&c, "d UID MOVE 2 Junk\r\n", "d OK MOVE completed\r\n");
	h_expect(&c, "e MOVE 1:2 Trash Junk\r\n", "e BAD Syntax: MOVE set mailbox\r\n");
	/* The other session hears of the expunges at its next chance. */
	h_expect(&w, "f NOOP\r\n", "* 2 EXPUNGE\r\n* 2 EXPUNGE\r\n* 3 EXPUNGE\r\nf OK NOOP completed\r\n");
	/* Read-only: MOVE would expunge, so no. */
	free(h_ask(&c, "g EXAMINE INBOX\r\n"));
	h_expect(&c, "h MOVE 1 Junk\r\n", "h NO Mailbox is read-only\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 2);
	h_close(&c);
	h_close(&w);
}
END_TEST

START_TEST(expunge_deleted)
{
	struct hs c;

	h_inbox(4);
	h_open_selected(&c, "INBOX");
	h_expect(&c, "a EXPUNGE\r\n", "a OK EXPUNGE completed\r\n");
	free(h_ask(&c, "b STORE 2:3 +FLAGS.SILENT (\\Deleted)\r\n"));
	/* Each EXPUNGE with the number the message has at that moment. */
	h_expect(&c, "c EXPUNGE\r\n", "* 2 EXPUNGE\r\n* 2 EXPUNGE\r\nc OK EXPUNGE completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 2);
	h_expect(&c, "d EXPUNGE 1\r\n", "d BAD EXPUNGE takes no arguments\r\n");
	h_expect(&c, "d UID EXPUNGE\r\n", "d BAD Syntax: UID EXPUNGE set\r\n");
	h_expect(&c, "d UID EXPUNGE 1 2\r\n", "d BAD Syntax: UID EXPUNGE set\r\n");
	h_expect(&c, "d UID EXPUNGE x\r\n", "d BAD Invalid character in sequence set\r\n");
	h_close(&c);
}
END_TEST

START_TEST(uid_expunge_only_the_set)
{
	struct hs c;

	h_inbox(4);
	for (uint32_t uid = 1; uid <= 4; uid++)
		fake_msg_find(h_box("INBOX"), uid)->flags = uid == 3 ? 0 : IMAP_DELETED;
	h_open_selected(&c, "INBOX");
	/* RFC 4315 2.1: \Deleted and in the set. */
	h_expect(&c, "a UID EXPUNGE 2:3\r\n", "* 2 EXPUNGE\r\na OK EXPUNGE completed\r\n");
	h_expect(&c, "b UID EXPUNGE 3,7\r\n", "b OK EXPUNGE completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 3);
	h_expect(&c, "c EXPUNGE\r\n", "* 1 EXPUNGE\r\n* 2 EXPUNGE\r\nc OK EXPUNGE completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 1);
	ck_assert_uint_eq(h_box("INBOX")->msgs[0].uid, 3);
	h_close(&c);
}
END_TEST

START_TEST(expunge_uses_current_flags)
{
	struct hs a, b;

	h_inbox(3);
	h_open_selected(&a, "INBOX");
	h_open_selected(&b, "INBOX");
	/* b's STORE is not yet told to a, but a's EXPUNGE removes what has
	 * \Deleted now. */
	free(h_ask(&b, "a STORE 1 +FLAGS (\\Deleted)\r\n"));
	h_expect(&a, "b EXPUNGE\r\n", "* 1 EXPUNGE\r\nb OK EXPUNGE completed\r\n");
	ck_assert_uint_eq(h_box("INBOX")->n, 2);
	/* Read-only: refused. */
	free(h_ask(&b, "c EXAMINE INBOX\r\n"));
	h_expect(&b, "d EXPUNGE\r\n", "d NO Mailbox is read-only\r\n");
	h_expect(&b, "d UID EXPUNGE 1\r\n", "d NO Mailbox is read-only\r\n");
	/* The backend fails: NO, nothing told. */
	free(h_ask(&a, "e STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"));
	h_fake.fail = IMAP_TEMPFAIL;
	h_expect(&a, "f EXPUNGE\r\n", "f NO [UNAVAILABLE] Temporary server failure, try again later\r\n");
	h_fake.fail = IMAP_OK;
	h_close(&a);
	h_close(&b);
}
END_TEST

START_TEST(copy_of_vanished_message)
{
	struct hs c;

	h_inbox(3);
	h_open_selected(&c, "INBOX");
	/* A message goes while the COPY waits: COPYUID pairs only what was
	 * copied, and the EXPUNGE is told before the OK. */
	const char *in = "a COPY 1:3 Trash\r\n";
	ck_assert_int_eq(h_feed(&c, in, strlen(in), true), SESSION_EFFECT_WAIT);
	fake_remove(&h_fake, BOB, "INBOX", 2);
	h_settle(&c, SESSION_EFFECT_WAIT, false);
	char *out = h_take(&c);
	ck_assert_str_eq(out, "* 2 EXPUNGE\r\na OK [COPYUID 1003 1,3 1:2] COPY completed\r\n");
	free(out);
	/* All of them gone: OK without COPYUID. */
	in = "b UID COPY 3 Trash\r\n";
	ck_assert_int_eq(h_feed(&c, in, strlen(in), true), SESSION_EFFECT_WAIT);
	fake_remove(&h_fake, BOB, "INBOX", 3);
	h_settle(&c, SESSION_EFFECT_WAIT, false);
	out = h_take(&c);
	ck_assert_str_eq(out, "* 2 EXPUNGE\r\nb OK COPY completed\r\n");
	free(out);
	h_close(&c);
}
END_TEST

START_TEST(waiting_change_cancelled)
{
	struct hs c;

	h_inbox(2);
	h_open_selected(&c, "INBOX");
	const char *in = "a COPY 1:2 Trash\r\n";
	ck_assert_int_eq(h_feed(&c, in, strlen(in), true), SESSION_EFFECT_WAIT);
	h_close(&c);
	ck_assert_uint_eq(h_fake.cancels, 1);
	fake_run_all(&h_fake);
	ck_assert_uint_eq(h_box("Trash")->n, 2);
}
END_TEST

static Suite *imap_modify_suite(void)
{
	Suite *s = suite_create("imap_modify");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, uid_sets);
	suite_add_tcase(s, tc);

	tc = tcase_create("session");
	tcase_add_checked_fixture(tc, h_setup, h_teardown);
	tcase_add_test(tc, store_flags);
	tcase_add_test(tc, store_seen_by_other_session);
	tcase_add_test(tc, copy_with_copyuid);
	tcase_add_test(tc, move_order);
	tcase_add_test(tc, expunge_deleted);
	tcase_add_test(tc, uid_expunge_only_the_set);
	tcase_add_test(tc, expunge_uses_current_flags);
	tcase_add_test(tc, copy_of_vanished_message);
	tcase_add_test(tc, waiting_change_cancelled);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(imap_modify_suite());
}
