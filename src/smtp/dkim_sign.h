#ifndef POSTBOTE_SMTP_DKIM_SIGN_H
#define POSTBOTE_SMTP_DKIM_SIGN_H

/*
 * DKIM signing (RFC 6376 5, RFC 8463): a message in, DKIM-Signature header
 * fields out, one per key.
 *
 * The signer is fed the message as it is - header section, empty line,
 * body - in chunks split anywhere, with CRLF or LF line ends. It keeps only
 * the header fields it will sign (bounded below) and a running SHA-256 of
 * the canonical body, so a message of any size streams through. When the
 * message has ended, dkim_signer_finish() signs it with each key and
 * returns the header fields for the caller to put in front of the message.
 *
 * What is signed, by default: c=relaxed/relaxed; t= the time given; no l=
 * (the whole body) and no x=; h= every field of dkim_sign_default_headers
 * present in the message, each name listed as often as the field occurs
 * (RFC 6376 5.4.2), plus "from" once more than it occurs, so that a From
 * field added later breaks the signature (oversigning, RFC 6376 8.15).
 * "list-*" stands for every List- field present (RFC 2369, 2919, 8058).
 *
 * Ed25519 (RFC 8463 3): the SHA-256 hash of the canonical header data -
 * the same 32 octets RSA signs - is the message PureEdDSA (Ed25519) signs;
 * the header data is not handed to Ed25519 itself. python3-dkim (dkimpy)
 * does the same.
 *
 * The whole message must reach the recipient unchanged below the signed
 * header fields: an SMTP client must not re-encode the body (8BITMIME
 * downgrade) after signing. Fields may be added above (Received: ...).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "smtp/dkim_canon.h"
#include "smtp/dkim_keys.h"

/* Limits: a message whose header fields to be signed pass them cannot be
 * signed (finish fails); fields that are not signed do not count. */
#define DKIM_SIGN_FIELD_MAX   (64 * 1024)   /* one field, folding included */
#define DKIM_SIGN_KEPT_MAX    (256 * 1024)  /* all kept fields together */
#define DKIM_SIGN_FIELDS_MAX  256           /* number of kept fields */
/* Keys per message. */
#define DKIM_SIGN_KEYS_MAX    8

/* The default h= names, NULL-terminated, in the order they are listed. */
extern const char *const dkim_sign_default_headers[];

struct dkim_sign_options {
	enum dkim_canon_alg header_canon;   /* default relaxed */
	enum dkim_canon_alg body_canon;     /* default relaxed */
	/* Field names to sign, lower case, NULL-terminated; a name ending in
	 * '*' matches every field name with that prefix made of letters,
	 * digits and '-'. NULL = dkim_sign_default_headers. The array must
	 * outlive the signer. */
	const char *const *headers;
	/* Names listed once more than they occur, NULL-terminated; NULL =
	 * { "from" }. "from" is always signed (RFC 6376 5.4). */
	const char *const *oversign;
};

void dkim_sign_options_default(struct dkim_sign_options *opt);

struct dkim_signer;

/* A new signer; opt NULL = the defaults. Never fails (small fixed
 * allocations abort). */
struct dkim_signer *dkim_signer_new(const struct dkim_sign_options *opt);
void dkim_signer_free(struct dkim_signer **s);

/* Feed the next len octets of the message. After an error (a limit
 * passed) further input is ignored and finish reports the error. */
void dkim_signer_feed(struct dkim_signer *s, const void *data, size_t len);

/* The message has ended (a header section without an empty line after it
 * ends here too). Further feeds are ignored. dkim_signer_finish() does
 * this itself; call it first to ask dkim_signer_from_domain() about a
 * message that may have no body. */
void dkim_signer_end(struct dkim_signer *s);

/* True once the empty line that ends the header section has been fed (or
 * the message has ended): from then on dkim_signer_from_domain() is
 * final. */
bool dkim_signer_headers_done(const struct dkim_signer *s);

/* The domain of the author's address (RFC 5322 From), lower case, for
 * choosing d= (DMARC wants them aligned). NULL when there is no From
 * field, more than one, more than one address in it, or no '@'. Caller
 * frees. */
char *dkim_signer_from_domain(const struct dkim_signer *s);

/* The message has ended: sign it with each of keys (1 to
 * DKIM_SIGN_KEYS_MAX) for d=domain at time t. Returns 0 and in *fields_r
 * the DKIM-Signature header fields (one per key, in the order of keys),
 * folded to lines of at most 78 octets, each line ended with eol ("\n" for
 * our LF store, "\r\n" for the wire), for the caller to put in front of
 * the message unchanged; caller frees. Returns -1 with *error_r (caller
 * frees) when a limit was passed or OpenSSL fails. Call once. */
int dkim_signer_finish(struct dkim_signer *s, const char *domain, const struct dkim_key *keys,
		       size_t n_keys, time_t t, const char *eol, char **fields_r, char **error_r);

/* Sign a SHA-256 hash of canonical header data with key (RFC 6376 3.3.1
 * RSASSA-PKCS1-v1_5; RFC 8463 3 Ed25519 over the 32 octets of the hash).
 * sig holds *sig_len octets (DKIM_RSA_BITS_MAX / 8 is always enough);
 * returns 0 with the signature's length in *sig_len, or -1 with *error_r
 * (caller frees). Thread-safe for a shared key. */
int dkim_sign_hash(const struct dkim_key *key, const unsigned char hash[32], unsigned char *sig,
		   size_t *sig_len, char **error_r);

/* The canonical body's length and base64 SHA-256 (bh=) after finish, for
 * tests and logs. */
uint64_t dkim_signer_body_length(const struct dkim_signer *s);
const char *dkim_signer_body_hash(const struct dkim_signer *s);

/* Sign the message in the file at path, which starts offset octets into
 * it (after our Return-Path line in a spool file), blocking: for a worker
 * thread or the CLI. d=domain, or when domain is NULL the domain of the
 * From address (what DMARC aligns with). Keys come from ring. Returns 0
 * with *fields_r as dkim_signer_finish() makes them, or 0 with *fields_r =
 * NULL when there is nothing to sign with (no single From address, or no
 * keys for the domain) - then only the header section is read; -1 with
 * *error_r (caller frees) when the file cannot be read or signing fails
 * (a limit passed): the caller may send the message unsigned. */
int dkim_sign_file(const char *path, uint64_t offset, const struct dkim_keyring *ring, const char *domain,
		   time_t t, const char *eol, char **fields_r, char **error_r);

#endif
