#ifndef POSTBOTE_IMAP_CMD_HARNESS_H
#define POSTBOTE_IMAP_CMD_HARNESS_H

/*
 * Driving IMAP sessions over the fake backend (test_imap_fake.h) for the
 * command tests (test_imap_mailbox.c, test_imap_modify.c): a session is fed
 * a dialogue, waits are carried out as the glue would (the fake's queue is
 * run until the session resumes), and the output is compared as a whole.
 * Each input is copied to the end of a guard page, so reading past it
 * crashes.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/session.h"
#include "imap/imap_session.h"
#include "test_imap_fake.h"
#include "testutil.h"

#define BOB "bob@example.test"

static struct config h_cfg;
static struct fake h_fake;

/* One client connection. */
struct hs {
	struct session *s;
	char *out;
	size_t len, cap;
	enum session_effect last;
};

static void h_setup(void)
{
	log_setup(LOG_LEVEL_WARN, false, NULL);
	config_dev_setup(&h_cfg);
	fake_init(&h_fake);
}

static void h_teardown(void)
{
	fake_free(&h_fake);
	config_free(&h_cfg);
}

static void h_collect(struct hs *c)
{
	struct buf *b = session_output(c->s);
	size_t n = buf_len(b);

	if (c->len + n + 1 > c->cap) {
		c->cap = (c->len + n + 1) * 2;
		c->out = xrealloc(c->out, c->cap);
	}
	memcpy(c->out + c->len, buf_ptr(b), n);
	c->len += n;
	c->out[c->len] = '\0';
	buf_reset(b);
}

/* Everything said since the last take; the caller frees it. */
static char *h_take(struct hs *c)
{
	h_collect(c);
	char *s = xstrdup(c->out != NULL ? c->out : "");
	c->len = 0;
	return s;
}

/* Carry out effects until the session wants input (or closes). With hold,
 * the fake's queue is left alone: the session stays waiting. */
static enum session_effect h_settle(struct hs *c, enum session_effect e, bool hold)
{
	for (;;) {
		if (e == SESSION_EFFECT_NONE)
			e = session_continue(c->s);
		h_collect(c);
		if (e != SESSION_EFFECT_WAIT)
			return e;
		if (session_resumed(c->s))
			e = session_continue(c->s);
		else if (session_wants_drain(c->s))
			session_drained(c->s);
		else if (hold || !fake_run(&h_fake))
			return SESSION_EFFECT_WAIT;
	}
}

static enum session_effect h_feed(struct hs *c, const char *in, size_t len, bool hold)
{
	char *g = guard_copy(in, len);
	enum session_effect e = h_settle(c, session_feed(c->s, g, len), hold);
	guard_free(g, len);
	c->last = e;
	return e;
}

/* Feed a dialogue and check the whole answer. */
#define h_expect(c, in, want) h_expect_at(__LINE__, (c), (in), (want))
static void h_expect_at(int line, struct hs *c, const char *in, const char *want)
{
	h_feed(c, in, strlen(in), false);
	char *out = h_take(c);
	ck_assert_msg(strcmp(out, want) == 0, "line %d: input:\n%s\ngot:\n%s\nwant:\n%s", line, in, out, want);
	free(out);
}

/* Feed and return the answer (to look for pieces of it). */
static char *h_ask(struct hs *c, const char *in)
{
	h_feed(c, in, strlen(in), false);
	return h_take(c);
}

#define h_has(out, piece) ck_assert_msg(strstr((out), (piece)) != NULL, "no \"%s\" in:\n%s", (piece), (out))
#define h_lacks(out, piece) ck_assert_msg(strstr((out), (piece)) == NULL, "\"%s\" in:\n%s", (piece), (out))

/* A session logged in as bob. */
static void h_open(struct hs *c)
{
	struct session_params p = {
		.cfg = &h_cfg, .kind = LISTENER_IMAP, .id = 1, .peer = "127.0.0.1", .peer_loopback = true,
		.backend = &h_fake.b,
	};

	memset(c, 0, sizeof(*c));
	c->s = session_new(&imap_proto, &p);
	session_start(c->s);
	free(h_take(c));
	char *out = h_ask(c, "L LOGIN bob secret\r\n");
	h_has(out, "L OK");
	free(out);
}

/* Logged in with mailbox selected (its SELECT answer dropped). */
static void h_open_selected(struct hs *c, const char *mailbox)
{
	char cmd[256];

	h_open(c);
	snprintf(cmd, sizeof(cmd), "S SELECT %s\r\n", mailbox);
	char *out = h_ask(c, cmd);
	h_has(out, "S OK [READ-WRITE]");
	free(out);
}

static void h_close(struct hs *c)
{
	session_free(&c->s);
	free(c->out);
	memset(c, 0, sizeof(*c));
}

/* Messages for the tests: put straight into a box, as if long there. */
static uint32_t h_put(const char *box, const char *data, uint32_t flags)
{
	struct fake_box *b = fake_box_existing(&h_fake, BOB, box);
	ck_assert_ptr_nonnull(b);
	return fake_box_append(&h_fake, b, data, strlen(data), flags, 0, 0);
}

static struct fake_box *h_box(const char *name)
{
	return fake_box_existing(&h_fake, BOB, name);
}

#endif
