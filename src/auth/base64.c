/*
 * RFC 4648 base64, strict. Table-driven in both directions; bounds are
 * checked before any byte is written, and the input is never read past len
 * (the unit tests end it at a guard page).
 */
#include "auth/base64.h"

#include <stdint.h>

static const char base64_alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet characters, 64 for '=', 255 for anything else. */
static const uint8_t base64_values[256] = {
	['A'] = 0, ['B'] = 1, ['C'] = 2, ['D'] = 3, ['E'] = 4, ['F'] = 5,
	['G'] = 6, ['H'] = 7, ['I'] = 8, ['J'] = 9, ['K'] = 10, ['L'] = 11,
	['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15, ['Q'] = 16, ['R'] = 17,
	['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
	['Y'] = 24, ['Z'] = 25,
	['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31,
	['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35, ['k'] = 36, ['l'] = 37,
	['m'] = 38, ['n'] = 39, ['o'] = 40, ['p'] = 41, ['q'] = 42, ['r'] = 43,
	['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47, ['w'] = 48, ['x'] = 49,
	['y'] = 50, ['z'] = 51,
	['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55, ['4'] = 56, ['5'] = 57,
	['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['+'] = 62, ['/'] = 63,
	['='] = 64,
};

/* base64_values[] is zero-initialised, so 'A' and unknown bytes would look
 * the same; this says which bytes are really in the alphabet or '='. */
static int base64_valid(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '=';
}

size_t base64_encoded_len(size_t len)
{
	return (len + 2) / 3 * 4;
}

size_t base64_decoded_max(size_t len)
{
	return len / 4 * 3;
}

size_t base64_encode(const void *data, size_t len, char *out)
{
	const uint8_t *p = data;
	size_t o = 0;
	size_t i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = base64_alphabet[(v >> 6) & 63];
		out[o++] = base64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = base64_alphabet[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

int base64_decode(const char *in, size_t len, void *out, size_t out_max, size_t *out_len_r)
{
	const uint8_t *s = (const uint8_t *)in;
	uint8_t *d = out;
	size_t o = 0;

	/* RFC 4648 3.2: padded input is a whole number of quanta. */
	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		uint8_t v[4];
		size_t pad = 0;
		for (size_t k = 0; k < 4; k++) {
			if (!base64_valid(s[i + k]))
				return -1;
			v[k] = base64_values[s[i + k]];
			if (v[k] == 64) {
				pad++;
			} else if (pad > 0) {
				return -1; /* data after '=' */
			}
		}
		/* '=' only in the last quantum, and only in its last two places. */
		if (pad > 0 && (i + 4 != len || pad > 2))
			return -1;
		size_t n = 3 - pad;
		if (o + n > out_max)
			return -1;
		uint32_t w = (uint32_t)(v[0] & 63) << 18 | (uint32_t)(v[1] & 63) << 12 |
			     (uint32_t)(pad >= 2 ? 0 : v[2] & 63) << 6 | (pad >= 1 ? 0 : v[3] & 63);
		/* RFC 4648 3.5: the bits dropped by padding must be zero. */
		if ((pad == 1 && (v[2] & 3) != 0) || (pad == 2 && (v[1] & 15) != 0))
			return -1;
		d[o++] = (uint8_t)(w >> 16);
		if (n > 1)
			d[o++] = (uint8_t)(w >> 8);
		if (n > 2)
			d[o++] = (uint8_t)w;
	}
	*out_len_r = o;
	return 0;
}
