/*
 * coro_switch.c - the machine-dependent half of the fibers: build a fresh context on a stack and
 * switch between contexts. Everything else (scheduling, stacks, ASan annotations) is in coro.c.
 *
 * x86_64 (System V): a context handle is the saved stack pointer. coro_ctx_switch pushes the
 * callee-saved registers and the floating-point control state on the running stack, stores rsp
 * in *from, loads `to` into rsp and pops the same layout, so `ret` resumes the other context
 * where it called coro_ctx_switch (the caller-saved registers are dead across the call by the
 * ABI). As boost.context does, the x87 control word and MXCSR are per-fiber: a fiber that
 * changes the rounding mode does not change it for the others. Saved frame, from the handle up:
 *
 *   off  size  content
 *     0     2  x87 control word (fnstcw / fldcw), bytes 2..7 unused
 *     8     4  MXCSR (stmxcsr / ldmxcsr), bytes 12..15 unused
 *    16     8  r15
 *    24     8  r14
 *    32     8  r13
 *    40     8  r12
 *    48     8  rbx
 *    56     8  rbp
 *    64     8  return address: where coro_ctx_switch resumes
 *
 * A fresh context (coro_ctx_make) is that frame built by hand at the top of the stack with
 * zeroed registers, the creator's control word and MXCSR, `entry` as the return address and one
 * more word 0 above it as entry's own (fake) return address, so entry starts with rsp + 8 16-byte
 * aligned exactly as after a call, and frame-pointer and CFI unwinding stop there (rbp = 0,
 * return address 0).
 *
 * Elsewhere (or with CORO_SWITCH_UCONTEXT defined, to test it on x86_64) the handle is a
 * ucontext_t *: makecontext/swapcontext, with the saving side's ucontext_t living in
 * coro_ctx_switch's own frame, which stays valid for exactly as long as that context is
 * suspended. Slower (swapcontext makes a sigprocmask syscall) but portable.
 *
 * Invariants: a handle is used for at most one resume (each switch-out produces a new one);
 * entry never returns; nothing here allocates.
 */
#include "coro.h"

#include <stdint.h>

#if defined(__x86_64__) && !defined(CORO_SWITCH_UCONTEXT)

/* void coro_ctx_switch(void **from  rdi, void *to  rsi) */
__asm__(
  ".text\n"
  ".globl coro_ctx_switch\n"
  ".hidden coro_ctx_switch\n"
  ".type coro_ctx_switch,@function\n"
  ".p2align 4\n"
  "coro_ctx_switch:\n"
  "  .cfi_startproc\n"
#if defined(__CET__)
  "  endbr64\n"
#endif
  "  pushq %rbp\n"
  "  .cfi_adjust_cfa_offset 8\n"
  "  .cfi_rel_offset %rbp, 0\n"
  "  pushq %rbx\n"
  "  .cfi_adjust_cfa_offset 8\n"
  "  .cfi_rel_offset %rbx, 0\n"
  "  pushq %r12\n"
  "  .cfi_adjust_cfa_offset 8\n"
  "  .cfi_rel_offset %r12, 0\n"
  "  pushq %r13\n"
  "  .cfi_adjust_cfa_offset 8\n"
  "  .cfi_rel_offset %r13, 0\n"
  "  pushq %r14\n"
  "  .cfi_adjust_cfa_offset 8\n"
  "  .cfi_rel_offset %r14, 0\n"
  "  pushq %r15\n"
  "  .cfi_adjust_cfa_offset 8\n"
  "  .cfi_rel_offset %r15, 0\n"
  "  subq $16, %rsp\n"
  "  .cfi_adjust_cfa_offset 16\n"
  "  fnstcw (%rsp)\n"
  "  stmxcsr 8(%rsp)\n"
  "  movq %rsp, (%rdi)\n"
  /* From here on the stack is the other context's; the CFI above describes it equally well,
     since both hold the same frame layout. */
  "  movq %rsi, %rsp\n"
  "  fldcw (%rsp)\n"
  "  ldmxcsr 8(%rsp)\n"
  "  addq $16, %rsp\n"
  "  .cfi_adjust_cfa_offset -16\n"
  "  popq %r15\n"
  "  .cfi_adjust_cfa_offset -8\n"
  "  .cfi_restore %r15\n"
  "  popq %r14\n"
  "  .cfi_adjust_cfa_offset -8\n"
  "  .cfi_restore %r14\n"
  "  popq %r13\n"
  "  .cfi_adjust_cfa_offset -8\n"
  "  .cfi_restore %r13\n"
  "  popq %r12\n"
  "  .cfi_adjust_cfa_offset -8\n"
  "  .cfi_restore %r12\n"
  "  popq %rbx\n"
  "  .cfi_adjust_cfa_offset -8\n"
  "  .cfi_restore %rbx\n"
  "  popq %rbp\n"
  "  .cfi_adjust_cfa_offset -8\n"
  "  .cfi_restore %rbp\n"
  "  ret\n"
  "  .cfi_endproc\n"
  ".size coro_ctx_switch, .-coro_ctx_switch\n");

enum {
  CORO_FRAME_FPCW = 0,     /* word indexes into the saved frame (see the table above) */
  CORO_FRAME_MXCSR = 1,
  CORO_FRAME_RET = 8,
  CORO_FRAME_FAKE_RET = 9,
  CORO_FRAME_WORDS = 10
};

void *coro_ctx_make(void *lo, size_t bytes, void (*entry)(void))
{
  uintptr_t top = ((uintptr_t)lo + bytes) & ~(uintptr_t)15;
  uint64_t *f = (uint64_t *)(top - CORO_FRAME_WORDS * sizeof(uint64_t));
  uint16_t fpcw;
  uint32_t mxcsr;
  __asm__ volatile("fnstcw %0" : "=m"(fpcw));
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  for (int i = 0; i < CORO_FRAME_WORDS; i++)
    f[i] = 0;
  f[CORO_FRAME_FPCW] = fpcw;
  f[CORO_FRAME_MXCSR] = mxcsr;
  f[CORO_FRAME_RET] = (uint64_t)(uintptr_t)entry;
  f[CORO_FRAME_FAKE_RET] = 0;
  return f;
}

#else /* portable fallback */

#include <stdlib.h>
#include <ucontext.h>

void *coro_ctx_make(void *lo, size_t bytes, void (*entry)(void))
{
  /* The fresh context's ucontext_t sits at the top of its own stack, below which it runs. */
  uintptr_t top = ((uintptr_t)lo + bytes - sizeof(ucontext_t)) & ~(uintptr_t)63;
  ucontext_t *uc = (ucontext_t *)top;
  if (getcontext(uc) != 0)
    abort();   /* cannot fail on Linux; there is nothing sensible to return */
  uc->uc_stack.ss_sp = lo;
  uc->uc_stack.ss_size = top - (uintptr_t)lo;
  uc->uc_link = NULL;
  makecontext(uc, entry, 0);
  return uc;
}

void coro_ctx_switch(void **from, void *to)
{
  ucontext_t self;
  *from = &self;
  if (swapcontext(&self, (ucontext_t *)to) != 0)
    abort();
}

#endif
