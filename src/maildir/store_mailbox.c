/*
 * Mailbox records and reconciliation (contract 4): the Maildir is the
 * truth. Another program may add, remove or rename files (rsync from the
 * old server, mutt on the same Maildir); the index notices through the
 * mtimes of new/ and cur/ and folds the change in without renumbering what
 * it already knows. UIDs survive the loss of the index through
 * dovecot-uidlist, which is also how a Maildir taken over from Dovecot keeps
 * its UIDs (clients do not download everything again).
 *
 * Runs on the writer thread (or at start-up, before it exists).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/layout.h"
#include "maildir/mdname.h"
#include "maildir/store_private.h"
#include "maildir/uidlist.h"

int64_t store__mtime_ns(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		return -1;
	return (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
}

static void store_dir_mtimes(const char *dir, int64_t *new_r, int64_t *cur_r)
{
	char *p = xasprintf("%s/new", dir);
	*new_r = store__mtime_ns(p);
	free(p);
	p = xasprintf("%s/cur", dir);
	*cur_r = store__mtime_ns(p);
	free(p);
}

struct rc_file {
	char *name;
	size_t base_len;
	bool in_new;
	bool matched;
	struct mdname_info info;
};

struct rc_scan {
	struct rc_file *files;
	size_t n, cap;
};

static int rc_file_cmp(const void *a, const void *b)
{
	const struct rc_file *x = a, *y = b;
	size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
	int c = memcmp(x->name, y->name, n);
	return c != 0 ? c : (x->base_len > y->base_len) - (x->base_len < y->base_len);
}

static int rc_scan_dir(struct rc_scan *sc, const char *dir, const char *sub, bool in_new)
{
	char *path = xasprintf("%s/%s", dir, sub);
	DIR *d = opendir(path);
	free(path);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		struct mdname_info info;
		size_t len = strlen(de->d_name);
		if (mdname_parse(de->d_name, len, &info) < 0)
			continue;
		if (sc->n == sc->cap) {
			sc->cap = sc->cap ? sc->cap * 2 : 64;
			sc->files = xrealloc(sc->files, sc->cap * sizeof(*sc->files));
		}
		sc->files[sc->n++] = (struct rc_file){
			.name = xstrdup(de->d_name), .base_len = info.base_len, .in_new = in_new, .info = info,
		};
	}
	closedir(d);
	return 0;
}

static struct rc_file *rc_find(struct rc_scan *sc, const char *name)
{
	struct mdname_info info;
	struct rc_file key;
	size_t len = strlen(name);

	if (mdname_parse(name, len, &info) < 0)
		return NULL;
	key.name = (char *)name;
	key.base_len = info.base_len;
	return sc->n > 0 ? bsearch(&key, sc->files, sc->n, sizeof(*sc->files), rc_file_cmp) : NULL;
}

static void rc_scan_free(struct rc_scan *sc)
{
	for (size_t i = 0; i < sc->n; i++)
		free(sc->files[i].name);
	free(sc->files);
}

/* Size with CRLF line ends, for a file whose name does not say (",W="). */
static uint64_t rc_count_vsize(const char *path, uint64_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[16384], prev = 0;
	uint64_t extra = 0;
	ssize_t n;

	if (fd < 0)
		return size;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' && prev != '\r')
				extra++;
			prev = buf[i];
		}
	close(fd);
	return size + extra;
}

struct rc_known {
	uint32_t uid;
	char *name;
	bool in_new;
	uint32_t flags, keywords;
	uint64_t size;
};

struct rc_known_list {
	struct rc_known *v;
	size_t n, cap;
};

static int rc_collect(const struct idx_message *m, void *ctx)
{
	struct rc_known_list *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (struct rc_known){ m->uid, xstrdup(m->name), m->in_new, m->flags, m->keywords, m->size };
	return 0;
}

static int rc_uid_cmp(const void *a, const void *b)
{
	const struct rc_file *const *x = a, *const *y = b;
	/* Files without a uidlist uid sort by name: the time comes first in
	 * a Maildir name, so that is roughly arrival order. */
	return strcmp((*x)->name, (*y)->name);
}

