# Writes OUT: `#define JDB_GIT_SHA "<short HEAD>"` (plus "+dirty" for a modified tree), rewritten
# only when it changes, so that a build after a commit says which commit it is (a value taken at
# configure time went stale at the first commit after it). Run at every build by jdb_git_sha.
execute_process(COMMAND git rev-parse --short HEAD WORKING_DIRECTORY "${SRC}"
                OUTPUT_VARIABLE sha OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT sha)
  set(sha unknown)
else()
  execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY "${SRC}"
                  OUTPUT_VARIABLE st OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(st)
    set(sha "${sha}+dirty")
  endif()
endif()
set(text "#define JDB_GIT_SHA \"${sha}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
