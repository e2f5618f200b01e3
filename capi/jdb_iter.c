/* jdb_iter.c - being written (issue 6) */
