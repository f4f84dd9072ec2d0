#include "maildir/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"

bool layout_name_valid(const char *mailbox)
{
	if (strcasecmp(mailbox, "INBOX") == 0)
		return true;
	const char *p = mailbox;
	if (*p == '\0' || strlen(p) > 512)
		return false;
	for (;;) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || p[0] == '.')
			return false;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c == '.' || c < 0x20 || c == 0x7f)
				return false;
		}
		if (end == NULL)
			return true;
		p = end + 1;
	}
}

char *layout_mailbox_dir(const char *root, const char *mailbox)
{
	if (!layout_name_valid(mailbox))
		return NULL;
	if (strcasecmp(mailbox, "INBOX") == 0)
		return xstrdup(root);
	char *dir = xasprintf("%s/.%s", root, mailbox);
	for (char *p = dir + strlen(root) + 2; *p; p++)
		if (*p == '/')
			*p = '.';
	return dir;
}

int layout_mkdirs(const char *path)
{
	char *p = xstrdup(path);

	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	int rc = mkdir(p, 0700) < 0 && errno != EEXIST ? -1 : 0;
	free(p);
	return rc;
}

int layout_ensure(const char *dir, bool folder, char **error_r)
{
	static const char *const subs[] = { "cur", "new", "tmp" };

	if (layout_mkdirs(dir) < 0)
		goto fail;
	for (size_t i = 0; i < 3; i++) {
		char *sub = xasprintf("%s/%s", dir, subs[i]);
		int rc = mkdir(sub, 0700) < 0 && errno != EEXIST ? -1 : 0;
		free(sub);
		if (rc < 0)
			goto fail;
	}
	if (folder) {
		char *mf = xasprintf("%s/maildirfolder", dir);
		int fd = open(mf, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		free(mf);
		if (fd < 0)
			goto fail;
		close(fd);
	}
	return 0;
fail:
	*error_r = xasprintf("%s: %s", dir, strerror(errno));
	return -1;
}
