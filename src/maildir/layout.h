#ifndef POSTBOTE_MAILDIR_LAYOUT_H
#define POSTBOTE_MAILDIR_LAYOUT_H

/*
 * Where things are in a Maildir++ tree. INBOX is the root itself; a folder
 * "A/B" (the store's names use '/' between levels) lives in ROOT/.A.B/ with
 * its own cur/ new/ tmp/ and an empty "maildirfolder" file, as Courier,
 * Dovecot and mutt expect. Because '.' separates levels on disk, a level
 * name may not contain '.', nor '/', nor start with '.' or be empty.
 */

#include <stdbool.h>

/* True if mailbox is a valid store name ("INBOX" in any case, or levels
 * separated by '/'). */
bool layout_name_valid(const char *mailbox);

/* The directory of mailbox under root, or NULL if the name is invalid.
 * Caller frees. */
char *layout_mailbox_dir(const char *root, const char *mailbox);

/* Create dir (and its parents) with cur/ new/ tmp/, and maildirfolder when
 * folder. Returns 0, or -1 with *error_r. */
int layout_ensure(const char *dir, bool folder, char **error_r);

/* mkdir -p with mode 0700 for the directories it creates. */
int layout_mkdirs(const char *path);

#endif
