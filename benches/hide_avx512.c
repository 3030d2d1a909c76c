/*
 * Hides AVX-512 from the process it is preloaded into, so that a library
 * that picks its kernels from CPUID (onnxruntime's MLAS) takes its AVX2
 * ones on an AVX-512 host: the counterpart, for the other side of
 * `benches/compare.py`, of `CNN_ISA=avx2`.
 *
 *     cc -shared -fPIC -O2 -o hide_avx512.so benches/hide_avx512.c
 *     LD_PRELOAD=./hide_avx512.so python3 ...
 *
 * Linux lets a thread make the CPUID instruction fault (arch_prctl
 * ARCH_SET_CPUID, where the CPU has CPUID faulting: `cpuid_fault` in
 * /proc/cpuinfo). The constructor turns that on for the loading thread
 * (threads created later inherit it) and catches the fault: it runs CPUID
 * with faulting briefly off, clears the AVX-512 feature bits of leaf 7 and
 * steps over the instruction. What the kernel and libc chose before the
 * constructor ran is unchanged.
 *
 * It reports through the environment, for the process to check:
 * HIDE_AVX512=on, or HIDE_AVX512=failed: <reason> (AVX-512 is then still
 * visible). It removes itself from LD_PRELOAD, so that child processes run
 * as they would without it.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction previous;

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

/* Leaf 7, subleaf 0: AVX512F, DQ, IFMA, PF, ER, CD, BW, VL in EBX. */
#define EBX_AVX512 ((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31))
/* VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ in ECX. */
#define ECX_AVX512 ((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14))
/* 4VNNIW, 4FMAPS, VP2INTERSECT, FP16 in EDX. */
#define EDX_AVX512 ((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23))
/* Subleaf 1: AVX512_BF16 in EAX. */
#define EAX1_AVX512 (1u << 5)

static void on_fault(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *r = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) {
        /* Not CPUID: a fault of the program's own, handled as before. */
        sigaction(SIGSEGV, &previous, NULL);
        (void)sig;
        (void)info;
        return;
    }
    unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX];
    unsigned a, b, c, d;
    set_cpuid(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
        b &= ~EBX_AVX512;
        c &= ~ECX_AVX512;
        d &= ~EDX_AVX512;
    } else if (leaf == 7 && sub == 1) {
        a &= ~EAX1_AVX512;
    }
    r[REG_RAX] = a;
    r[REG_RBX] = b;
    r[REG_RCX] = c;
    r[REG_RDX] = d;
    r[REG_RIP] += 2;
}

__attribute__((constructor)) static void hide_avx512(void) {
    unsetenv("LD_PRELOAD");
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_fault;
    act.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&act.sa_mask);
    if (sigaction(SIGSEGV, &act, &previous) != 0) {
        setenv("HIDE_AVX512", "failed: sigaction", 1);
        return;
    }
    if (set_cpuid(0) != 0) {
        char why[96];
        snprintf(why, sizeof why, "failed: arch_prctl(ARCH_SET_CPUID): %s (no cpuid_fault?)", strerror(errno));
        sigaction(SIGSEGV, &previous, NULL);
        setenv("HIDE_AVX512", why, 1);
        return;
    }
    setenv("HIDE_AVX512", "on", 1);
}
