#ifndef POSTBOTE_AUTH_BASE64_H
#define POSTBOTE_AUTH_BASE64_H

/*
 * Base64 (RFC 4648 section 4, the standard alphabet with '=' padding) for
 * SASL exchanges. Both directions write into a buffer the caller sizes with
 * base64_encoded_len() and base64_decoded_max(); nothing is allocated, so secrets never leave a
 * copy in freed memory.
 *
 * Decoding is strict, as RFC 4648 3.3 and 3.5 allow: the input length is a
 * multiple of four, only alphabet characters appear before the padding, at
 * most two '=' and only at the end, and the bits the padding discards are
 * zero (one canonical encoding per byte string). No whitespace or line
 * breaks. The empty string decodes to zero bytes.
 */

#include <stddef.h>

/* Characters base64_encode() writes for len input bytes (without the NUL). */
size_t base64_encoded_len(size_t len);

/* The most bytes that len characters of base64 can decode to. */
size_t base64_decoded_max(size_t len);

/* Encode len bytes of data into out, which must hold
 * base64_encoded_len(len) + 1 bytes; out is NUL-terminated. Returns the
 * number of characters written (without the NUL). */
size_t base64_encode(const void *data, size_t len, char *out);

/* Decode len characters of in (no NUL needed; in is read only within
 * [in, in + len)) into out, which holds out_max bytes. Returns 0 and the
 * decoded length in *out_len_r, or -1 when the input is not strict base64
 * or would decode to more than out_max bytes. On -1 the contents of out are
 * unspecified (the caller wipes it if it may hold a secret). */
int base64_decode(const char *in, size_t len, void *out, size_t out_max, size_t *out_len_r);

#endif