/* Rewrite dovecot-uidlist from the index, so it never lags behind what
 * reconciliation (or an expunge) decided. Not fsynced: the next checkpoint
 * is. */
int store__uidlist_rewrite(struct store *st, MDB_txn *txn, const char *dir, const struct idx_mailbox *mb,
			   const char *guid, char **error_r)
{
	struct rc_known_list all = { 0 };
	struct uidlist ul;
	char old_guid[33] = "";

	if (guid == NULL) {
		/* Keep the GUID the list has (Dovecot's mailbox GUID). */
		struct uidlist old;
		bool missing = true;
		char *err = NULL;
		char *old_path = xasprintf("%s/" UIDLIST_NAME, dir);
		if (uidlist_read(old_path, &old, &missing, &err) == 0 && !missing) {
			memcpy(old_guid, old.guid, sizeof(old_guid));
			uidlist_free(&old);
		}
		free(err);
		free(old_path);
		guid = old_guid;
	}
	if (idx_message_each(txn, st->db, mb->id, 1, rc_collect, &all, error_r) < 0)
		return -1;
	uidlist_init(&ul, mb->uidvalidity);
	if (guid != NULL && guid[0] != '\0')
		memcpy(ul.guid, guid, sizeof(ul.guid));
	for (size_t i = 0; i < all.n; i++) {
		struct mdname_info info;
		size_t len = strlen(all.v[i].name);
		if (mdname_parse(all.v[i].name, len, &info) == 0) {
			struct uidlist_entry *e = uidlist_add(&ul, all.v[i].uid, all.v[i].name, info.base_len);
			if (e != NULL && info.has_size && info.has_vsize) {
				e->size = info.size;
				e->vsize = info.vsize;
				e->has_size = e->has_vsize = true;
			}
		}
		free(all.v[i].name);
	}
	free(all.v);
	if (ul.next_uid < mb->uidnext)
		ul.next_uid = mb->uidnext;
	char *path = xasprintf("%s/" UIDLIST_NAME, dir);
	int rc = uidlist_write(path, &ul, false, error_r);
	free(path);
	uidlist_free(&ul);
	return rc;
}

