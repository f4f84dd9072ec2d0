#include "testutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t guard_span(size_t len, size_t *page_r)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	*page_r = page;
	return ((len + page - 1) / page + 1) * page;
}

char *guard_copy(const void *data, size_t len)
{
	size_t page;
	size_t span = guard_span(len, &page);
	char *base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(base, MAP_FAILED);
	ck_assert_int_eq(mprotect(base + span - page, page, PROT_NONE), 0);
	char *p = base + span - page - len;
	memcpy(p, data, len);
	return p;
}

void guard_free(char *p, size_t len)
{
	size_t page;
	size_t span = guard_span(len, &page);
	char *base = p + len + page - span;
	munmap(base, span);
}

int testutil_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
