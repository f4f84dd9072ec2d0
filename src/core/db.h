#ifndef POSTBOTE_CORE_DB_H
#define POSTBOTE_CORE_DB_H

/*
 * The LMDB environment in DATA/postbote.mdb/ that accounts and the mailbox
 * index share. LMDB allows many readers and one writer across processes, so
 * the admin CLI works while the server runs.
 *
 * Each subsystem owns its named databases and their record formats (see
 * auth/userdb.h and maildir/index.h); this file only opens them. Write
 * transactions in the server run off the loop (contract 2); read
 * transactions are cheap and may run on the loop.
 */

#include <stddef.h>
#include <lmdb.h>

struct db {
	MDB_env *env;
	MDB_dbi users;      /* "local@domain" -> user record        (auth/userdb.c) */
	MDB_dbi aliases;    /* "local@domain" -> alias targets      (auth/userdb.c) */
	MDB_dbi mailboxes;  /* account NUL mailbox name -> record   (maildir/index.c) */
	MDB_dbi messages;   /* mailbox id, uid -> message record    (maildir/index.c) */
	MDB_dbi meta;       /* named counters and settings          (both) */
	MDB_dbi queue;      /* queue id -> outbound message state   (mta/queue_record.c) */
	MDB_dbi mimecache;  /* mailbox id, uid -> serialized MIME tree (maildir/index.c) */
};

/* Open (creating when needed) DATA/postbote.mdb with the given map size.
 * Returns 0, or -1 with *error_r (caller frees). */
int db_open(const char *data_dir, size_t map_size, struct db **db_r, char **error_r);
void db_close(struct db **db);

/* A human-readable reason for an LMDB status, for error messages. */
const char *db_strerror(int rc);

#endif
