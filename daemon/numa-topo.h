/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The NUMA nodes the writer workers are spread over, and node-local memory
 * for their buffers.  The topology is either the real one (memory nodes
 * this process may allocate on, from libnuma) or a fake one of N nodes, so
 * that multi-node code paths run on a one-node test machine: fake node k
 * is backed by real node k mod (number of real nodes).  Without NUMA
 * support in the kernel everything degrades to one node and plain
 * page-aligned memory.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define NUMA_TOPO_MAX_NODES 64U         /* real or fake nodes considered */

struct numa_topo {
        unsigned n_nodes;               /* nodes workers are spread over */
        unsigned n_real;                /* real memory nodes; 0: no NUMA support */
        int real_ids[NUMA_TOPO_MAX_NODES];
        bool fake;
};

/* fake_nodes 0: the real topology. */
int numa_topo_init(struct numa_topo *t, unsigned fake_nodes);
/* Real node id behind topology node k, or -1 without NUMA support. */
int numa_topo_real_node(const struct numa_topo *t, unsigned node);
/* Run the calling thread on the CPUs of node k (no-op on one real node). */
int numa_topo_bind_thread(const struct numa_topo *t, unsigned node);
/* size bytes of page-aligned, zeroed memory preferring node k, in huge
 * pages when large and the kernel has them; NULL with
 * errno set on failure.  Release with numa_topo_free(). */
void *numa_topo_alloc(const struct numa_topo *t, unsigned node, size_t size);
void numa_topo_free(void *p, size_t size);
/* Topology node that the page at addr lives on (faulted in if needed), or
 * -errno.  With a fake topology, real node r maps to fake node r, except
 * on a single real node where the address picks the node (1 GiB stripes)
 * so that tests see memory on several nodes. */
int numa_topo_node_of(const struct numa_topo *t, const void *addr);