int store__reconcile(struct store *st, MDB_txn *txn, const char *account, const char *mailbox,
		     const char *dir, struct idx_mailbox *mb, bool force, char **error_r)
{
	int64_t new_ns, cur_ns;

	store_dir_mtimes(dir, &new_ns, &cur_ns);
	if (!force && new_ns == mb->new_mtime_ns && cur_ns == mb->cur_mtime_ns)
		return 0;

	struct rc_scan sc = { 0 };
	if (rc_scan_dir(&sc, dir, "new", true) < 0 || rc_scan_dir(&sc, dir, "cur", false) < 0) {
		*error_r = xasprintf("%s: %s", dir, strerror(errno));
		rc_scan_free(&sc);
		return -1;
	}
	if (sc.n > 0)
		qsort(sc.files, sc.n, sizeof(*sc.files), rc_file_cmp);

	struct rc_known_list known = { 0 };
	int ret = -1;
	bool changed = false;
	int64_t delta_bytes = 0, delta_msgs = 0;

	if (idx_message_each(txn, st->db, mb->id, 1, rc_collect, &known, error_r) < 0)
		goto out;

	/* Known messages: gone, renamed (flags), or as they were. */
	for (size_t i = 0; i < known.n; i++) {
		struct rc_known *k = &known.v[i];
		struct rc_file *f = rc_find(&sc, k->name);
		if (f == NULL || f->matched) {
			if (idx_message_del(txn, st->db, mb->id, k->uid, error_r) < 0)
				goto out;
			mb->count--;
			if (!(k->flags & IDX_SEEN))
				mb->unseen--;
			mb->bytes -= k->size;
			delta_bytes -= (int64_t)k->size;
			delta_msgs--;
			mb->modseq++;
			changed = true;
			continue;
		}
		f->matched = true;
		if (strcmp(f->name, k->name) == 0 && f->in_new == k->in_new)
			continue;
		struct idx_message m;
		if (idx_message_get(txn, st->db, mb->id, k->uid, &m, error_r) != 0)
			goto out;
		unsigned flags = f->info.flags;
		if ((m.flags & IDX_SEEN) && !(flags & IDX_SEEN))
			mb->unseen++;
		else if (!(m.flags & IDX_SEEN) && (flags & IDX_SEEN))
			mb->unseen--;
		free(m.name);
		m.name = f->name;
		m.in_new = f->in_new;
		m.flags = flags;
		m.keywords = f->info.keywords;
		m.modseq = ++mb->modseq;
		int rc = idx_message_put(txn, st->db, mb->id, &m, error_r);
		if (rc < 0)
			goto out;
	}

	/* New files: UIDs from dovecot-uidlist when it has them (above what
	 * the index already handed out), else fresh ones. */
	struct uidlist ul;
	bool missing = true;
	char *ul_path = xasprintf("%s/" UIDLIST_NAME, dir);
	if (uidlist_read(ul_path, &ul, &missing, error_r) < 0) {
		log_warn("store: %s; assigning new UIDs", *error_r);
		free(*error_r);
		*error_r = NULL;
		missing = true;
	}
	free(ul_path);
	struct rc_file **fresh = xcalloc(sc.n ? sc.n : 1, sizeof(*fresh));
	size_t n_fresh = 0;
	struct { struct rc_file *f; uint32_t uid; } *listed = xcalloc(sc.n ? sc.n : 1, sizeof(*listed));
	size_t n_listed = 0;
	for (size_t i = 0; i < sc.n; i++) {
		struct rc_file *f = &sc.files[i];
		if (f->matched)
			continue;
		const struct uidlist_entry *e = NULL;
		if (!missing && ul.uidvalidity == mb->uidvalidity)
			e = uidlist_find_base(&ul, f->name, f->base_len);
		if (e != NULL && e->uid >= mb->uidnext) {
			listed[n_listed].f = f;
			listed[n_listed].uid = e->uid;
			n_listed++;
		} else {
			fresh[n_fresh++] = f;
		}
	}
	/* Listed ones in UID order first, then fresh ones after the highest
	 * UID the uidlist ever gave out: UIDs only ever go up. */
	for (size_t i = 1; i < n_listed; i++)
		for (size_t j = i; j > 0 && listed[j - 1].uid > listed[j].uid; j--) {
			__typeof__(listed[0]) t = listed[j];
			listed[j] = listed[j - 1];
			listed[j - 1] = t;
		}
	if (n_fresh > 0)
		qsort(fresh, n_fresh, sizeof(*fresh), rc_uid_cmp);
	char guid[33] = "";
	if (!missing)
		memcpy(guid, ul.guid, sizeof(guid));

	for (size_t pass = 0; pass < 2; pass++) {
		/* Never hand out a UID Dovecot (or we) gave out before. */
		if (pass == 1 && !missing && ul.uidvalidity == mb->uidvalidity && ul.next_uid > mb->uidnext)
			mb->uidnext = ul.next_uid;
		size_t n = pass == 0 ? n_listed : n_fresh;
		for (size_t i = 0; i < n; i++) {
			struct rc_file *f = pass == 0 ? listed[i].f : fresh[i];
			uint32_t uid = pass == 0 ? listed[i].uid : mb->uidnext;
			char *path = xasprintf("%s/%s/%s", dir, f->in_new ? "new" : "cur", f->name);
			struct stat sb;
			if (stat(path, &sb) < 0) {
				free(path);
				continue; /* gone since the scan */
			}
			uint64_t size = f->info.has_size ? f->info.size : (uint64_t)sb.st_size;
			uint64_t vsize = f->info.has_vsize ? f->info.vsize : rc_count_vsize(path, size);
			free(path);
			struct idx_message m = {
				.uid = uid,
				.flags = f->info.flags,
				.keywords = f->info.keywords,
				.in_new = f->in_new,
				.modseq = ++mb->modseq,
				.size = size,
				.vsize = vsize,
				.internal_date = (int64_t)sb.st_mtim.tv_sec,
				.name = f->name,
			};
			if (idx_message_put(txn, st->db, mb->id, &m, error_r) < 0) {
				free(fresh);
				free(listed);
				if (!missing)
					uidlist_free(&ul);
				goto out;
			}
			if (uid >= mb->uidnext)
				mb->uidnext = uid + 1;
			mb->count++;
			if (!(m.flags & IDX_SEEN))
				mb->unseen++;
			mb->bytes += size;
			delta_bytes += (int64_t)size;
			delta_msgs++;
			changed = true;
		}
	}
	free(fresh);
	free(listed);
	if (!missing)
		uidlist_free(&ul);

	mb->new_mtime_ns = new_ns;
	mb->cur_mtime_ns = cur_ns;
	if (idx_mailbox_put(txn, st->db, account, mailbox, mb, error_r) < 0 ||
	    (delta_msgs != 0 && idx_usage_add(txn, st->db, account, delta_bytes, delta_msgs, error_r) < 0))
		goto out;
	if (changed || missing) {
		char *err = NULL;
		if (store__uidlist_rewrite(st, txn, dir, mb, guid, &err) < 0) {
			log_warn("store: %s", err);
			free(err);
		}
		/* Writing the uidlist changed no directory we watch; new/ and
		 * cur/ mtimes stay as recorded. */
	}
	ret = 0;
out:
	for (size_t i = 0; i < known.n; i++)
		free(known.v[i].name);
	free(known.v);
	rc_scan_free(&sc);
	return ret;
}

