/* jdb_pipe.c - being written (issue 6) */
