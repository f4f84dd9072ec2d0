#include "core/db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/xalloc.h"

const char *db_strerror(int rc)
{
	return mdb_strerror(rc);
}

static int db_open_dbi(MDB_txn *txn, const char *name, MDB_dbi *dbi_r)
{
	return mdb_dbi_open(txn, name, MDB_CREATE, dbi_r);
}

int db_open(const char *data_dir, size_t map_size, struct db **db_r, char **error_r)
{
	struct db *db = xcalloc(1, sizeof(*db));
	char *path = xasprintf("%s/postbote.mdb", data_dir);
	MDB_txn *txn = NULL;
	int rc;

	if (mkdir(path, 0750) < 0 && errno != EEXIST) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&db->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(db->env, 8)) != 0 ||
	    (rc = mdb_env_set_mapsize(db->env, map_size)) != 0 ||
	    /* NOTLS: read transactions are not tied to the thread that began
	     * them, so thread-pool jobs and the loop can each hold one. */
	    (rc = mdb_env_open(db->env, path, MDB_NOTLS, 0640)) != 0) {
		*error_r = xasprintf("%s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0 ||
	    (rc = db_open_dbi(txn, "users", &db->users)) != 0 ||
	    (rc = db_open_dbi(txn, "aliases", &db->aliases)) != 0 ||
	    (rc = db_open_dbi(txn, "mailboxes", &db->mailboxes)) != 0 ||
	    (rc = db_open_dbi(txn, "messages", &db->messages)) != 0 ||
	    (rc = db_open_dbi(txn, "meta", &db->meta)) != 0 ||
	    (rc = db_open_dbi(txn, "queue", &db->queue)) != 0 ||
	    (rc = db_open_dbi(txn, "mimecache", &db->mimecache)) != 0) {
		if (txn != NULL)
			mdb_txn_abort(txn);
		*error_r = xasprintf("%s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		*error_r = xasprintf("%s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	free(path);
	*db_r = db;
	return 0;
fail:
	if (db->env != NULL)
		mdb_env_close(db->env);
	free(db);
	free(path);
	return -1;
}

void db_close(struct db **dbp)
{
	struct db *db = *dbp;

	if (db == NULL)
		return;
	*dbp = NULL;
	mdb_env_close(db->env);
	free(db);
}
