#ifndef POSTBOTE_MIME_SERIAL_H
#define POSTBOTE_MIME_SERIAL_H

/*
 * A compact binary form of a parsed tree, so the IMAP server can keep
 * ENVELOPE / BODYSTRUCTURE / section offsets in the LMDB index and answer
 * FETCH without reparsing the message file.
 *
 * Layout (all integers are LEB128 varints unless noted):
 *   "PBMT" u8:version u8:tree-flags  nparts
 *   parts in pre-order, each: flags nchildren offset
 *     header{physical virtual lines} body{physical virtual lines}
 *     presence bits, then the present strings (varint length + bytes),
 *     parameter lists, languages, and the envelope if there is one
 *   u32 little-endian FNV-1a of everything before it
 * Strings never contain NUL. The version is bumped whenever the layout or
 * the meaning of a field changes; a reader refuses other versions, and the
 * caller then reparses the message and stores the new form.
 */

#include <stddef.h>

#include "core/buf.h"
#include "mime/mime_tree.h"

#define MIME_SERIAL_VERSION 1

/* Append the serialized form of t to out. Returns 0, or -1 when it does
 * not fit below out's maximum (out is then unchanged). */
int mime_tree_serialize(const struct mime_tree *t, struct buf *out);

/* Rebuild a tree from len bytes. Anything that is not exactly a form this
 * version writes (bad magic, other version, wrong checksum, a length past
 * the end, a count the bytes cannot hold, limits exceeded, parts whose
 * offsets overlap or leave their parent, a message/rfc822 part without
 * exactly one child, trailing bytes) gives NULL and a static *error_r.
 * Never reads outside data[0..len). Free the tree with mime_tree_free(). */
struct mime_tree *mime_tree_deserialize(const void *data, size_t len, const char **error_r);

#endif
