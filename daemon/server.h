/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control server: the listening control socket(s) — handed over by
 * the service manager (socket activation) or bound by savd itself — and
 * the control connections: peer credentials checked against the
 * allow-list, a bounded number of clients, newline-delimited JSON
 * requests with descriptors passed alongside (SCM_RIGHTS), replies and
 * broadcast events.  Everything runs on the event loop.
 */
#pragma once

#include <stddef.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "job.h"

struct json_object;
struct server;

#define SAVD_CONTROL_SOCKET_NAME  "control.sock"
#define SAVD_CONTROL_MAX_OUTPUT   (16U << 20)   /* bytes queued for one client */
#define SAVD_CONTROL_READ_CHUNK   (16U * 1024)
#define SAVD_PEER_MAX_GROUPS      65536U        /* NGROUPS_MAX of Linux */

int server_new(struct server **ret, sd_event *e, const struct savd_config *cfg,
               char *err, size_t errlen);
void server_set_jobs(struct server *s, struct job_manager *m);
/* Max clients, allowed groups, socket mode: what a reload can change. */
int server_apply_config(struct server *s, const struct savd_config *cfg, char *err, size_t errlen);
/* A job_event_fn: queue msg (taken) to every client. */
void server_broadcast(void *userdata, struct json_object *msg);
unsigned server_clients(const struct server *s);
void server_free(struct server *s);
