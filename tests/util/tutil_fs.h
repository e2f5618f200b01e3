/*
 * tutil_fs.h - test helpers that need base/fs (kept out of tutil so tests of lower layers do not
 * link it).
 */
#ifndef JDB_TUTIL_FS_H
#define JDB_TUTIL_FS_H

/* The backend a test program runs on, from argv[1] ("uring" or "psync"; def when absent).
   Exits 2 with a usage line for another name, and 77 (ctest's "skipped") for uring when the
   kernel refuses io_uring. Returns the name. */
const char *tutil_backend_arg(int argc, char **argv, const char *def);

/* Whether the file system under dir takes O_DIRECT (tmpfs before Linux 6.6 does not: the log
   then writes everything through the page cache). Creates and removes a probe file. */
struct fs_ctx;
int tutil_dir_takes_direct(struct fs_ctx *ctx, const char *dir);

#endif
