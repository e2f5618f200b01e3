/* rt.c - being written (issue 6) */
