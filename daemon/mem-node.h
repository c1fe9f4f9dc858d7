/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Where guest memory lives: the NUMA node (in the writer pool's topology
 * numbering, daemon/numa-topo.h) of a page of a client's memory mapping,
 * so that the zero-copy save hands each range to a writer on the node the
 * memory is on.  The kernel is asked with move_pages(2) in query mode,
 * which never faults a page in (a page not present has no node).
 *
 * Fake topology (tests, and one-node machines told to pretend): when the
 * writer pool pretends N nodes on a single real node, memory is assigned
 * to fake nodes in stripes of MEM_NODE_FAKE_STRIPE bytes of the memory
 * fd: byte offset X is on node (X / stripe) % N.  Deterministic, so tests
 * can predict which worker writes what.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "numa-topo.h"

#define MEM_NODE_FAKE_STRIPE (16ULL << 20)

struct mem_node {
        struct numa_topo topo;
        bool ask_kernel;                /* several real nodes to tell apart */
        bool stripes;                   /* fake nodes over one real node */
};

/* fake_nodes as in struct writer_config (0: the real topology). */
int mem_node_init(struct mem_node *m, unsigned fake_nodes);
/* Topology node of the page at addr (byte fd_offset of its memory fd), or
 * -1 when unknown (page not present, no NUMA support): any worker. */
int mem_node_of(const struct mem_node *m, const void *addr, uint64_t fd_offset);
/* The kernel's answer for one page: its real node id, -ENOENT when the
 * page is not present (never touched, or swapped out), or -errno. */
int mem_node_real(const void *addr);
/* Number of topology nodes (>= 1). */
unsigned mem_node_count(const struct mem_node *m);
