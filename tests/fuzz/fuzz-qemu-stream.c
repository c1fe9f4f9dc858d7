/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the QEMU legacy stream parser (proto/qemu-stream.h)
 * and, for streams that reach their device tail, the vmdesc trailer code
 * (proto/vmdesc.h) as the QEMU save session uses it.
 *
 * Input: four chunk sizes (one byte each, 0 = "the rest"), then the stream.
 * The stream is parsed twice: in one piece, and in chunks of those sizes,
 * each chunk copied into a heap buffer of exactly its size so that a read
 * past a chunk or a PAGE pointer kept beyond its lifetime is caught by
 * ASan.  Both runs must produce the same events, page contents, tail bytes,
 * statistics and verdict: the parser promises that any split of the input
 * parses alike.  Every event is checked against the parser's documented
 * guarantees (indices in range, lengths consistent, pointers inside the
 * caller's chunk).
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "qemu-stream.h"
#include "vmdesc.h"

#define CHUNK_SIZES     4
#define TAIL_KEEP_MAX   (1U << 20)      /* device tail kept for vmdesc_find() */

/* What one run observed, reduced to numbers that must not depend on how
 * the input was split. */
struct outcome {
        uint64_t events;        /* FNV-1a over every non-tail event */
        uint64_t tail;          /* FNV-1a over the tail bytes */
        uint64_t n_events;
        int feed_result;        /* 0 or the sticky -errno */
        int finish_result;
        char error[QSTREAM_ERR_MAX];
        struct qstream_stats stats;
};

struct run {
        struct qstream *p;
        struct outcome *out;
        bool keep_tail;
        uint8_t *tail;
        size_t tail_len;
        bool tail_overflow;
};

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
        return fnv(h, &v, sizeof(v));
}

static void check_block(const struct qstream_block *b)
{
        require(b->name_len > 0 && b->name[b->name_len] == '\0');
        require(b->used_length > 0 && b->used_length % QEMU_TPS == 0);
        require(b->used_length <= SAVD_MAX_BLOCK_SIZE);
        require(b->num_pages == b->used_length / QEMU_TPS);
}

static const struct qstream_block *page_block(const struct run *r, uint32_t block, uint64_t page)
{
        require(block < qstream_n_blocks(r->p));
        const struct qstream_block *b = qstream_block(r->p, block);
        require(b && page < b->num_pages);
        return b;
}

static void keep_tail(struct run *r, const uint8_t *data, size_t len)
{
        r->out->tail = fnv(r->out->tail, data, len);
        if (!r->keep_tail || r->tail_overflow)
                return;
        if (r->tail_len + len > TAIL_KEEP_MAX) {
                r->tail_overflow = true;
                return;
        }
        memcpy(r->tail + r->tail_len, data, len);
        r->tail_len += len;
}

static void on_event(struct run *r, const struct qstream_event *ev, const uint8_t *chunk,
                     size_t chunk_len)
{
        uint64_t h = r->out->events;

        if (ev->type == QSTREAM_EV_DEVICE_TAIL) {
                require(ev->tail.len > 0 && ev->tail.data >= chunk &&
                        ev->tail.data + ev->tail.len <= chunk + chunk_len);
                keep_tail(r, ev->tail.data, ev->tail.len);
                return;
        }
        h = fnv_u64(h, ev->type);
        h = fnv_u64(h, ev->offset);
        switch (ev->type) {
        case QSTREAM_EV_CONFIG:
                require(ev->config == qstream_config(r->p));
                require(ev->config->machine_len > 0 &&
                        ev->config->machine_len <= SAVD_MACHINE_NAME_MAX);
                h = fnv(h, ev->config->machine, ev->config->machine_len);
                h = fnv_u64(h, ev->config->has_uuid);
                break;
        case QSTREAM_EV_BLOCK:
                check_block(ev->block.block);
                require(ev->block.index < SAVD_MAX_BLOCKS);
                h = fnv_u64(h, ev->block.index);
                h = fnv(h, ev->block.block->name, ev->block.block->name_len);
                h = fnv_u64(h, ev->block.block->used_length);
                break;
        case QSTREAM_EV_BLOCKS_DONE: {
                uint64_t total = 0;
                require(ev->blocks_done.n_blocks == qstream_n_blocks(r->p));
                for (size_t i = 0; i < qstream_n_blocks(r->p); i++) {
                        check_block(qstream_block(r->p, i));
                        total += qstream_block(r->p, i)->used_length;
                }
                require(total == ev->blocks_done.total_bytes);
                h = fnv_u64(h, total);
                break;
        }
        case QSTREAM_EV_SECTION:
                require(ev->section.type == QEMU_VM_SECTION_START ||
                        ev->section.type == QEMU_VM_SECTION_PART ||
                        ev->section.type == QEMU_VM_SECTION_END);
                h = fnv_u64(h, ev->section.type);
                h = fnv_u64(h, ev->section.id);
                break;
        case QSTREAM_EV_PAGE:
                page_block(r, ev->page.block, ev->page.page);
                require(ev->page.data);
                h = fnv_u64(h, ev->page.block);
                h = fnv_u64(h, ev->page.page);
                h = fnv(h, ev->page.data, QEMU_TPS);    /* ASan checks all of it */
                break;
        case QSTREAM_EV_ZERO:
                page_block(r, ev->zero.block, ev->zero.page);
                require(ev->zero.fill == 0);
                h = fnv_u64(h, ev->zero.block);
                h = fnv_u64(h, ev->zero.page);
                break;
        case QSTREAM_EV_RAM_DONE:
                break;
        default:
                require(!"unknown event type");
        }
        r->out->events = h;
        r->out->n_events++;
}

