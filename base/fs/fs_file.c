/*
 * fs_file.c - POSIX file and directory operations shared by the psync and uring backends.
 *
 * O_DIRECT: requested with FS_O_DIRECT. A file system that refuses it (open fails with EINVAL,
 * as tmpfs did before Linux 6.6) gets buffered I/O + fdatasync instead, logged once per ctx,
 * unless FS_O_DIRECT_STRICT asks for JDB_ENOTSUP. Creating a file, and every directory change,
 * fsyncs the parent directory before returning, so a name that was reported created survives
 * power loss.
 */
#include "fs_int.h"

#include "err.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Parent directory of path into buf ("." when path has no slash). */
static const char *fs_parent(const char *path, char *buf, size_t cap)
{
  size_t n = strlen(path);
  if (n >= cap)
    n = cap - 1;
  memcpy(buf, path, n);
  buf[n] = 0;
  return dirname(buf);
}

int fs_posix_dir_sync(struct fs_ctx *ctx, const char *dir)
{
  (void)ctx;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    LOG_ERROR("open directory %s: %s", dir, strerror(e));
    return err_from_errno(-e);
  }
  int rc = fsync(fd) ? -errno : 0;
  close(fd);
  if (rc) {
    LOG_ERROR("fsync directory %s: %s", dir, strerror(-rc));
    return err_from_errno(rc);
  }
  return JDB_OK;
}

static int fs_sync_parent(struct fs_ctx *ctx, const char *path)
{
  char buf[PATH_MAX];
  return fs_posix_dir_sync(ctx, fs_parent(path, buf, sizeof buf));
}

static int fs_open_fd(const char *path, int oflags, int direct, int *created)
{
  int fl = oflags | (direct ? O_DIRECT : 0) | O_CLOEXEC;
  *created = 0;
  if (fl & O_CREAT) {
    /* Learn whether we created it, so the parent directory is synced only then. */
    int fd = open(path, fl | O_EXCL, 0644);
    if (fd >= 0) {
      *created = 1;
      return fd;
    }
    if (errno != EEXIST || (oflags & O_EXCL))
      return -errno;
    fl &= ~O_CREAT;
  }
  int fd = open(path, fl, 0644);
  return fd >= 0 ? fd : -errno;
}

int fs_posix_open(struct fs_ctx *ctx, const char *path, unsigned flags, struct fs_file **out)
{
  int oflags = (flags & FS_O_RDONLY) ? O_RDONLY : O_RDWR;
  if (flags & FS_O_CREATE)
    oflags |= O_CREAT | ((flags & FS_O_EXCL) ? O_EXCL : 0);
  int direct = (flags & FS_O_DIRECT) != 0, created = 0;
  struct stat st;
  int existed = (oflags & O_CREAT) && direct && stat(path, &st) == 0;
  int fd = fs_open_fd(path, oflags, direct, &created);
  if (fd == -EINVAL && direct) {
    /* Some file systems create the file before refusing O_DIRECT: if it exists now and did not
       before, that refused open made it, so it is ours (created) and not an EEXIST. */
    int made = (oflags & O_CREAT) && !existed && stat(path, &st) == 0;
    if (flags & FS_O_DIRECT_STRICT) {
      LOG_ERROR("%s: O_DIRECT refused by the file system", path);
      if (made)
        unlink(path);
      return JDB_ENOTSUP;
    }
    log_once(&ctx->direct_fallback_logged, JDB_LOG_WARN,
             "%s: file system refuses O_DIRECT; using buffered I/O + fdatasync", path);
    direct = 0;
    fd = fs_open_fd(path, made ? oflags & ~(O_CREAT | O_EXCL) : oflags, 0, &created);
    if (made && fd >= 0)
      created = 1;
  }
  if (fd < 0) {
    if (fd != -ENOENT && fd != -EEXIST)
      LOG_ERROR("open %s: %s", path, strerror(-fd));
    return err_from_errno(fd);
  }
  struct fs_file *f = mem_calloc(1, sizeof *f);
  char *p = f ? strdup(path) : NULL;
  if (!f || !p) {
    mem_free(f);
    free(p);
    close(fd);
    return JDB_ENOMEM;
  }
  f->fd = fd;
  f->flags = flags;
  f->direct = direct;
  f->fixed_index = -1;
  f->path = p;
  if (created) {
    int rc = fs_sync_parent(ctx, path);
    if (rc) {
      close(fd);
      free(p);
      mem_free(f);
      return rc;
    }
  }
  *out = f;
  return JDB_OK;
}