const struct store_default_folder store_default_folders[] = {
	{ "Sent", IDX_MBOX_SENT },
	{ "Drafts", IDX_MBOX_DRAFTS },
	{ "Trash", IDX_MBOX_TRASH },
	{ "Junk", IDX_MBOX_JUNK },
	{ "Archive", IDX_MBOX_ARCHIVE },
	{ NULL, 0 },
};

/* A new account gets the folders mail clients look for, marked with their
 * RFC 6154 special-use attributes and subscribed. A folder already on disk
 * (an adopted Maildir) is left as it is: it is indexed when first opened.
 * Called once the INBOX record exists, so the recursion into
 * store__mailbox_ensure() cannot come back here. Failures only log: the
 * account works without these folders. */
static void store_make_default_folders(struct store *st, MDB_txn *txn, const char *account,
				       const char *maildir)
{
	const struct store_default_folder *folders = store_default_folders;

	for (size_t i = 0; folders[i].name != NULL; i++) {
		char *fdir = layout_mailbox_dir(maildir, folders[i].name), *dir = NULL, *error = NULL;
		struct stat sb;
		struct idx_mailbox mb;
		bool exists = stat(fdir, &sb) == 0;
		free(fdir);
		if (exists)
			continue;
		if (store__mailbox_ensure(st, txn, account, maildir, folders[i].name, true, &dir, &mb, &error) !=
		    STORE_OK) {
			log_warn("store: %s: default folder %s: %s", account, folders[i].name,
				 error ? error : "cannot create");
			free(error);
			continue;
		}
		free(dir);
		mb.attrs |= folders[i].attr | IDX_MBOX_SUBSCRIBED;
		if (idx_mailbox_put(txn, st->db, account, folders[i].name, &mb, &error) < 0 ||
		    store__subscribe(maildir, folders[i].name, true, &error) < 0) {
			log_warn("store: %s: default folder %s: %s", account, folders[i].name, error);
			free(error);
		}
	}
}

enum store_result store__mailbox_ensure(struct store *st, MDB_txn *txn, const char *account,
					const char *maildir, const char *mailbox, bool create, char **dir_r,
					struct idx_mailbox *mb_r, char **error_r)
{
	bool inbox = strcasecmp(mailbox, "INBOX") == 0;
	char *dir = layout_mailbox_dir(maildir, mailbox);