/* Feed one chunk (or, with len == 0, drain a pending event).  Returns
 * false once the parser has failed. */
static bool feed(void *opaque, const uint8_t *buf, size_t len)
{
        struct run *r = opaque;

        do {
                struct qstream_event ev;
                size_t used = SIZE_MAX;
                int k = qstream_feed(r->p, buf, len, &used, &ev);

                require(used <= len);
                if (k < 0) {
                        require(qstream_error(r->p) != NULL);
                        r->out->feed_result = k;
                        return false;
                }
                require(k == 0 || k == 1);
                require(qstream_error(r->p) == NULL);
                if (k == 0) {
                        require(used == len);
                        return true;
                }
                on_event(r, &ev, buf, len);
                buf += used;
                len -= used;
        } while (true);
}

/* The vmdesc step of a save: find the trailer in the kept tail and
 * rewrite it for the configuration savd writes. */
static void vmdesc_step(const struct run *r)
{
        static const char *const caps[] = { "mapped-ram" };
        const struct qstream_config *c = qstream_config(r->p);
        struct vmdesc_loc loc;

        if (!r->keep_tail || r->tail_overflow || r->tail_len == 0)
                return;
        int k = vmdesc_find(r->tail, r->tail_len, &loc);
        if (k < 0)
                return;
        require(loc.eof_offset < r->tail_len && r->tail[loc.eof_offset] == 0);
        require(loc.json_offset + loc.json_len == r->tail_len);
        if (k == 0)
                return;
        struct vmdesc_config cfg = {
                .machine_len = c->machine_len, .caps = caps, .n_caps = 1,
                .has_uuid = c->has_uuid,
        };
        char *out = NULL;
        size_t out_len = 0;
        if (vmdesc_rewrite((const char *)r->tail + loc.json_offset, loc.json_len, &cfg,
                           &out, &out_len) == 0) {
                require(out && strlen(out) == out_len && out[0] == '{');
                free(out);
        }
}

static void run_stream(const uint8_t *data, size_t size, const uint8_t *sizes,
                       bool keep, struct outcome *out)
{
        struct run r = { .out = out, .keep_tail = keep };
        bool ok;

        memset(out, 0, sizeof(*out));
        r.p = qstream_new();
        require(r.p);
        if (keep)
                require((r.tail = malloc(TAIL_KEEP_MAX)));
        ok = fuzz_feed_chunks(data, size, sizes, CHUNK_SIZES, &r, feed);
        if (ok)
                ok = feed(&r, NULL, 0);
        out->finish_result = qstream_finish(r.p);
        require(out->finish_result <= 0);
        if (out->finish_result == 0) {
                require(qstream_error(r.p) == NULL);
                vmdesc_step(&r);
        } else {
                require(qstream_error(r.p) != NULL);
                snprintf(out->error, sizeof(out->error), "%s", qstream_error(r.p));
        }
        if (ok)
                out->stats = *qstream_stats(r.p);
        free(r.tail);
        qstream_free(r.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct outcome whole, split;

        if (size < CHUNK_SIZES)
                return 0;
        const uint8_t *sizes = data;
        data += CHUNK_SIZES;
        size -= CHUNK_SIZES;

        run_stream(data, size, NULL, true, &whole);
        run_stream(data, size, sizes, false, &split);

        require(whole.events == split.events && whole.n_events == split.n_events);
        require(whole.tail == split.tail);
        require(whole.feed_result == split.feed_result);
        require(whole.finish_result == split.finish_result);
        require(strcmp(whole.error, split.error) == 0);
        require(memcmp(&whole.stats, &split.stats, sizeof(whole.stats)) == 0);
        if (whole.feed_result == 0)
                require(whole.stats.offset == size);
        return 0;
}
