#ifndef POSTBOTE_IMAP_DRAIN_HARNESS_H
#define POSTBOTE_IMAP_DRAIN_HARNESS_H

/*
 * Driving one IMAP session over the fake backend (test_imap_fake.h) for the
 * FETCH and SEARCH tests, whose answers may be far larger than the
 * session's output: waits are carried out as the glue would (the fake's
 * work runs, output is taken whenever the session asks for a drain), and
 * the harness counts the drains and the largest piece of output taken in
 * one step, so a test can show the answer went out in bounded pieces.
 * Each input is copied to the end of a guard page, so reading past it
 * crashes.
 *
 * A test fills the fake's INBOX between t_init() and t_login().
 */

#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/session.h"
#include "core/xalloc.h"
#include "imap/imap_session.h"
#include "test_imap_fake.h"
#include "testutil.h"

#define ACCOUNT "bob@example.test"

static struct config cfg;

struct t {
	struct fake f;
	struct session *s;
	char *out;
	size_t len, cap;
	size_t step_max;            /* most output taken in one step */
	unsigned drains;            /* drains the session asked for */
};

static void setup(void)
{
	log_setup(LOG_LEVEL_WARN, false, NULL);
	config_dev_setup(&cfg);
}

static void teardown(void)
{
	config_free(&cfg);
}

/* Take what the session has written; returns how much. */
static size_t t_collect(struct t *t)
{
	struct buf *b = session_output(t->s);
	size_t n = buf_len(b);
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->out = xrealloc(t->out, t->cap);
	}
	memcpy(t->out + t->len, buf_ptr(b), n);
	t->len += n;
	t->out[t->len] = '\0';
	buf_reset(b);
	return n;
}

/* The output since the last take; *len_r its length (it may hold NULs).
 * The caller frees it. */
static char *t_take_len(struct t *t, size_t *len_r)
{
	t_collect(t);
	char *s = xmalloc(t->len + 1);
	memcpy(s, t->out ? t->out : "", t->len);
	s[t->len] = '\0';
	if (len_r != NULL)
		*len_r = t->len;
	t->len = 0;
	return s;
}

static char *t_take(struct t *t)
{
	return t_take_len(t, NULL);
}

/* Carry out waits as the glue would: the fake's work runs, output drains
 * (is taken) when asked. */
static enum session_effect t_settle(struct t *t, enum session_effect e)
{
	for (;;) {
		if (e == SESSION_EFFECT_NONE)
			e = session_continue(t->s);
		size_t n = t_collect(t);
		if (n > t->step_max)
			t->step_max = n;
		if (e != SESSION_EFFECT_WAIT)
			return e;
		if (session_resumed(t->s)) {
			e = session_continue(t->s);
		} else if (session_wants_drain(t->s)) {
			t->drains++;
			session_drained(t->s);
		} else if (!fake_run(&t->f)) {
			return SESSION_EFFECT_WAIT;
		}
	}
}

/* Feed in whole, or one byte at a time. */
static enum session_effect t_feed(struct t *t, const char *in, bool bytewise)
{
	size_t len = strlen(in);
	char *g = guard_copy(in, len);
	enum session_effect e = SESSION_EFFECT_NONE;

	if (!bytewise) {
		e = t_settle(t, session_feed(t->s, g, len));
	} else {
		for (size_t i = 0; i < len && e != SESSION_EFFECT_CLOSE; i++)
			e = t_settle(t, session_feed(t->s, g + i, 1));
	}
	guard_free(g, len);
	return e;
}

/* An empty harness with a fresh fake backend. */
static void t_init(struct t *t)
{
	memset(t, 0, sizeof(*t));
	fake_init(&t->f);
}

/* A session logged in as bob with INBOX selected, or EXAMINEd when
 * read_only. */
static void t_login(struct t *t, bool read_only)
{
	struct session_params p = {
		.cfg = &cfg, .kind = LISTENER_IMAP, .id = 1, .peer = "127.0.0.1", .peer_loopback = true,
		.backend = &t->f.b,
	};
	t->s = session_new(&imap_proto, &p);
	session_start(t->s);
	t_feed(t, "a LOGIN bob secret\r\n", false);
	t_feed(t, read_only ? "b EXAMINE INBOX\r\n" : "b SELECT INBOX\r\n", false);
	char *out = t_take(t);
	ck_assert_msg(strstr(out, "b OK") != NULL, "%s", out);
	free(out);
}

/* End the session; every message reader it opened must be closed. */
static void t_close(struct t *t)
{
	session_free(&t->s);
	fake_run_all(&t->f);
	ck_assert_uint_eq(t->f.readers_open, 0);
	fake_free(&t->f);
	free(t->out);
}

#endif