int fs_posix_close(struct fs_ctx *ctx, struct fs_file *f)
{
  (void)ctx;
  int rc = close(f->fd) ? -errno : 0;
  free(f->path);
  mem_free(f);
  return rc ? err_from_errno(rc) : JDB_OK;
}

int fs_posix_size(struct fs_ctx *ctx, struct fs_file *f, uint64_t *size)
{
  (void)ctx;
  struct stat st;
  if (fstat(f->fd, &st))
    return err_from_errno(-errno);
  *size = (uint64_t)st.st_size;
  return JDB_OK;
}

int fs_posix_allocate(struct fs_ctx *ctx, struct fs_file *f, uint64_t off, uint64_t len)
{
  (void)ctx;
  if (fallocate(f->fd, 0, (off_t)off, (off_t)len) == 0)
    return JDB_OK;
  int e = errno;
  if (e == EOPNOTSUPP) {
    e = posix_fallocate(f->fd, (off_t)off, (off_t)len);
    if (e == 0)
      return JDB_OK;
  }
  if (e != ENOSPC)
    LOG_ERROR("fallocate %s [%llu, +%llu): %s", f->path, (unsigned long long)off,
              (unsigned long long)len, strerror(e));
  return err_from_errno(-e);
}

int fs_posix_truncate(struct fs_ctx *ctx, struct fs_file *f, uint64_t size)
{
  (void)ctx;
  if (ftruncate(f->fd, (off_t)size) == 0)
    return JDB_OK;
  int e = errno;
  LOG_ERROR("truncate %s to %llu: %s", f->path, (unsigned long long)size, strerror(e));
  return err_from_errno(-e);
}

int fs_posix_mkdir(struct fs_ctx *ctx, const char *path)
{
  if (mkdir(path, 0755) != 0) {
    if (errno == EEXIST) {
      struct stat st;
      return (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ? JDB_OK : JDB_EEXIST;
    }
    int e = errno;
    LOG_ERROR("mkdir %s: %s", path, strerror(e));
    return err_from_errno(-e);
  }
  return fs_sync_parent(ctx, path);
}

int fs_posix_unlink(struct fs_ctx *ctx, const char *path)
{
  if (unlink(path) != 0) {
    int e = errno;
    if (e != ENOENT)
      LOG_ERROR("unlink %s: %s", path, strerror(e));
    return err_from_errno(-e);
  }
  return fs_sync_parent(ctx, path);
}

int fs_posix_rename(struct fs_ctx *ctx, const char *from, const char *to)
{
  if (rename(from, to) != 0) {
    int e = errno;
    if (e != ENOENT)
      LOG_ERROR("rename %s -> %s: %s", from, to, strerror(e));
    return err_from_errno(-e);
  }
  char a[PATH_MAX], b[PATH_MAX];
  const char *pa = fs_parent(from, a, sizeof a), *pb = fs_parent(to, b, sizeof b);
  int rc = fs_posix_dir_sync(ctx, pb);
  if (rc == JDB_OK && strcmp(pa, pb) != 0)
    rc = fs_posix_dir_sync(ctx, pa);
  return rc;
}

int fs_posix_exec(const struct fs_op *op)
{
  ssize_t r;
  switch (op->opcode) {
  case FS_OP_READ:
    r = pread(op->file->fd, fs_op_cur_buf(op), fs_op_cur_len(op), (off_t)fs_op_cur_off(op));
    break;
  case FS_OP_WRITE:
    r = pwrite(op->file->fd, fs_op_cur_buf(op), fs_op_cur_len(op), (off_t)fs_op_cur_off(op));
    break;
  case FS_OP_FDATASYNC:
    r = fdatasync(op->file->fd);
    break;
  case FS_OP_FSYNC:
    r = fsync(op->file->fd);
    break;
  default:
    return -EINVAL;
  }
  return r < 0 ? -errno : (int)r;
}
