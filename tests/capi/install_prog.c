/* Built against the installed jdb.h and `pkg-config jdb` only (tests/capi/install_check.sh). */
#include <jdb.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
  jdb_options_t o;
  jdb_options_init(&o);
  if (strcmp(jdb_version(), JDB_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s, library %s\n", JDB_VERSION_STRING, jdb_version());
    return 1;
  }
  if (o.struct_size != sizeof o || strncmp(jdb_strerror(JDB_ECORRUPT), "JDB_ECORRUPT", 12) != 0)
    return 1;
  printf("installed libjdb %s works\n", jdb_version());
  return 0;
}
