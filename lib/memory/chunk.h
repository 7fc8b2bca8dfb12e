/* The chunker: splits a text into overlapping, token-sized chunks that
 * respect headings, paragraphs, lines, sentences and words, in that order
 * of preference, and records where each chunk lies in the source.
 *
 * It works as a stream: the text is fed in blocks of any size (a file is
 * read in blocks), and the memory it holds is bounded by the chunk window
 * plus one block, whatever the size of the text. It also checks the text:
 * valid UTF-8, no NUL byte, not mostly control characters.
 *
 * Sizes are in tokens, estimated as ac_estimate_tokens() does (4 bytes of
 * UTF-8 per token): a chunk holds at most chunk_tokens * 4 bytes.
 *
 *   Heading (Markdown only): an ATX heading line ("#".."######" then a
 *       space, up to 3 spaces of indent, not inside a ``` or ~~~ fence)
 *       always starts a new chunk once the current chunk has content, and
 *       there is no overlap across it. The chunk's heading path is the
 *       heading stack in effect at its first content ("Guide > Install").
 *   Otherwise a chunk ends at the last paragraph start (a line after a
 *       blank line, or a fence line) in the second half of the window,
 *       else the last line start there, else the last sentence start there
 *       (after . ! ? and optional closing quotes/brackets, then white
 *       space; or after a CJK full stop), else the last word start in the
 *       window, else a UTF-8 character boundary.
 *   The next chunk starts about chunk_overlap tokens before the end, at
 *       the first line start or sentence start in the first half of the
 *       overlap, else the first word start; the overlap never exceeds half
 *       of the chunk it overlaps.
 *   Chunk text is the source slice with surrounding white space trimmed;
 *       chunks of white space only, or that add nothing past the previous
 *       chunk, are not emitted. */
#ifndef AC_MEMORY_CHUNK_H
#define AC_MEMORY_CHUNK_H

#include "../core/internal.h"

typedef struct ac_chunk {
    const char *text;      /* the chunk (borrowed until the callback returns) */
    size_t len;            /* its length in bytes */
    long long byte_start;  /* [byte_start, byte_end): bytes of the source */
    long long byte_end;
    long long char_start;  /* the same range in Unicode code points */
    long long char_end;
    const char *heading;   /* heading path, "" when none (borrowed) */
    long long seq;         /* 0, 1, 2 ... */
} ac_chunk;

/* Called for each chunk; a non-zero return stops the chunker and is
 * returned by ac_chunker_feed/finish (the callback sets the message). */
typedef int (*ac_chunk_fn)(void *userdata, const ac_chunk *chunk);

typedef struct ac_chunk_opts {
    long chunk_tokens;    /* > 0 */
    long overlap_tokens;  /* 0 .. chunk_tokens / 2 */
    int markdown;         /* 1: headings and fences are recognised */
    const char *what;     /* names the input in messages ("doc.text") */
} ac_chunk_opts;

typedef struct ac_chunker ac_chunker;

int ac_chunker_new(const ac_chunk_opts *opts, ac_chunk_fn fn, void *userdata, ac_chunker **out);
/* Feed the next block. AC_EINVAL "WHAT: invalid UTF-8 at byte N",
 * "WHAT: binary content: NUL byte at byte N", ...; or the callback's code. */
int ac_chunker_feed(ac_chunker *ck, const char *data, size_t n);
/* End of input: emits the last chunks. AC_EINVAL "WHAT: empty" when the
 * text had no content at all. */
int ac_chunker_finish(ac_chunker *ck);
void ac_chunker_free(ac_chunker *ck);

/* Offset of the first byte of the first invalid UTF-8 sequence in [s, s+n),
 * or -1 when it is all valid. */
long long ac_utf8_first_invalid(const char *s, size_t n);

/* After finish: totals of the source. */
long long ac_chunker_bytes(const ac_chunker *ck);
long long ac_chunker_chars(const ac_chunker *ck);
long long ac_chunker_count(const ac_chunker *ck);
/* The text of the first level-1 heading ("" when none; Markdown only). */
const char *ac_chunker_first_title(const ac_chunker *ck);
/* The most memory the chunker held for text at any time, in bytes (its
 * window buffer plus its line table), to check that it is bounded. */
size_t ac_chunker_peak_bytes(const ac_chunker *ck);

#endif