	*dir_r = NULL;
	if (dir == NULL)
		return STORE_NO_MAILBOX;
	int rc = idx_mailbox_get(txn, st->db, account, inbox ? "INBOX" : mailbox, mb_r, error_r);
	if (rc < 0) {
		free(dir);
		return STORE_TEMPFAIL;
	}
	if (rc == 1) {
		struct stat sb;
		bool exists = stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
		if (!inbox && !create && !exists) {
			free(dir);
			return STORE_NO_MAILBOX;
		}
		if (layout_ensure(dir, !inbox, error_r) < 0) {
			free(dir);
			return STORE_TEMPFAIL;
		}
		/* An adopted Maildir keeps the UIDVALIDITY of its uidlist. */
		struct uidlist ul;
		bool missing = true;
		char *ul_path = xasprintf("%s/" UIDLIST_NAME, dir);
		uint32_t uidvalidity = 0;
		char *err = NULL;
		if (uidlist_read(ul_path, &ul, &missing, &err) == 0 && !missing) {
			uidvalidity = ul.uidvalidity;
			uidlist_free(&ul);
		} else if (err != NULL) {
			log_warn("store: %s; starting a new UIDVALIDITY", err);
			free(err);
		}
		free(ul_path);
		if (uidvalidity == 0)
			uidvalidity = uidlist_new_uidvalidity();
		if (idx_mailbox_new(txn, st->db, uidvalidity, mb_r, error_r) < 0) {
			free(dir);
			return STORE_TEMPFAIL;
		}
		mb_r->new_mtime_ns = mb_r->cur_mtime_ns = -2; /* force the first scan */
	}
	if (store__reconcile(st, txn, account, inbox ? "INBOX" : mailbox, dir, mb_r, false, error_r) < 0) {
		free(dir);
		return STORE_TEMPFAIL;
	}
	if (rc == 1 && inbox)
		store_make_default_folders(st, txn, account, maildir);
	*dir_r = dir;
	return STORE_OK;
}

void store__uidlist_note(struct store *st, const char *dir, const struct idx_mailbox *mb, uint32_t uid,
			 const char *name, uint64_t size, uint64_t vsize)
{
	if (st->n_notes == st->cap_notes) {
		st->cap_notes = st->cap_notes ? st->cap_notes * 2 : 32;
		st->notes = xrealloc(st->notes, st->cap_notes * sizeof(*st->notes));
	}
	st->notes[st->n_notes++] = (struct store_uidnote){
		.dir = xstrdup(dir), .uidvalidity = mb->uidvalidity, .next_uid = uid + 1, .uid = uid,
		.name = xstrdup(name), .size = size, .vsize = vsize,
	};
}

/* Append the new messages' lines, one append per mailbox directory. */
void store__uidlist_flush(struct store *st)
{
	size_t i = 0;
	while (i < st->n_notes) {
		size_t j = i;
		while (j < st->n_notes && strcmp(st->notes[j].dir, st->notes[i].dir) == 0)
			j++;
		struct uidlist_entry *es = xcalloc(j - i, sizeof(*es));
		for (size_t k = i; k < j; k++) {
			es[k - i].uid = st->notes[k].uid;
			es[k - i].base = st->notes[k].name; /* a new file's name is its base */
			es[k - i].size = st->notes[k].size;
			es[k - i].vsize = st->notes[k].vsize;
			es[k - i].has_size = es[k - i].has_vsize = true;
		}
		struct uidlist hdr;
		uidlist_init(&hdr, st->notes[i].uidvalidity);
		hdr.next_uid = st->notes[j - 1].next_uid;
		char *path = xasprintf("%s/" UIDLIST_NAME, st->notes[i].dir);
		char *error = NULL;
		if (uidlist_append(path, es, j - i, &hdr, false, &error) < 0) {
			/* The index has the UIDs; the list is the spare copy
			 * and is rewritten at the next reconciliation. */
			log_warn("store: %s", error);
			free(error);
		}
		free(path);
		uidlist_free(&hdr);
		free(es);
		i = j;
	}
	for (size_t k = 0; k < st->n_notes; k++) {
		free(st->notes[k].dir);
		free(st->notes[k].name);
	}
	st->n_notes = 0;
}
