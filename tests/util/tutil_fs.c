/*
 * tutil_fs.c - see tutil_fs.h.
 */
#include "tutil_fs.h"

#include "fs.h"
#include "jdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tutil_backend_arg(int argc, char **argv, const char *def)
{
  const char *b = argc > 1 ? argv[1] : def;
  if (strcmp(b, "uring") && strcmp(b, "psync")) {
    fprintf(stderr, "usage: %s uring|psync\n", argv[0]);
    exit(2);
  }
  if (strcmp(b, "uring") == 0) {
    struct fs_ctx_opts o = {.backend = FS_BACKEND_URING};
    struct fs_ctx *probe = NULL;
    if (fs_ctx_create(&o, &probe) != JDB_OK) {
      fprintf(stderr, "io_uring unavailable: skipping the uring run\n");
      exit(77);
    }
    fs_ctx_destroy(probe);
  }
  return b;
}

int tutil_dir_takes_direct(struct fs_ctx *ctx, const char *dir)
{
  char p[4096];
  snprintf(p, sizeof p, "%s/direct-probe", dir);
  struct fs_file *f = NULL;
  int yes = fs_file_open(ctx, p, FS_O_CREATE | FS_O_DIRECT, &f) == JDB_OK && fs_file_is_direct(f);
  if (f)
    fs_file_close(ctx, f);
  fs_unlink(ctx, p);
  return yes;
}
