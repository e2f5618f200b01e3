/* jdb_notsup.c - being written (issue 6) */
