#ifndef POSTBOTE_CORE_STRNUM_H
#define POSTBOTE_CORE_STRNUM_H

/*
 * Numbers in text that is not NUL-terminated: the fields of Maildir file
 * names ("S=1234") and of dovecot-uidlist lines. No locale, no sign, no
 * white space, no base prefix: strtoull() accepts all of those.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The len octets at p as a decimal number into *v_r. True only when len > 0,
 * every octet is a digit '0'..'9' and the value fits in 64 bits; on false
 * *v_r is left alone. Never reads past len. Leading zeros are accepted. */
bool strnum_u64(const char *p, size_t len, uint64_t *v_r);

#endif
