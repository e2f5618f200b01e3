/* Must NOT compile: infra (L0) reaching up into base/alloc (L1). */
#include "layout.h"
#include "mem.h"

void *layer_violation(void) { return mem_malloc(1); }
